//! Inbound rules in the VM's network security group: opening a port (making the NSG when the
//! VM has none), closing it, and telling whether a port is admitted.

use azdock_azure_sm::api::NETWORK;
use azdock_azure_sm::models::{Access, Direction, NetworkSecurityGroup};
use azdock_azure_sm::requests;
use azdock_azure_sm::{Arm, Body};
use azdock_core::Protocol;
use serde_json::json;

use crate::error::{Error, Result, parse};
use crate::vm::Vm;

/// The lowest free priority from 1000 up in steps of 10, as az picks them; a rule that exists
/// keeps its own.
pub fn free_priority(nsg: &NetworkSecurityGroup, rule_name: &str) -> u32 {
    if let Some(rule) = nsg.properties.security_rules.iter().find(|r| r.name.eq_ignore_ascii_case(rule_name)) {
        return rule.properties.priority;
    }
    let used: Vec<u32> = nsg.properties.security_rules.iter().map(|r| r.properties.priority).collect();
    (100..=409).map(|p| p * 10).find(|p| !used.contains(p)).unwrap_or(4096)
}

/// ARM's spelling of a rule's protocol.
pub fn protocol_name(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Tcp => "Tcp",
        Protocol::Udp => "Udp",
    }
}

/// The body of an inbound rule PUT on its own, admitting `port` over `protocol` from `sources`.
pub fn inbound_rule(port: u16, protocol: Protocol, sources: &[String], priority: u32) -> Result<Body> {
    Ok(requests::SecurityRuleResource { properties: requests::inbound_rule(port, protocol, sources, priority) }
        .body()?)
}

/// Opens `port` in the VM's NSG with rule `rule_name` (updated when it says something else). A
/// VM without an NSG gets one, `<vm>NSG`, on its NIC: a Standard public IP admits nothing
/// without one. Returns the NSG's name.
pub async fn open_port(
    arm: &Arm,
    vm: &Vm,
    rule_name: &str,
    port: u16,
    protocol: Protocol,
    sources: &[String],
) -> Result<String> {
    let nsg = match vm.nsg(arm).await? {
        Some(nsg) => nsg,
        None => {
            let nic =
                vm.nic.as_ref().ok_or_else(|| Error::Failed(format!("VM `{}` has no NIC to filter", vm.facts.name)))?;
            let id = format!(
                "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Network/networkSecurityGroups/{}NSG",
                vm.addr.subscription, vm.addr.resource_group, vm.facts.name
            );
            // The facts may predate an NSG this run made for another port: use it if it is there.
            let url = format!("{id}?api-version={NETWORK}");
            let nsg: NetworkSecurityGroup = match arm.get(&url).await {
                Ok(existing) => parse("NSG", existing)?,
                Err(e) if e.status() == Some(404) => parse(
                    "NSG",
                    arm.put(&url, &requests::network_security_group(&vm.facts.location, Vec::new()).body()?).await?,
                )?,
                Err(e) => return Err(e.into()),
            };
            let mut body = arm.get(&format!("{}?api-version={NETWORK}", nic.id)).await?;
            if !body["properties"]["networkSecurityGroup"]["id"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(&id)) {
                body["properties"]["networkSecurityGroup"] = json!({"id": id});
                let update = requests::nic_update(&body);
                arm.put(&format!("{}?api-version={NETWORK}", nic.id), &Body::json(&update)?).await?;
            }
            nsg
        }
    };
    // A rule that already says the same is left alone: rewriting it costs a network operation.
    if let Some(rule) = nsg.properties.security_rules.iter().find(|r| r.name.eq_ignore_ascii_case(rule_name)) {
        let p = &rule.properties;
        let mut have: Vec<&str> =
            p.source_address_prefix.iter().chain(&p.source_address_prefixes).map(String::as_str).collect();
        let mut want: Vec<&str> = sources.iter().map(String::as_str).collect();
        have.sort_unstable();
        want.sort_unstable();
        let same_port = p.destination_port_range.as_deref() == Some(port.to_string().as_str());
        let same_protocol = p.protocol.eq_ignore_ascii_case(protocol_name(protocol));
        if same_port && same_protocol && have == want && p.access == Some(Access::Allow) {
            return Ok(nsg.name);
        }
    }
    let priority = free_priority(&nsg, rule_name);
    let path = format!("{}/securityRules/{rule_name}?api-version={NETWORK}", nsg.id);
    arm.put(&path, &inbound_rule(port, protocol, sources, priority)?).await?;
    Ok(nsg.name)
}

/// Removes rule `rule_name` from the VM's NSG, if it is there.
pub async fn close_port(arm: &Arm, vm: &Vm, rule_name: &str) -> Result<()> {
    if let Some(nsg) = vm.nsg(arm).await?
        && nsg.properties.security_rules.iter().any(|r| r.name.eq_ignore_ascii_case(rule_name))
    {
        arm.delete(&format!("{}/securityRules/{rule_name}?api-version={NETWORK}", nsg.id)).await?;
    }
    Ok(())
}

/// The rule (`nsg/rule`) that admits TCP `port`, if the highest-priority inbound rule covering
/// it allows; a missing NSG admits nothing to a Standard IP.
pub fn admitting_rule(nsg: &NetworkSecurityGroup, port: u16) -> Option<String> {
    let mut rules: Vec<_> = nsg
        .properties
        .security_rules
        .iter()
        .filter(|r| {
            r.properties.direction == Some(Direction::Inbound)
                && r.properties.covers_port(port)
                && (r.properties.protocol.eq_ignore_ascii_case("tcp") || r.properties.protocol == "*")
        })
        .collect();
    rules.sort_by_key(|r| r.properties.priority);
    rules.first().filter(|r| r.properties.access == Some(Access::Allow)).map(|r| format!("{}/{}", nsg.name, r.name))
}

/// Whether the VM's NSG admits TCP `port`: the admitting rule, or `None`.
pub async fn port_admitted(arm: &Arm, vm: &Vm, port: u16) -> Result<Option<String>> {
    Ok(vm.nsg(arm).await?.and_then(|nsg| admitting_rule(&nsg, port)))
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn inbound_rule(port: u16, protocol: Protocol, sources: &[String], priority: u32) -> Value {
        serde_json::to_value(requests::SecurityRuleResource {
            properties: requests::inbound_rule(port, protocol, sources, priority),
        })
        .unwrap()
    }

    #[allow(clippy::needless_pass_by_value)] // Tests pass `json!` literals.
    fn nsg(rules: Value) -> NetworkSecurityGroup {
        serde_json::from_value(
            json!({"id": "/n", "name": "web-nsg", "location": "l", "properties": {"securityRules": rules}}),
        )
        .unwrap()
    }

    fn rule(name: &str, priority: u32, port: &str, access: &str, protocol: &str) -> Value {
        json!({"name": name, "properties": {"priority": priority, "destinationPortRange": port, "access": access,
            "direction": "Inbound", "protocol": protocol}})
    }

    #[test]
    fn priorities_step_by_ten_from_a_thousand_and_keep_an_existing_rule_s() {
        assert_eq!(free_priority(&nsg(json!([])), "x"), 1000);
        let taken = nsg(json!([rule("a", 1000, "22", "Allow", "Tcp"), rule("b", 1010, "80", "Allow", "Tcp")]));
        assert_eq!(free_priority(&taken, "x"), 1020);
        assert_eq!(free_priority(&taken, "B"), 1010);
        let full: Vec<Value> = (100..=409).map(|p| rule(&format!("r{p}"), p * 10, "1", "Allow", "Tcp")).collect();
        assert_eq!(free_priority(&nsg(Value::Array(full)), "x"), 4096);
    }

    #[test]
    fn rules_carry_their_protocol_and_sources() {
        let udp = inbound_rule(51820, Protocol::Udp, &["*".into()], 1000);
        assert_eq!(udp["properties"]["protocol"], "Udp");
        assert_eq!(udp["properties"]["sourceAddressPrefix"], "*");
        assert_eq!(udp["properties"]["destinationPortRange"], "51820");
        let tcp = inbound_rule(2376, Protocol::Tcp, &["10.0.0.0/8".into(), "192.0.2.1".into()], 1010);
        assert_eq!(tcp["properties"]["protocol"], "Tcp");
        assert_eq!(tcp["properties"]["priority"], 1010);
        assert_eq!(tcp["properties"]["sourceAddressPrefixes"], json!(["10.0.0.0/8", "192.0.2.1"]));
        assert!(tcp["properties"].get("sourceAddressPrefix").is_none());
    }

    #[test]
    fn the_first_matching_rule_by_priority_decides() {
        let open = nsg(json!([rule("deny", 2000, "*", "Deny", "*"), rule("docker", 1000, "2376", "Allow", "Tcp")]));
        assert_eq!(admitting_rule(&open, 2376).as_deref(), Some("web-nsg/docker"));
        assert_eq!(admitting_rule(&open, 22), None);
        let shadowed =
            nsg(json!([rule("deny", 900, "2000-3000", "Deny", "Tcp"), rule("docker", 1000, "2376", "Allow", "Tcp")]));
        assert_eq!(admitting_rule(&shadowed, 2376), None);
        let udp_only = nsg(json!([rule("u", 1000, "2376", "Allow", "Udp")]));
        assert_eq!(admitting_rule(&udp_only, 2376), None);
    }
}
