//! Creating a Linux VM with its network, as a host capability any extension's plans can follow:
//! the resource group; the virtual network, network security group and public IP together; the
//! NIC; the VM. What exists under the same names is reused (an unfinished operation is waited
//! out, as after an interrupted run); what this run creates is written in a [`Ledger`] the moment
//! ARM accepts its PUT, so a failure — or a failed operation on a resource ARM did accept — can
//! delete exactly that, newest first, and never what was there before.

use std::sync::Mutex;
use std::time::Duration;

use azdock_azure_sm::api::{COMPUTE, NETWORK, RESOURCES};
use azdock_azure_sm::images::{self, ImageSpec, ResolvedImage};
use azdock_azure_sm::models::{NetworkSecurityGroup, OsType, ProvisioningState, PublicIpAddress, VirtualNetwork};
use azdock_azure_sm::requests::{self, AdminLogin, Named};
use azdock_azure_sm::{Arm, AzureError, Body};
use azdock_core::{PowerState, Protocol, Secret, VmFacts};
use reqwest::Method;
use serde_json::Value;

use crate::dispatch::Host;
use crate::error::{Error, Result, parse};
use crate::events::{Events, Step, StepOutcome};
use crate::target::VmAddr;
use crate::vm::{Vm, inspect};

/// The kinds of resource a create makes, in the order they depend on each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    ResourceGroup,
    VirtualNetwork,
    NetworkSecurityGroup,
    PublicIp,
    Nic,
    Vm,
}

impl Kind {
    /// The name messages use.
    pub fn name(self) -> &'static str {
        match self {
            Self::ResourceGroup => "resource group",
            Self::VirtualNetwork => "virtual network",
            Self::NetworkSecurityGroup => "network security group",
            Self::PublicIp => "public IP",
            Self::Nic => "NIC",
            Self::Vm => "VM",
        }
    }

    fn api(self) -> &'static str {
        match self {
            Self::ResourceGroup => RESOURCES,
            Self::Vm => COMPUTE,
            _ => NETWORK,
        }
    }
}

/// One resource a create touched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Touched {
    pub kind: Kind,
    pub id: String,
}

impl std::fmt::Display for Touched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind.name(), crate::short(&self.id))
    }
}

/// What one create made and what it found in place. Shared by the futures that create siblings
/// together, so it locks.
#[derive(Debug, Default)]
pub struct Ledger {
    created: Mutex<Vec<Touched>>,
    reused: Mutex<Vec<Touched>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Ledger {
    fn created(&self, kind: Kind, id: &str) {
        lock(&self.created).push(Touched { kind, id: id.to_owned() });
    }

    fn reused(&self, kind: Kind, id: &str) {
        lock(&self.reused).push(Touched { kind, id: id.to_owned() });
    }

    /// What this run created, in the order ARM accepted it.
    pub fn made(&self) -> Vec<Touched> {
        lock(&self.created).clone()
    }

    /// What this run found and used.
    pub fn found(&self) -> Vec<Touched> {
        lock(&self.reused).clone()
    }
}

/// An inbound rule the VM's NSG is born with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    pub rule: String,
    pub port: u16,
    pub protocol: Protocol,
}

/// A Linux VM to create, checked by the caller.
#[derive(Debug)]
pub struct NewVm {
    pub addr: VmAddr,
    /// The location; else the resource group's, else `westeurope`.
    pub location: Option<String>,
    pub size: String,
    pub image: ImageSpec,
    pub admin_user: String,
    pub login: AdminLogin,
    /// The public IP's DNS label (the classic command used the VM name).
    pub dns_label: Option<String>,
    /// Rules made with the NSG (SSH, an extension's port known up front), from `sources`.
    pub inbound: Vec<Inbound>,
    /// Source prefixes of those rules; empty admits any address.
    pub sources: Vec<String>,
}

/// Work done once the network exists and before the VM is created, with the facts of the VM
/// about to be (its name, addresses, admin user): minting a certificate that names its address,
/// or returning custom data (base64) for cloud-init to run at first boot.
pub type BeforeVm<'a> = &'a (dyn Fn(&VmFacts) -> Result<Option<Secret<String>>> + Sync);

/// What a create produced.
#[derive(Debug)]
pub struct CreatedVm {
    pub vm: Vm,
    pub image: ResolvedImage,
}

/// Waits (at most ten minutes) until a resource's provisioning state is final.
async fn settle(arm: &Arm, url: &str, mut body: Value) -> Result<Value> {
    for _ in 0..600 {
        let state = body["properties"]["provisioningState"].as_str().map(ProvisioningState::from_text);
        if state.as_ref().is_none_or(ProvisioningState::is_terminal) {
            return Ok(body);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        body = arm.get(url).await?;
    }
    Err(Error::Failed(format!("`{}` is still being provisioned after ten minutes", crate::short(url))))
}

/// Reuses the resource at `id` when it exists, else creates it from `body`: recorded as this
/// run's as soon as ARM accepts the PUT, then followed to the end of its operation.
async fn ensure(arm: &Arm, events: &dyn Events, ledger: &Ledger, kind: Kind, id: &str, body: &Body) -> Result<Value> {
    let step = Step::start(events, format!("{} {}", kind.name(), id.rsplit('/').next().unwrap_or(id)));
    let url = format!("{id}?api-version={}", kind.api());
    match arm.get(&url).await {
        Ok(existing) => {
            ledger.reused(kind, id);
            step.ended(settle(arm, &url, existing).await, StepOutcome::Reused)
        }
        Err(e) if e.status() == Some(404) => {
            let context = || format!("cannot create {} `{}`", kind.name(), crate::short(id));
            let made = async {
                let accepted =
                    arm.send(Method::PUT, &url, Some(body)).await.map_err(|e| Error::from(e).context(context()))?;
                ledger.created(kind, id);
                let followed = arm.follow(&accepted).await.map_err(|e| Error::from(e).context(context()))?;
                Ok(if followed { arm.get(&url).await? } else { accepted.body })
            };
            step.ended(made.await, StepOutcome::Created)
        }
        Err(e) => step.ended(Err(e.into()), StepOutcome::Done),
    }
}

/// The first error of several siblings that all ran to their end.
fn first_error<A, B, C>(results: (Result<A>, Result<B>, Result<C>)) -> Result<(A, B, C)> {
    match results {
        (Ok(a), Ok(b), Ok(c)) => Ok((a, b, c)),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => Err(e),
    }
}

/// The names of a VM's network, as az gives them.
#[derive(Debug, Clone)]
pub struct NetworkIds {
    pub group: String,
    pub vnet: String,
    pub subnet_name: String,
    pub nsg: String,
    pub public_ip: String,
    pub nic: String,
}

impl NetworkIds {
    pub fn of(addr: &VmAddr) -> Self {
        let group = format!("/subscriptions/{}/resourceGroups/{}", addr.subscription, addr.resource_group);
        let net = format!("{group}/providers/Microsoft.Network");
        let name = &addr.name;
        Self {
            vnet: format!("{net}/virtualNetworks/{name}VNET"),
            subnet_name: format!("{name}Subnet"),
            nsg: format!("{net}/networkSecurityGroups/{name}NSG"),
            public_ip: format!("{net}/publicIPAddresses/{name}PublicIP"),
            nic: format!("{net}/networkInterfaces/{name}VMNic"),
            group,
        }
    }
}

/// The facts of a VM about to be created: what an extension needs to plan its first boot.
pub fn facts_to_be(spec: &NewVm, location: &str, cloud: &str, fqdn: Option<String>, ip: Option<&str>) -> VmFacts {
    VmFacts {
        name: spec.addr.name.clone(),
        resource_group: spec.addr.resource_group.clone(),
        subscription_id: spec.addr.subscription.clone(),
        resource_id: spec.addr.path(),
        location: location.to_owned(),
        os_type: OsType::Linux,
        power_state: PowerState::Unknown,
        cloud: cloud.to_owned(),
        admin_username: Some(spec.admin_user.clone()),
        fqdn,
        public_ips: ip.and_then(|i| i.parse().ok()).into_iter().collect(),
        private_ips: Vec::new(),
        extensions: Vec::new(),
    }
}

/// The names of a new Linux VM, checked before any request as Azure checks them: the VM name,
/// the admin user, the image (parsed; a well-known Windows publisher refused), the resource
/// group, the location and the size. Returns the image.
pub fn check_names(
    name: &str,
    user: &str,
    image: &str,
    group: Option<&str>,
    location: Option<&str>,
    size: &str,
) -> Result<ImageSpec> {
    let usage = |m: String| Error::Usage(m);
    azdock_azure_sm::rules::check_vm_name(name, &OsType::Linux).map_err(usage)?;
    let spec = ImageSpec::parse(image).map_err(|e| match azdock_azure_sm::images::classic(image) {
        Some(_) => usage(format!(
            "`{image}` is a classic image name azdock cannot map to an image Azure still offers; give an alias ({}), a URN publisher:offer:sku:version, or an image id",
            azdock_azure_sm::images::ALIASES.iter().map(|a| a.0).collect::<Vec<_>>().join(", ")
        )),
        None => usage(e.to_string()),
    })?;
    if let ImageSpec::Urn { publisher, .. } = &spec
        && ["MicrosoftWindowsServer", "MicrosoftWindowsDesktop", "MicrosoftSQLServer"]
            .iter()
            .any(|p| p.eq_ignore_ascii_case(publisher))
    {
        return Err(usage(format!(
            "image `{image}` is Windows; azdock creates Linux VMs: give a Linux image such as Ubuntu2404"
        )));
    }
    azdock_azure_sm::rules::check_user_name(user, &OsType::Linux).map_err(usage)?;
    if let Some(group) = group
        && (group.is_empty()
            || group.len() > 90
            || group.ends_with('.')
            || !group.chars().all(|c| c.is_alphanumeric() || "-_.()".contains(c)))
    {
        return Err(usage(format!(
            "resource group `{group}`: use 1 to 90 letters, digits, `-`, `_`, `.`, `(` and `)`, not ending with `.`"
        )));
    }
    if let Some(l) = location
        && (l.trim().is_empty() || !l.chars().all(|c| c.is_ascii_alphanumeric() || c == ' '))
    {
        return Err(usage(format!(
            "location `{l}`: use a region's name or display name, such as westus or \"West US\""
        )));
    }
    if !size.starts_with(|c: char| c.is_ascii_alphabetic())
        || !size.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(usage(format!("VM size `{size}`: use Azure's name, such as Standard_B2s")));
    }
    Ok(spec)
}

impl Host<'_> {
    /// Creates the VM `spec` describes with its network, reusing what exists, and returns it
    /// read back as the host reads any VM. On failure the ledger holds what to roll back.
    pub async fn create_vm(&self, spec: &NewVm, ledger: &Ledger, before_vm: Option<BeforeVm<'_>>) -> Result<CreatedVm> {
        let arm = self.arm;
        let ids = NetworkIds::of(&spec.addr);
        let group_url = format!("{}?api-version={RESOURCES}", ids.group);
        let existing_group = match arm.get(&group_url).await {
            Ok(rg) => Some(rg),
            Err(e) if e.status() == Some(404) => None,
            Err(e) => return Err(e.into()),
        };
        // A location given by display name (`West US`) is ARM's name (`westus`) from here on; one
        // the cloud does not have is refused before anything is made.
        let location = match &spec.location {
            Some(given) => {
                let regions = azdock_azure_sm::locations::list(arm, &spec.addr.subscription).await?;
                azdock_azure_sm::locations::resolve(&regions, given).map_err(Error::Usage)?
            }
            None => existing_group.as_ref().and_then(|rg| rg["location"].as_str()).unwrap_or("westeurope").to_owned(),
        };
        let image = images::resolve(arm, &spec.addr.subscription, &location, &spec.image).await?;
        if image.os_type == Some(OsType::Windows) {
            return Err(Error::Usage(
                "the image is Windows; azdock creates Linux VMs: give a Linux image such as Ubuntu2404".into(),
            ));
        }
        if existing_group.is_some() {
            ledger.reused(Kind::ResourceGroup, &ids.group);
        } else {
            ensure(
                arm,
                self.events,
                ledger,
                Kind::ResourceGroup,
                &ids.group,
                &requests::resource_group(&location).body()?,
            )
            .await?;
        }

        let sources = if spec.sources.is_empty() { vec!["*".to_owned()] } else { spec.sources.clone() };
        let rules = spec
            .inbound
            .iter()
            .zip((100..).map(|p| p * 10))
            .map(|(r, priority)| Named {
                name: r.rule.clone(),
                properties: requests::inbound_rule(r.port, r.protocol, &sources, priority),
            })
            .collect();
        let vnet_body = requests::virtual_network(&location, &ids.subnet_name).body()?;
        let nsg_body = requests::network_security_group(&location, rules).body()?;
        let pip_body = requests::public_ip(&location, spec.dns_label.as_deref()).body()?;
        // Independent resources together; each runs to its end, so nothing ARM accepted goes
        // unrecorded when a sibling fails.
        let (vnet, nsg, pip) = first_error(tokio::join!(
            ensure(arm, self.events, ledger, Kind::VirtualNetwork, &ids.vnet, &vnet_body),
            ensure(arm, self.events, ledger, Kind::NetworkSecurityGroup, &ids.nsg, &nsg_body),
            ensure(arm, self.events, ledger, Kind::PublicIp, &ids.public_ip, &pip_body),
        ))?;
        let nsg: NetworkSecurityGroup = parse("NSG", nsg)?;
        self.add_missing_rules(&nsg, &spec.inbound, &sources).await?;
        // A reused VNet is used through its first subnet.
        let vnet: VirtualNetwork = parse("virtual network", vnet)?;
        let subnet = vnet
            .properties
            .subnets
            .first()
            .map_or_else(|| format!("{}/subnets/{}", ids.vnet, ids.subnet_name), |s| s.id.clone());
        let pip: PublicIpAddress = parse("public IP", pip)?;
        let ip = pip.properties.ip_address.clone();
        let fqdn = pip.fqdn().map(str::to_owned);

        let nic_body = requests::network_interface(&location, &subnet, Some(&ids.nsg), Some(&ids.public_ip)).body()?;
        ensure(arm, self.events, ledger, Kind::Nic, &ids.nic, &nic_body).await?;

        let custom_data = match before_vm {
            Some(work) => work(&facts_to_be(spec, &location, &arm.cloud().name, fqdn, ip.as_deref()))?,
            None => None,
        };
        let vm_body = requests::linux_vm(requests::LinuxVm {
            location: &location,
            name: &spec.addr.name,
            size: &spec.size,
            image: image.reference.clone(),
            admin_user: &spec.admin_user,
            login: &spec.login,
            custom_data,
            nic: &ids.nic,
        })
        .body()?;
        ensure(arm, self.events, ledger, Kind::Vm, &spec.addr.path(), &vm_body).await.map_err(vm_error)?;
        let vm = inspect(arm, &spec.addr).await?;
        Ok(CreatedVm { vm, image })
    }

    /// Creates the VM, then does `then` with it (applies extensions' plans): when either fails,
    /// deletes what this run created unless `keep` (the user's `--keep-on-failure`), saying
    /// which through the events. Returns `then`'s result and the ledger.
    pub async fn create_then<T, E: From<Error>>(
        &self,
        spec: &NewVm,
        before_vm: Option<BeforeVm<'_>>,
        keep: bool,
        then: impl AsyncFnOnce(CreatedVm) -> std::result::Result<T, E>,
    ) -> std::result::Result<(T, Ledger), E> {
        let ledger = Ledger::default();
        let done = match self.create_vm(spec, &ledger, before_vm).await {
            Ok(created) => then(created).await,
            Err(e) => Err(E::from(e)),
        };
        match done {
            Ok(value) => Ok((value, ledger)),
            Err(e) => {
                self.after_failure(&ledger, keep).await;
                Err(e)
            }
        }
    }

    /// Tells what a failed create made, and deletes it unless `keep`.
    async fn after_failure(&self, ledger: &Ledger, keep: bool) {
        let made = ledger.made();
        if made.is_empty() {
            return;
        }
        let names = made.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
        if keep {
            self.events.warn(&format!("kept what this run created (--keep-on-failure): {names}"));
            return;
        }
        self.events.warn(&format!("deleting what this run created: {names}"));
        for (touched, e) in self.roll_back(ledger).await {
            self.events.warn(&format!("cannot delete {touched}, delete it yourself: {e}"));
        }
    }

    /// A reused NSG gets the rules it lacks, each at its own free priority.
    async fn add_missing_rules(
        &self,
        nsg: &NetworkSecurityGroup,
        inbound: &[Inbound],
        sources: &[String],
    ) -> Result<()> {
        let mut nsg = nsg.clone();
        for rule in inbound {
            if nsg.properties.security_rules.iter().any(|r| r.name.eq_ignore_ascii_case(&rule.rule)) {
                continue;
            }
            let priority = crate::network::free_priority(&nsg, &rule.rule);
            let path = format!("{}/securityRules/{}?api-version={NETWORK}", nsg.id, rule.rule);
            self.arm.put(&path, &crate::network::inbound_rule(rule.port, rule.protocol, sources, priority)?).await?;
            let mut added = azdock_azure_sm::models::SecurityRule { name: rule.rule.clone(), ..Default::default() };
            added.properties.priority = priority;
            nsg.properties.security_rules.push(added);
        }
        Ok(())
    }

    /// Deletes what a failed create made: the resource group when it made it (which takes the
    /// rest), else each resource, newest first (the VM before its NIC, the NIC before what it
    /// uses). Keeps going past a failed delete and returns what could not be deleted.
    pub async fn roll_back(&self, ledger: &Ledger) -> Vec<(Touched, AzureError)> {
        let mut made = ledger.made();
        if let Some(group) = made.iter().find(|t| t.kind == Kind::ResourceGroup).cloned() {
            made = vec![group];
        }
        // Dependents first, whatever order ARM accepted siblings in.
        made.sort_by_key(|t| std::cmp::Reverse(t.kind));
        let mut failed = Vec::new();
        for touched in made {
            if let Err(e) = self.arm.delete(&format!("{}?api-version={}", touched.id, touched.kind.api())).await {
                failed.push((touched, e));
            }
        }
        failed
    }
}

/// A VM create failure, with what the user can do about the common ones.
fn vm_error(e: Error) -> Error {
    if e.azure_code() == Some("SkuNotAvailable") {
        return e.context("the VM size is not offered in this location: choose another --size or -l");
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    /// name, user, image, group, location, size, and what the refusal says.
    type Case<'a> = (&'a str, &'a str, &'a str, Option<&'a str>, Option<&'a str>, &'a str, &'a str);

    #[test]
    fn names_are_checked_as_azure_checks_them() {
        let ok = |name, user, image, group, location, size| check_names(name, user, image, group, location, size);
        assert!(matches!(ok("web1", "ops", "Ubuntu2404", None, None, "Standard_B2s"), Ok(ImageSpec::Urn { .. })));
        assert!(ok("web1", "ops", "Debian11", Some("my.group_(1)"), Some("westus2"), "Standard_D2s_v5").is_ok());
        let cases: &[Case<'_>] = &[
            ("web_1!", "ops", "Ubuntu2404", None, None, "Standard_B2s", "web_1!"),
            ("web1", "root", "Ubuntu2404", None, None, "Standard_B2s", "reserved"),
            ("web1", "ops", "Ubuntu", None, None, "Standard_B2s", "invalid image `Ubuntu`"),
            ("web1", "ops", "Win2022Datacenter", None, None, "Standard_B2s", "Linux image"),
            ("web1", "ops", "Ubuntu2404", Some(""), None, "Standard_B2s", "resource group ``"),
            ("web1", "ops", "Ubuntu2404", Some("g."), None, "Standard_B2s", "resource group `g.`"),
            ("web1", "ops", "Ubuntu2404", Some("a/b"), None, "Standard_B2s", "resource group `a/b`"),
            ("web1", "ops", "Ubuntu2404", None, Some("west-europe"), "Standard_B2s", "location `west-europe`"),
            ("web1", "ops", "Ubuntu2404", None, Some(""), "Standard_B2s", "location ``"),
            ("web1", "ops", "Ubuntu2404", None, Some("  "), "Standard_B2s", "location `  `"),
            ("web1", "ops", "Ubuntu2404", None, None, "2big", "VM size `2big`"),
            ("web1", "ops", "Ubuntu2404", None, None, "Standard B2s", "VM size `Standard B2s`"),
        ];
        for (name, user, image, group, location, size, says) in cases {
            let e = ok(name, user, image, *group, *location, size).unwrap_err();
            assert!(e.is_usage() && e.to_string().contains(says), "{says}: {e}");
        }
        let long = "g".repeat(91);
        assert!(ok("web1", "ops", "Ubuntu2404", Some(&long), None, "s").is_err());
        let widest = "g".repeat(90);
        assert!(ok("web1", "ops", "Ubuntu2404", Some(&widest), None, "s").is_ok());
        // A display name passes here; the cloud's own list decides whether it exists.
        assert!(ok("web1", "ops", "Ubuntu2404", None, Some("West US 2"), "s").is_ok());
    }

    #[test]
    fn network_names_follow_az() {
        let ids = NetworkIds::of(&VmAddr::new("s", "g", "web1"));
        assert_eq!(ids.group, "/subscriptions/s/resourceGroups/g");
        assert!(ids.vnet.ends_with("/providers/Microsoft.Network/virtualNetworks/web1VNET"), "{}", ids.vnet);
        assert!(ids.nsg.ends_with("/networkSecurityGroups/web1NSG"));
        assert!(ids.public_ip.ends_with("/publicIPAddresses/web1PublicIP"));
        assert!(ids.nic.ends_with("/networkInterfaces/web1VMNic"));
        assert_eq!(ids.subnet_name, "web1Subnet");
    }

    #[test]
    fn siblings_report_the_first_failure_only_after_all_ran() {
        let ok: Result<u8> = Ok(1);
        assert_eq!(first_error((Ok(1), Ok(2), Ok(3))).unwrap(), (1, 2, 3));
        let e = first_error((ok, Err::<u8, _>(Error::Failed("nsg".into())), Err::<u8, _>(Error::Failed("ip".into()))));
        assert_eq!(e.unwrap_err().to_string(), "nsg");
        let e = first_error((Ok::<u8, Error>(1), Ok::<u8, Error>(2), Err::<u8, _>(Error::Failed("ip".into()))));
        assert_eq!(e.unwrap_err().to_string(), "ip");
    }

    #[test]
    fn kinds_order_dependents_last_and_name_their_api() {
        assert!(Kind::Vm > Kind::Nic && Kind::Nic > Kind::PublicIp && Kind::PublicIp > Kind::ResourceGroup);
        assert_eq!(Kind::Vm.api(), COMPUTE);
        assert_eq!(Kind::ResourceGroup.api(), RESOURCES);
        assert_eq!(Kind::Nic.api(), NETWORK);
        let t = Touched {
            kind: Kind::Nic,
            id: "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/networkInterfaces/n1".into(),
        };
        assert_eq!(t.to_string(), "NIC n1");
    }

    #[test]
    fn the_facts_of_a_vm_to_be_carry_its_addresses_and_admin() {
        let spec = NewVm {
            addr: VmAddr::new("s", "g", "web1"),
            location: None,
            size: "Standard_B2s".into(),
            image: ImageSpec::parse("Ubuntu2404").unwrap(),
            admin_user: "ops".into(),
            login: AdminLogin::Key("k".into()),
            dns_label: None,
            inbound: Vec::new(),
            sources: Vec::new(),
        };
        let f = facts_to_be(&spec, "westus", "local", Some("web1.westus.cloudapp.azure.com".into()), Some("127.1.0.9"));
        assert_eq!((f.name.as_str(), f.resource_group.as_str(), f.location.as_str()), ("web1", "g", "westus"));
        assert_eq!(f.admin_username.as_deref(), Some("ops"));
        assert_eq!(f.public_ips, vec!["127.1.0.9".parse::<std::net::IpAddr>().unwrap()]);
        assert_eq!(f.fqdn.as_deref(), Some("web1.westus.cloudapp.azure.com"));
        assert_eq!(f.resource_id, spec.addr.path());
        assert_eq!(f.os_type, OsType::Linux);
        assert!(facts_to_be(&spec, "l", "c", None, Some("not an ip")).public_ips.is_empty());
    }
}
