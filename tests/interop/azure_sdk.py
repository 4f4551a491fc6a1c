"""Microsoft's Azure SDK for Python against azdock's local cloud: sign-in, resource groups,
images, network, a VM with a VMAccess extension, power actions and deletes, through the SDK's
own pollers. Configured only by the environment `eval "$(azdock local env --for sdk)"` set."""
import os
env = os.environ
from azure.identity import ClientSecretCredential
from azure.mgmt.resource.resources import ResourceManagementClient
from azure.mgmt.compute import ComputeManagementClient
base = env["AZURE_RESOURCE_MANAGER_URL"]
sub = env["AZURE_SUBSCRIPTION_ID"]
# AZURE_AUTHORITY_HOST is azure-identity's own variable: no `authority=` needed.
cred = ClientSecretCredential(env["AZURE_TENANT_ID"], env["AZURE_CLIENT_ID"], env["AZURE_CLIENT_SECRET"], disable_instance_discovery=True)
tok = cred.get_token(base + "/.default")
print("token ok, expires", tok.expires_on)
rm = ResourceManagementClient(cred, sub, base_url=base, credential_scopes=[base + "/.default"])
rg = rm.resource_groups.create_or_update("sdk-rg", {"location": "westeurope", "tags": {"by": "azure-sdk"}})
print("rg", rg.name, rg.location, rg.properties.provisioning_state)
print("list", [g.name for g in rm.resource_groups.list()])
cc = ComputeManagementClient(cred, sub, base_url=base, credential_scopes=[base + "/.default"])
imgs = cc.virtual_machine_images.list(location="westeurope", publisher_name="Canonical", offer="ubuntu-24_04-lts", skus="server", top=1, orderby="name desc")
print("latest ubuntu", [i.name for i in imgs])
poller = rm.resource_groups.begin_delete("sdk-rg")
poller.result()
print("deleted; exists now:", rm.resource_groups.check_existence("sdk-rg"))
from azure.mgmt.network import NetworkManagementClient
net = NetworkManagementClient(cred, sub, base_url=base, credential_scopes=[base + "/.default"])
rm.resource_groups.create_or_update("sdk2", {"location": "westeurope"})
vnet = net.virtual_networks.begin_create_or_update("sdk2", "vnet", {"location": "westeurope", "properties": {"addressSpace": {"addressPrefixes": ["10.1.0.0/16"]}, "subnets": [{"name": "default", "properties": {"addressPrefix": "10.1.0.0/24"}}]}}).result()
print("vnet", vnet.name, vnet.provisioning_state, [s.name for s in vnet.subnets])
pip = net.public_ip_addresses.begin_create_or_update("sdk2", "pip", {"location": "westeurope", "sku": {"name": "Standard"}, "properties": {"publicIPAllocationMethod": "Static", "dnsSettings": {"domainNameLabel": "sdkvm"}}}).result()
print("pip", pip.ip_address, pip.dns_settings.fqdn)
nic = net.network_interfaces.begin_create_or_update("sdk2", "nic", {"location": "westeurope", "properties": {"ipConfigurations": [{"name": "ipconfig1", "properties": {"subnet": {"id": vnet.subnets[0].id}, "publicIPAddress": {"id": pip.id}}}]}}).result()
print("nic", nic.ip_configurations[0].private_ip_address)
vm = cc.virtual_machines.begin_create_or_update("sdk2", "sdkvm", {"location": "westeurope", "properties": {"hardwareProfile": {"vmSize": "Standard_B1s"},
    "storageProfile": {"imageReference": {"publisher": "Canonical", "offer": "ubuntu-24_04-lts", "sku": "server", "version": "latest"}},
    "osProfile": {"computerName": "sdkvm", "adminUsername": "azureuser", "adminPassword": "Sup3r-Secret!"},
    "networkProfile": {"networkInterfaces": [{"id": nic.id, "properties": {"primary": True}}]}}}).result()
print("vm", vm.name, vm.provisioning_state, vm.storage_profile.os_disk.os_type)
ext = cc.virtual_machine_extensions.begin_create_or_update("sdk2", "sdkvm", "enablevmaccess", {"location": "westeurope", "properties": {"publisher": "Microsoft.OSTCExtensions", "type": "VMAccessForLinux", "typeHandlerVersion": "1.5", "protectedSettings": {"username": "ops", "password": "N3w-Passw0rd!"}}}).result()
print("ext", ext.name, ext.provisioning_state)
iv = cc.virtual_machines.instance_view("sdk2", "sdkvm")
print("instance view", [s.code for s in iv.statuses], [e.name for e in (iv.extensions or [])])
cc.virtual_machines.begin_power_off("sdk2", "sdkvm").result()
print("power", [s.code for s in cc.virtual_machines.instance_view("sdk2", "sdkvm").statuses])
cc.virtual_machines.begin_delete("sdk2", "sdkvm").result()
print("vm deleted; vms left:", [v.name for v in cc.virtual_machines.list("sdk2")])
