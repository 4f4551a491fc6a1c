//! Microsoft.Network's resources: virtual networks and subnets, security groups and their rules,
//! public IPs and NICs, checked and completed as ARM does.

// A family of the parent module: it shares the parent's helpers, types and imports.
#[allow(clippy::wildcard_imports)]
use super::*;

pub(super) fn prepare_vnet(inner: &Inner, id: &str, props: &mut Map<String, Value>) -> Result<()> {
    let prefixes = props
        .get("addressSpace")
        .and_then(|a| a.get("addressPrefixes"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if prefixes.is_empty() {
        return Err(ArmError::new(
            400,
            "InvalidAddressSpace",
            format!("Virtual network {id} does not have an address space: addressSpace.addressPrefixes is required."),
        ));
    }
    for p in &prefixes {
        let p = p.as_str().unwrap_or_default();
        if parse_cidr(p).is_none() {
            return Err(ArmError::new(
                400,
                "InvalidAddressPrefixFormat",
                format!(
                    "Address prefix {p} of resource {id} is not formatted correctly. It should follow CIDR notation, for example 10.0.0.0/24."
                ),
            ));
        }
    }
    if let Some(subnets) = props.get("subnets").and_then(Value::as_array) {
        for s in subnets {
            let name = s["name"].as_str().unwrap_or_default();
            validate_name("subnets", name)?;
            let mut sp = s["properties"].as_object().cloned().unwrap_or_default();
            prepare_subnet(inner, &format!("{id}/subnets/{name}"), &mut sp)?;
        }
    }
    props.insert("resourceGuid".into(), json!(uuid()));
    Ok(())
}

pub(super) fn parse_cidr(p: &str) -> Option<([u8; 4], u8)> {
    let (ip, bits) = p.split_once('/')?;
    let ip: std::net::Ipv4Addr = ip.parse().ok()?;
    let bits: u8 = bits.parse().ok().filter(|b| *b <= 32)?;
    Some((ip.octets(), bits))
}

pub(super) fn prepare_subnet(inner: &Inner, id: &str, props: &mut Map<String, Value>) -> Result<()> {
    let prefix = props.get("addressPrefix").and_then(Value::as_str).map(str::to_owned).or_else(|| {
        props
            .get("addressPrefixes")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(Value::as_str)
            .map(str::to_owned)
    });
    match prefix {
        Some(p) if parse_cidr(&p).is_some() => {}
        Some(p) => {
            return Err(ArmError::new(
                400,
                "InvalidAddressPrefixFormat",
                format!(
                    "Address prefix {p} of resource {id} is not formatted correctly. It should follow CIDR notation, for example 10.0.0.0/24."
                ),
            ));
        }
        None => {
            return Err(ArmError::new(
                400,
                "InvalidRequestFormat",
                format!("Cannot parse the request: subnet {id} needs addressPrefix."),
            ));
        }
    }
    if let Some(nsg) = props.get("networkSecurityGroup").and_then(ref_id) {
        require_ref(inner, nsg, id)?;
    }
    Ok(())
}

pub(super) fn prepare_nsg(id: &str, props: &mut Map<String, Value>) -> Result<()> {
    if let Some(rules) = props.get("securityRules").and_then(Value::as_array) {
        let mut seen: Vec<(String, i64, String)> = Vec::new();
        for r in rules {
            let name = r["name"].as_str().unwrap_or_default();
            validate_name("securityRules", name)?;
            let mut rp = r["properties"].as_object().cloned().unwrap_or_default();
            validate_rule(name, &mut rp)?;
            let (priority, direction) =
                (rp["priority"].as_i64().unwrap_or_default(), rp["direction"].as_str().unwrap_or_default().to_owned());
            if let Some((other, _, _)) = seen.iter().find(|(_, p, d)| *p == priority && eq(d, &direction)) {
                return Err(ArmError::new(
                    400,
                    "SecurityRuleConflict",
                    format!(
                        "Security rule {name} conflicts with rule {other}. Rules cannot have the same Priority and Direction. To learn more, see aka.ms/nsgrules."
                    ),
                ));
            }
            seen.push((name.to_owned(), priority, direction));
        }
    }
    let defaults = [
        ("AllowVnetInBound", 65000, "Inbound", "VirtualNetwork", "VirtualNetwork", "Allow"),
        ("AllowAzureLoadBalancerInBound", 65001, "Inbound", "AzureLoadBalancer", "*", "Allow"),
        ("DenyAllInBound", 65500, "Inbound", "*", "*", "Deny"),
        ("AllowVnetOutBound", 65000, "Outbound", "VirtualNetwork", "VirtualNetwork", "Allow"),
        ("AllowInternetOutBound", 65001, "Outbound", "*", "Internet", "Allow"),
        ("DenyAllOutBound", 65500, "Outbound", "*", "*", "Deny"),
    ];
    let defaults: Vec<Value> = defaults
        .iter()
        .map(|(name, priority, direction, src, dst, access)| {
            json!({"name": name, "id": format!("{id}/defaultSecurityRules/{name}"), "type": "Microsoft.Network/networkSecurityGroups/defaultSecurityRules",
                   "properties": {"provisioningState": "Succeeded", "description": "Default rule", "protocol": "*", "sourcePortRange": "*", "destinationPortRange": "*",
                                  "sourceAddressPrefix": src, "destinationAddressPrefix": dst, "access": access, "priority": priority, "direction": direction}})
        })
        .collect();
    props.insert("defaultSecurityRules".into(), Value::Array(defaults));
    props.insert("resourceGuid".into(), json!(uuid()));
    Ok(())
}

pub(super) fn validate_rule(name: &str, rp: &mut Map<String, Value>) -> Result<()> {
    let priority = rp.get("priority").and_then(Value::as_i64).unwrap_or(0);
    if !(100..=4096).contains(&priority) {
        return Err(ArmError::new(
            400,
            "SecurityRuleInvalidPriority",
            format!("Security rule has invalid Priority. Value provided: {priority}. Allowed range 100-4096."),
        )
        .target(name));
    }
    let check = |field: &str, allowed: &[&str]| -> Result<()> {
        let v = rp.get(field).and_then(Value::as_str).unwrap_or_default();
        if allowed.iter().any(|a| eq(a, v)) {
            Ok(())
        } else {
            Err(ArmError::new(
                400,
                "InvalidRequestFormat",
                format!(
                    "Cannot parse the request: security rule {name} has an invalid {field} '{v}'; allowed: {}.",
                    allowed.join(", ")
                ),
            )
            .target(name))
        }
    };
    check("direction", &["Inbound", "Outbound"])?;
    check("access", &["Allow", "Deny"])?;
    check("protocol", &["Tcp", "Udp", "Icmp", "Esp", "Ah", "*"])?;
    for (single, plural) in [
        ("sourcePortRange", "sourcePortRanges"),
        ("destinationPortRange", "destinationPortRanges"),
        ("sourceAddressPrefix", "sourceAddressPrefixes"),
        ("destinationAddressPrefix", "destinationAddressPrefixes"),
    ] {
        let has = rp.get(single).and_then(Value::as_str).is_some_and(|v| !v.is_empty())
            || rp.get(plural).and_then(Value::as_array).is_some_and(|a| !a.is_empty());
        if !has {
            return Err(ArmError::new(
                400,
                "SecurityRuleParameterContainsUnsupportedValue",
                format!("Security rule parameter {single} for rule with Id {name} cannot be empty."),
            )
            .target(name));
        }
    }
    Ok(())
}

pub(super) fn prepare_rule(inner: &Inner, id: &str, name: &str, props: &mut Map<String, Value>) -> Result<()> {
    validate_rule(name, props)?;
    let (priority, direction) =
        (props["priority"].as_i64().unwrap_or_default(), props["direction"].as_str().unwrap_or_default().to_owned());
    let parent = id.rsplit_once("/securityRules/").map(|(p, _)| key(p)).unwrap_or_default();
    let prefix = format!("{parent}/securityrules/");
    for (k, r) in inner.resources.iter() {
        if k.starts_with(&prefix)
            && !eq(&r.id, id)
            && r.body["properties"]["priority"].as_i64() == Some(priority)
            && r.body["properties"]["direction"].as_str().is_some_and(|d| eq(d, &direction))
        {
            return Err(ArmError::new(
                400,
                "SecurityRuleConflict",
                format!(
                    "Security rule {name} conflicts with rule {}. Rules cannot have the same Priority and Direction. To learn more, see aka.ms/nsgrules.",
                    r.body["name"].as_str().unwrap_or_default()
                ),
            ));
        }
    }
    Ok(())
}

pub(super) fn prepare_public_ip(
    inner: &mut Inner,
    id: &str,
    location: &str,
    props: &mut Map<String, Value>,
    out: &mut Value,
) -> Result<()> {
    if out.get("sku").is_none() {
        out["sku"] = json!({"name": "Standard", "tier": "Regional"});
    }
    props.entry("publicIPAllocationMethod").or_insert(json!("Static"));
    props.entry("publicIPAddressVersion").or_insert(json!("IPv4"));
    props.entry("idleTimeoutInMinutes").or_insert(json!(4));
    if let Some(label) =
        props.get("dnsSettings").and_then(|d| d.get("domainNameLabel")).and_then(Value::as_str).map(str::to_owned)
    {
        let valid = label.len() >= 3
            && label.len() <= 63
            && label.starts_with(|c: char| c.is_ascii_lowercase())
            && label.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && label.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !valid {
            return Err(ArmError::new(
                400,
                "InvalidDomainNameLabel",
                format!(
                    "The domain name label {label} is invalid. It must conform to the following regular expression: ^[a-z][a-z0-9-]{{1,61}}[a-z0-9]$."
                ),
            ));
        }
        let fqdn = format!("{label}.{location}.cloudapp.azure.com");
        let taken = inner.resources.values().any(|r| {
            !eq(&r.id, id) && r.body["properties"]["dnsSettings"]["fqdn"].as_str().is_some_and(|f| eq(f, &fqdn))
        });
        if taken {
            return Err(ArmError::new(
                400,
                "DnsRecordInUse",
                format!("DNS record {fqdn} is already used by another public IP."),
            ));
        }
        props.insert("dnsSettings".into(), json!({"domainNameLabel": label, "fqdn": fqdn}));
    }
    let existing_ip =
        inner.resources.get(&key(id)).and_then(|r| r.body["properties"]["ipAddress"].as_str()).map(str::to_owned);
    let ip = existing_ip.unwrap_or_else(|| inner.allocate_public_ip());
    props.insert("ipAddress".into(), json!(ip));
    props.insert("resourceGuid".into(), json!(uuid()));
    Ok(())
}

pub(super) fn prepare_nic(inner: &Inner, id: &str, props: &mut Map<String, Value>) -> Result<()> {
    let Some(configs) = props.get("ipConfigurations").and_then(Value::as_array).cloned().filter(|c| !c.is_empty())
    else {
        return Err(ArmError::new(
            400,
            "InvalidRequestFormat",
            format!("Cannot parse the request: network interface {id} needs at least one ipConfiguration."),
        ));
    };
    if let Some(nsg) = props.get("networkSecurityGroup").and_then(ref_id) {
        require_ref(inner, nsg, id)?;
    }
    let mut out = Vec::new();
    for (i, c) in configs.iter().enumerate() {
        let name = c["name"].as_str().map_or_else(|| format!("ipconfig{}", i + 1), str::to_owned);
        let mut cp = c["properties"].as_object().cloned().unwrap_or_default();
        let Some(subnet) = cp.get("subnet").and_then(ref_id).map(str::to_owned) else {
            return Err(ArmError::new(
                400,
                "InvalidRequestFormat",
                format!("Cannot parse the request: ipConfiguration {name} of {id} needs a subnet."),
            ));
        };
        require_ref(inner, &subnet, id)?;
        if let Some(pip) = cp.get("publicIPAddress").and_then(ref_id).map(str::to_owned) {
            require_ref(inner, &pip, id)?;
            let used_by: Vec<String> = inner
                .resources
                .values()
                .filter(|r| {
                    !eq(&r.id, id)
                        && r.body["type"].as_str().is_some_and(|t| eq(t, "Microsoft.Network/networkInterfaces"))
                })
                .filter(|r| {
                    r.body["properties"]
                        .to_string()
                        .to_ascii_lowercase()
                        .contains(&format!("\"{}\"", pip.to_ascii_lowercase()))
                })
                .map(|r| r.id.clone())
                .collect();
            if let Some(other) = used_by.first() {
                return Err(ArmError::new(
                    400,
                    "PublicIPAddressInUse",
                    format!(
                        "Resource {pip} is referenced by resource {other}/ipConfigurations/ipconfig1. It cannot be used by {id}."
                    ),
                ));
            }
        }
        if !cp.contains_key("privateIPAddress") {
            let subnet_prefix = inner
                .resources
                .get(&key(&subnet))
                .and_then(|s| s.body["properties"]["addressPrefix"].as_str().map(str::to_owned))
                .unwrap_or_else(|| "10.0.0.0/24".into());
            let (octets, _) = parse_cidr(&subnet_prefix).unwrap_or(([10, 0, 0, 0], 24));
            let used = inner
                .resources
                .values()
                .filter(|r| {
                    !eq(&r.id, id)
                        && r.body["properties"]
                            .to_string()
                            .to_ascii_lowercase()
                            .contains(&format!("\"{}\"", subnet.to_ascii_lowercase()))
                })
                .count();
            // Azure keeps the first four addresses of a subnet for itself.
            let offset = u32::try_from(4 + used + i).unwrap_or(4);
            let ip = std::net::Ipv4Addr::from(u32::from_be_bytes(octets).saturating_add(offset));
            cp.insert("privateIPAddress".into(), json!(ip.to_string()));
            cp.insert("privateIPAllocationMethod".into(), json!("Dynamic"));
        }
        cp.insert("primary".into(), json!(i == 0));
        cp.entry("privateIPAddressVersion").or_insert_with(|| json!("IPv4"));
        cp.insert("provisioningState".into(), json!("Succeeded"));
        out.push(json!({"name": name, "id": format!("{id}/ipConfigurations/{name}"), "type": "Microsoft.Network/networkInterfaces/ipConfigurations", "properties": cp}));
    }
    props.insert("ipConfigurations".into(), Value::Array(out));
    azure_nic_fields(inner.resources.get(&key(id)).map(|r| &r.body["properties"]), props);
    Ok(())
}

/// What Azure adds to every NIC it stores: a resource GUID, DNS settings (the servers asked
/// for, none meaning Azure's, and the VNet's internal domain suffix), its flags' defaults; and
/// what an update keeps from `before` (those, and what the VM it is attached to set).
fn azure_nic_fields(before: Option<&Value>, props: &mut Map<String, Value>) {
    props.insert(
        "resourceGuid".into(),
        before.and_then(|b| b.get("resourceGuid")).cloned().unwrap_or_else(|| json!(uuid())),
    );
    let servers = props.get("dnsSettings").and_then(|d| d.get("dnsServers")).cloned().unwrap_or_else(|| json!([]));
    let suffix = before
        .and_then(|b| b["dnsSettings"]["internalDomainNameSuffix"].as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{}.bx.internal.cloudapp.net", &uuid().replace('-', "")[..26]));
    props.insert(
        "dnsSettings".into(),
        json!({"dnsServers": servers, "appliedDnsServers": servers, "internalDomainNameSuffix": suffix}),
    );
    for flag in ["enableAcceleratedNetworking", "enableIPForwarding"] {
        if !props.get(flag).is_some_and(Value::is_boolean) {
            props.insert(flag.into(), json!(false));
        }
    }
    props.entry("hostedWorkloads").or_insert_with(|| json!([]));
    props.entry("tapConfigurations").or_insert_with(|| json!([]));
    for attached in ["virtualMachine", "primary", "macAddress"] {
        if let Some(value) = before.and_then(|b| b.get(attached)) {
            props.insert(attached.into(), value.clone());
        }
    }
}

pub(super) fn store_inline_children(inner: &mut Inner, parent_key: &str, parent_id: &str) {
    let Some(parent) = inner.resources.get(parent_key) else { return };
    let kind = parent.body["type"].as_str().unwrap_or_default().to_ascii_lowercase();
    let (field, child, child_type) = match kind.as_str() {
        "microsoft.network/virtualnetworks" => ("subnets", "subnets", "Microsoft.Network/virtualNetworks/subnets"),
        "microsoft.network/networksecuritygroups" => {
            ("securityRules", "securityRules", "Microsoft.Network/networkSecurityGroups/securityRules")
        }
        _ => return,
    };
    let Some(items) = parent.body["properties"].get(field).and_then(Value::as_array).cloned() else { return };
    let prefix = format!("{parent_key}/{}/", child.to_ascii_lowercase());
    // The inline list is the whole truth: children it no longer names go away (unless in use).
    let names: Vec<String> = items.iter().filter_map(|i| i["name"].as_str().map(str::to_ascii_lowercase)).collect();
    inner.resources.retain(|k, _| !k.starts_with(&prefix) || names.iter().any(|n| *k == format!("{prefix}{n}")));
    for item in items {
        let name = item["name"].as_str().unwrap_or_default().to_owned();
        let id = format!("{parent_id}/{child}/{name}");
        let mut props = item["properties"].as_object().cloned().unwrap_or_default();
        props.insert("provisioningState".into(), json!("Succeeded"));
        let body = json!({"name": name, "id": id, "type": child_type, "properties": props});
        inner.resources.insert(key(&id), Resource { id, body });
    }
    if let Some(p) = inner.resources.get_mut(parent_key) {
        p.body["properties"].as_object_mut().map(|m| m.remove(field));
    }
}

// --- Microsoft.Compute
