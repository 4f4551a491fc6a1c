//! `azdock vm docker create`: the classic `azure vm docker create` on today's ARM. It checks
//! every argument first, then creates what is missing — resource group; virtual network, network
//! security group and public IP together; the NIC while the server certificate is minted; the
//! VM; Docker through the chosen handler — reusing what exists under the same names, waits until
//! the daemon answers a TLS handshake, and makes a docker context. When the install fails it
//! deletes what this run created (never what was there before), unless `--keep-on-failure`.

use std::io::BufRead as _;
use std::path::Path;
use std::sync::Mutex;

use anyhow::{Context as _, bail};
use azdock_azure_sm::images::{self, ImageSpec};
use azdock_azure_sm::models::{NetworkSecurityGroup, OsType, ProvisioningState, SecurityRule, SecurityRuleProperties};
use azdock_azure_sm::{Arm, AzureError, rules};
use azdock_certs::{CertStore, ServerRequest};
use azdock_core::{ArgValue, Args, Secret};
use azdock_ext_docker::{Delivery, Handler};
use azdock_host::{self as host, docker::HostRecord};
use base64::Engine as _;
use serde_json::{Value, json};

use super::{Ctx, docker, interactive};
use crate::cli::{DockerCreateArgs, GlobalArgs};
use crate::config::Config;
use crate::error::Usage;
use crate::session::{self, COMPUTE_API, NETWORK_API, RESOURCES_API};
use crate::targets::VmAddr;

/// How the admin signs in to the VM.
enum Login {
    Password(Secret<String>),
    Key(String),
}

/// Everything `create` needs, checked.
struct Spec {
    name: String,
    group: String,
    location: Option<String>,
    size: String,
    image: ImageSpec,
    user: String,
    login: Login,
    ssh_port: Option<u16>,
    port: u16,
    handler: Delivery,
    options: Vec<String>,
    allow_from: Vec<String>,
    cert_sans: Vec<String>,
    cert_dir: std::path::PathBuf,
}

fn usage(message: impl Into<String>) -> anyhow::Error {
    Usage::new(message).into()
}

/// The image must be Linux; aliases and well-known Windows publishers are refused at once.
fn check_linux_image(text: &str, spec: &ImageSpec) -> anyhow::Result<()> {
    if let ImageSpec::Urn { publisher, .. } = spec
        && ["MicrosoftWindowsServer", "MicrosoftWindowsDesktop", "MicrosoftSQLServer"]
            .iter()
            .any(|p| p.eq_ignore_ascii_case(publisher))
    {
        return Err(usage(format!("image `{text}` is Windows; a Docker host needs a Linux image such as Ubuntu2404")));
    }
    Ok(())
}

fn read_password_stdin() -> anyhow::Result<Secret<String>> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("cannot read the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        return Err(usage("`--password-stdin` read an empty password"));
    }
    Ok(Secret::new(password))
}

/// The SSH key: `--ssh-key-value`, `--generate-ssh-keys`, else `~/.ssh/id_ed25519.pub` or
/// `~/.ssh/id_rsa.pub` as az does.
fn ssh_key(ctx: &Ctx, args: &DockerCreateArgs) -> anyhow::Result<Option<String>> {
    let home = std::env::home_dir().filter(|h| !h.as_os_str().is_empty());
    if let Some(value) = &args.ssh_key_value {
        let text = if Path::new(value).is_file() {
            std::fs::read_to_string(value).map_err(|e| usage(format!("cannot read `{value}`: {e}")))?
        } else {
            value.clone()
        };
        return rules::ssh_public_key(&text).map(Some).map_err(|e| usage(format!("--ssh-key-value: {e}")));
    }
    let ssh_dir = home.map(|h| h.join(".ssh"));
    if args.generate_ssh_keys {
        let dir = ssh_dir.context("cannot find the home directory for ~/.ssh; pass --ssh-key-value")?;
        let (line, path, made) = crate::sshkey::generate_or_reuse(&dir)?;
        ctx.info(&if made {
            format!("made a new SSH key pair: {}", path.display())
        } else {
            format!("using the SSH key {}", path.display())
        });
        return Ok(Some(line));
    }
    for name in ["id_ed25519.pub", "id_rsa.pub"] {
        if let Some(path) = ssh_dir.as_ref().map(|d| d.join(name)).filter(|p| p.is_file()) {
            let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read `{}`", path.display()))?;
            return rules::ssh_public_key(&text).map(Some).map_err(|e| usage(format!("`{}`: {e}", path.display())));
        }
    }
    Ok(None)
}

fn check(ctx: &Ctx, config: &Config, args: &DockerCreateArgs) -> anyhow::Result<Spec> {
    let linux = OsType::Linux;
    rules::check_vm_name(&args.name, &linux).map_err(usage)?;
    // The classic command used the VM name as the DNS label too.
    rules::check_dns_label(&args.name).map_err(|e| usage(format!("the VM name is also its DNS label: {e}")))?;
    let image = ImageSpec::parse(&args.image).map_err(|e| usage(e.to_string()))?;
    check_linux_image(&args.image, &image)?;
    rules::check_user_name(&args.user, &linux).map_err(usage)?;
    let handler = Delivery::parse(&args.handler).map_err(usage)?;
    for o in &args.docker_options {
        azdock_ext_docker::check_option(o).map_err(usage)?;
    }
    for s in &args.allow_from {
        azdock_ext_docker::check_source(s).map_err(usage)?;
    }
    if let Some(ssh) = args.ssh
        && ssh == args.docker_port
    {
        return Err(usage(format!(
            "the docker port {} is also the SSH port: choose another --docker-port (2376 is Docker's TLS port)",
            args.docker_port
        )));
    }
    if args.ssh == Some(0) {
        return Err(usage("--ssh needs a port from 1 to 65535"));
    }
    for san in &args.cert_sans {
        let (dns, ips): (Vec<String>, Vec<String>) =
            std::iter::once(san.clone()).partition(|s| s.parse::<std::net::IpAddr>().is_err());
        ServerRequest::new(&args.name, &dns, &ips).map_err(|e| usage(format!("--cert-san: {e}")))?;
    }
    if let Some(group) = &args.resource_group
        && (group.is_empty()
            || group.len() > 90
            || group.ends_with('.')
            || !group.chars().all(|c| c.is_alphanumeric() || "-_.()".contains(c)))
    {
        return Err(usage(format!(
            "resource group `{group}`: use 1 to 90 letters, digits, `-`, `_`, `.`, `(` and `)`, not ending with `.`"
        )));
    }
    if let Some(l) = &args.location
        && (l.is_empty() || !l.chars().all(|c| c.is_ascii_alphanumeric()))
    {
        return Err(usage(format!("location `{l}`: use Azure's short name, such as westeurope")));
    }
    if !args.size.starts_with(|c: char| c.is_ascii_alphabetic())
        || !args.size.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(usage(format!("VM size `{}`: use Azure's name, such as Standard_B2s", args.size)));
    }
    let login = match (&args.password, args.password_stdin) {
        (Some(p), _) => {
            ctx.warn("a password on the command line is visible to other users of this machine and stays in shell history; prefer --password-stdin or an SSH key");
            Login::Password(Secret::new(p.clone()))
        }
        (None, true) => Login::Password(read_password_stdin()?),
        (None, false) => match ssh_key(ctx, args)? {
            Some(key) => Login::Key(key),
            None => {
                return Err(usage(
                    "no way to sign in to the VM: give --ssh-key-value, --generate-ssh-keys, a password (positional or --password-stdin), or have ~/.ssh/id_ed25519.pub",
                ));
            }
        },
    };
    if let Login::Password(p) = &login {
        rules::check_password(p.expose(), &linux, 12).map_err(|e| usage(format!("admin password: {e}")))?;
    }
    let cert_dir = docker::cert_dir(args.docker_cert_dir.as_deref(), config)?;
    Ok(Spec {
        name: args.name.clone(),
        group: args.resource_group.clone().unwrap_or_else(|| args.name.clone()),
        location: args.location.clone(),
        size: args.size.clone(),
        image,
        user: args.user.clone(),
        login,
        ssh_port: args.ssh,
        port: args.docker_port,
        handler,
        options: args.docker_options.clone(),
        allow_from: args.allow_from.clone(),
        cert_sans: args.cert_sans.clone(),
        cert_dir,
    })
}

/// What this run created, in order, so a failure can delete exactly that.
#[derive(Default)]
struct Created(Mutex<Vec<(String, String)>>);

impl Created {
    fn add(&self, kind: &str, id: &str) {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((kind.to_owned(), id.to_owned()));
    }

    fn list(&self) -> Vec<(String, String)> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

/// Reuses the resource at `id` when it exists (waiting out an unfinished operation, as after an
/// interrupted run), else creates it. Returns the resource.
async fn ensure(
    arm: &Arm,
    created: &Created,
    reused: &Created,
    kind: &str,
    id: &str,
    api: &str,
    body: &Value,
) -> anyhow::Result<Value> {
    let url = format!("{id}?api-version={api}");
    match arm.get(&url).await {
        Ok(existing) => {
            reused.add(kind, id);
            settle(arm, &url, existing).await
        }
        Err(e) if e.status() == Some(404) => {
            let made =
                arm.put(&url, body).await.with_context(|| format!("cannot create {kind} `{}`", host::short(id)))?;
            created.add(kind, id);
            Ok(made)
        }
        Err(e) => Err(e.into()),
    }
}

/// Waits (at most ten minutes) until a resource's provisioning state is final.
async fn settle(arm: &Arm, url: &str, mut body: Value) -> anyhow::Result<Value> {
    for _ in 0..600 {
        let state = body["properties"]["provisioningState"].as_str().map(ProvisioningState::from_text);
        if state.as_ref().is_none_or(ProvisioningState::is_terminal) {
            return Ok(body);
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        body = arm.get(url).await?;
    }
    bail!("`{url}` is still being provisioned after ten minutes")
}

pub(crate) fn run(ctx: &Ctx, global: &GlobalArgs, config: &Config, args: &DockerCreateArgs) -> anyhow::Result<()> {
    let spec = check(ctx, config, args)?;
    if args.allow_from.is_empty() {
        if interactive() && !args.yes {
            eprint!(
                "The Docker port {} will admit connections from any address (only holders of your client certificate get in). Continue? [Y/n] ",
                spec.port
            );
            let mut answer = String::new();
            std::io::stdin().read_line(&mut answer)?;
            if matches!(answer.trim(), "n" | "N" | "no") {
                return Err(usage("cancelled; narrow the port with --allow-from CIDR"));
            }
        } else {
            ctx.warn(azdock_ext_docker::OPEN_TO_ANY_NOTE);
        }
    }
    if spec.handler == Delivery::Handler(Handler::Legacy) {
        ctx.warn(azdock_ext_docker::LEGACY_WARNING);
    }
    // The CA and client first: a passphrase problem stops the run before Azure is touched.
    let store = CertStore::new(&spec.cert_dir);
    super::certs::with_passphrases(|p| store.init(p))?;
    let value = session::block_on(async {
        let s = session::session(global, config).await?;
        let created = Created::default();
        let reused = Created::default();
        let server_cert_existed = store.server_paths(&spec.name).0.exists();
        let outcome = deploy(ctx, &s.arm, &s.subscription, &spec, &created, &reused, args.no_wait).await;
        match outcome {
            Ok(value) => Ok(value),
            Err(e) => {
                let made = created.list();
                if made.is_empty() {
                    return Err(e);
                }
                let names: Vec<String> = made.iter().map(|(k, id)| format!("{k} {}", host::short(id))).collect();
                if args.keep_on_failure {
                    ctx.warn(&format!("kept what this run created (--keep-on-failure): {}", names.join(", ")));
                    return Err(e);
                }
                ctx.warn(&format!(
                    "the Docker host could not be set up; deleting what this run created: {}",
                    names.join(", ")
                ));
                if let Err(cleanup) = roll_back(&s.arm, &made).await {
                    ctx.warn(&format!("the clean-up failed, delete the rest yourself: {cleanup:#}"));
                }
                if !server_cert_existed {
                    let (cert, key) = store.server_paths(&spec.name);
                    let _ = std::fs::remove_file(cert);
                    let _ = std::fs::remove_file(key);
                }
                Err(e)
            }
        }
    })?;
    ctx.print(
        &value,
        &[
            ("Name", "/name"),
            ("DockerHost", "/dockerHost"),
            ("Handler", "/handler"),
            ("Daemon", "/daemon/status"),
            ("Context", "/context"),
        ],
    )
}

/// Deletes what a failed run created: the resource group when it made it (which takes the
/// rest), else each resource, newest first.
async fn roll_back(arm: &Arm, made: &[(String, String)]) -> anyhow::Result<()> {
    if let Some((_, group)) = made.iter().find(|(k, _)| k == "resource group") {
        arm.delete(&format!("{group}?api-version={RESOURCES_API}")).await?;
        return Ok(());
    }
    for (kind, id) in made.iter().rev() {
        let api = if kind == "VM" { COMPUTE_API } else { NETWORK_API };
        arm.delete(&format!("{id}?api-version={api}")).await?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments, clippy::too_many_lines)]
async fn deploy(
    ctx: &Ctx,
    arm: &Arm,
    sub: &str,
    spec: &Spec,
    created: &Created,
    reused: &Created,
    no_wait: bool,
) -> anyhow::Result<Value> {
    let group_id = format!("/subscriptions/{sub}/resourceGroups/{}", spec.group);
    let existing_group = match arm.get(&format!("{group_id}?api-version={RESOURCES_API}")).await {
        Ok(rg) => Some(rg),
        Err(e) if e.status() == Some(404) => None,
        Err(e) => return Err(e.into()),
    };
    let location = spec.location.clone().unwrap_or_else(|| {
        existing_group.as_ref().and_then(|rg| rg["location"].as_str()).unwrap_or("westeurope").to_owned()
    });
    let image = images::resolve(arm, sub, &location, &spec.image).await?;
    if image.os_type == Some(OsType::Windows) {
        bail!(Usage::new("the image is Windows; a Docker host needs a Linux image such as Ubuntu2404"));
    }
    if existing_group.is_some() {
        reused.add("resource group", &group_id);
    } else {
        arm.put(&format!("{group_id}?api-version={RESOURCES_API}"), &json!({"location": location})).await?;
        created.add("resource group", &group_id);
    }

    let net = format!("{group_id}/providers/Microsoft.Network");
    let name = &spec.name;
    let (vnet_id, nsg_id, pip_id, nic_id) = (
        format!("{net}/virtualNetworks/{name}VNET"),
        format!("{net}/networkSecurityGroups/{name}NSG"),
        format!("{net}/publicIPAddresses/{name}PublicIP"),
        format!("{net}/networkInterfaces/{name}VMNic"),
    );
    let sources = if spec.allow_from.is_empty() { vec!["*".to_owned()] } else { spec.allow_from.clone() };
    // The rules the host needs: Docker's port, and SSH when asked for.
    let wanted: Vec<(&str, u16)> = std::iter::once((azdock_ext_docker::RULE_NAME, spec.port))
        .chain(spec.ssh_port.map(|p| ("azdock-ssh", p)))
        .collect();
    let rules: Vec<Value> = wanted
        .iter()
        .zip([1000, 1010])
        .map(|((rule, port), priority)| json!({"name": rule, "properties": host::network::inbound_rule(*port, azdock_core::Protocol::Tcp, &sources, priority)["properties"]}))
        .collect();
    let vnet_body = json!({"location": location, "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]},
        "subnets": [{"name": format!("{name}Subnet"), "properties": {"addressPrefix": "10.0.0.0/24"}}]}});
    let nsg_body = json!({"location": location, "properties": {"securityRules": rules}});
    let pip_body = json!({"location": location, "sku": {"name": "Standard"},
        "properties": {"publicIPAllocationMethod": "Static", "dnsSettings": {"domainNameLabel": name}}});
    // Independent resources together.
    let (vnet, nsg, pip) = tokio::try_join!(
        ensure(arm, created, reused, "virtual network", &vnet_id, NETWORK_API, &vnet_body),
        ensure(arm, created, reused, "network security group", &nsg_id, NETWORK_API, &nsg_body),
        ensure(arm, created, reused, "public IP", &pip_id, NETWORK_API, &pip_body),
    )?;
    // A reused NSG gets the rules it lacks, each at its own free priority; a reused VNet is used
    // through its first subnet.
    let mut model: NetworkSecurityGroup = serde_json::from_value(nsg).context("unexpected NSG from Azure")?;
    for (rule, port) in &wanted {
        if model.properties.security_rules.iter().any(|r| r.name.eq_ignore_ascii_case(rule)) {
            continue;
        }
        let priority = host::network::free_priority(&model, rule);
        let path = format!("{nsg_id}/securityRules/{rule}?api-version={NETWORK_API}");
        arm.put(&path, &host::network::inbound_rule(*port, azdock_core::Protocol::Tcp, &sources, priority)).await?;
        let properties = SecurityRuleProperties { priority, ..SecurityRuleProperties::default() };
        model.properties.security_rules.push(SecurityRule {
            name: (*rule).to_owned(),
            properties,
            ..SecurityRule::default()
        });
    }
    let subnet_id = vnet["properties"]["subnets"][0]["id"]
        .as_str()
        .map_or_else(|| format!("{vnet_id}/subnets/{name}Subnet"), str::to_owned);
    let ip = pip["properties"]["ipAddress"].as_str().map(str::to_owned);
    let fqdn = pip["properties"]["dnsSettings"]["fqdn"].as_str().map(str::to_owned);

    // The server certificate while the NIC is made: it needs only the IP and the FQDN.
    let mint = async {
        let mut dns: Vec<String> = fqdn.iter().cloned().collect();
        let mut ips: Vec<String> = ip.iter().cloned().collect();
        for san in &spec.cert_sans {
            if san.parse::<std::net::IpAddr>().is_ok() { ips.push(san.clone()) } else { dns.push(san.clone()) }
        }
        let request = ServerRequest::new(name, &dns, &ips)?;
        let store = CertStore::new(&spec.cert_dir);
        super::certs::with_passphrases(|p| store.server(&request, p))?;
        anyhow::Ok(())
    };
    let nic_body = json!({"location": location, "properties": {
        "networkSecurityGroup": {"id": nsg_id},
        "ipConfigurations": [{"name": "ipconfig1", "properties": {"subnet": {"id": subnet_id}, "publicIPAddress": {"id": pip_id}}}]}});
    let ((), _) = tokio::try_join!(mint, ensure(arm, created, reused, "NIC", &nic_id, NETWORK_API, &nic_body))?;

    let vm_id = format!("{group_id}/providers/Microsoft.Compute/virtualMachines/{name}");
    let mut os_profile = json!({"computerName": name, "adminUsername": spec.user, "linuxConfiguration": {"disablePasswordAuthentication": matches!(spec.login, Login::Key(_))}});
    match &spec.login {
        Login::Password(p) => os_profile["adminPassword"] = json!(p.expose()),
        Login::Key(k) => {
            os_profile["linuxConfiguration"]["ssh"] =
                json!({"publicKeys": [{"path": format!("/home/{}/.ssh/authorized_keys", spec.user), "keyData": k}]});
        }
    }
    if spec.handler == Delivery::CloudInit {
        let request = azdock_core::PlanRequest {
            action: "install".into(),
            args: install_args(spec),
            facts: placeholder_facts(name, sub, &spec.group, &location, fqdn.as_deref(), ip.as_deref(), &spec.user),
            run_id: host::run_id(),
        };
        let setup = azdock_ext_docker::docker_setup(&request, spec.port, spec.options.clone())?;
        os_profile["customData"] =
            json!(base64::engine::general_purpose::STANDARD.encode(setup.cloud_config().expose()));
    }
    let vm_body = json!({"location": location, "properties": {
        "hardwareProfile": {"vmSize": spec.size},
        "storageProfile": {"imageReference": image.reference, "osDisk": {"createOption": "FromImage", "deleteOption": "Delete"}},
        "osProfile": os_profile,
        "networkProfile": {"networkInterfaces": [{"id": nic_id, "properties": {"primary": true}}]}}});
    ctx.info(&format!(
        "creating VM {name} ({})…",
        image
            .exact_version
            .as_deref()
            .map_or_else(|| args_image(&spec.image), |v| format!("{} {v}", args_image(&spec.image)))
    ));
    ensure(arm, created, reused, "VM", &vm_id, COMPUTE_API, &vm_body).await.map_err(vm_error)?;

    let addr = VmAddr::new(sub, &spec.group, name);
    let vm = host::vm::inspect(arm, &addr).await?;
    let (address, _) = vm.endpoint()?;
    let extra = (spec.options.as_slice(), spec.allow_from.as_slice(), spec.cert_sans.as_slice());
    let (entry, daemon) = if spec.handler == Delivery::CloudInit {
        // cloud-init already ran at first boot; wait for its daemon.
        let entry = docker::host_entry(&vm, &address, spec.port, spec.handler.name(), &spec.cert_dir, extra);
        HostRecord::new(&crate::config::data_dir()?).record(entry.clone())?;
        let daemon = if no_wait || !docker::local_daemon_possible(&vm, ctx) {
            json!({"status": if no_wait { "not checked (--no-wait)" } else { "cannot run locally" }})
        } else {
            if let Some(why) = host::diagnose::local_daemon_trouble(arm, &vm).await {
                bail!(why);
            }
            let identity = host::docker::identity(&spec.cert_dir);
            match host::probe::wait(&address, spec.port, &identity, std::time::Duration::from_secs(600)).await {
                Ok(info) => {
                    json!({"status": "running", "version": info.version["Version"], "apiVersion": info.version["ApiVersion"]})
                }
                Err(f) => bail!(host::diagnose::explain(arm, &vm, &address, spec.port, &f).await),
            }
        };
        (entry, daemon)
    } else {
        let mut args = install_args(spec);
        // Announced above already when open to any address; `*` keeps the plan from saying it again.
        args.insert("allow-from".into(), ArgValue::List(sources.clone()));
        let handler = spec.handler.handler().unwrap_or(Handler::CustomScript);
        let data_dir = crate::config::data_dir()?;
        let how = docker::Install { action: "install", handler, cert_dir: &spec.cert_dir, extra, wait: !no_wait };
        let docker_ext = crate::plugins::builtin("docker")?;
        docker::install_on(ctx, &host::Host { arm, data_dir: &data_dir, events: ctx }, &*docker_ext, vm, args, how)
            .await?
    };
    let context = docker::finish_client(ctx, &entry);
    let mut report = host::docker::report(&entry, &daemon, &Value::Null, context.as_deref());
    report["created"] =
        json!(created.list().iter().map(|(k, id)| format!("{k} {}", host::short(id))).collect::<Vec<_>>());
    report["reused"] =
        json!(reused.list().iter().map(|(k, id)| format!("{k} {}", host::short(id))).collect::<Vec<_>>());
    report["image"] = json!(image.exact_version.map(|v| format!("{}:{v}", args_image(&spec.image))));
    report.as_object_mut().map(|o| o.remove("certificate"));
    Ok(report)
}

/// The image as the user would write it, for messages.
fn args_image(spec: &ImageSpec) -> String {
    match spec {
        ImageSpec::Urn { publisher, offer, sku, .. } => format!("{publisher}:{offer}:{sku}"),
        ImageSpec::Id(id) => host::short(id),
    }
}

/// A VM create failure, with what the user can do about the common ones.
fn vm_error(e: anyhow::Error) -> anyhow::Error {
    let code = e.downcast_ref::<AzureError>().and_then(AzureError::code).map(str::to_owned);
    match code.as_deref() {
        Some("SkuNotAvailable") => {
            e.context("the VM size is not offered in this location: choose another --size or -l")
        }
        _ => e,
    }
}

/// The install arguments from the spec.
fn install_args(spec: &Spec) -> Args {
    let mut args = Args::new();
    args.insert("port".into(), ArgValue::Integer(i64::from(spec.port)));
    args.insert("handler".into(), ArgValue::Text(spec.handler.name().into()));
    args.insert("docker-option".into(), ArgValue::List(spec.options.clone()));
    args.insert("cert-san".into(), ArgValue::List(spec.cert_sans.clone()));
    args.insert("docker-cert-dir".into(), ArgValue::Text(spec.cert_dir.to_string_lossy().into_owned()));
    args
}

/// Facts for a VM about to be created with cloud-init: what the certificate and the
/// cloud-config need (its name, addresses and admin user) before the VM exists.
fn placeholder_facts(
    name: &str,
    sub: &str,
    group: &str,
    location: &str,
    fqdn: Option<&str>,
    ip: Option<&str>,
    user: &str,
) -> azdock_core::VmFacts {
    azdock_core::VmFacts {
        name: name.into(),
        resource_group: group.into(),
        subscription_id: sub.into(),
        resource_id: VmAddr::new(sub, group, name).path(),
        location: location.into(),
        os_type: azdock_core::OsType::Linux,
        power_state: azdock_core::PowerState::Unknown,
        cloud: String::new(),
        admin_username: Some(user.into()),
        fqdn: fqdn.map(str::to_owned),
        public_ips: ip.and_then(|i| i.parse().ok()).into_iter().collect(),
        private_ips: Vec::new(),
        extensions: Vec::new(),
    }
}
