//! `azdock certs …`: the Docker TLS PKI in the certificate directory.

use std::io::Write as _;
use std::path::Path;

use anyhow::Context as _;
use azdock_certs::{CertStore, CheckStatus, Passphrases, Report, Rotation, ServerRequest};
use serde_json::json;
use zeroize::Zeroizing;

use super::{Ctx, interactive};
use crate::cli::{CertsArgs, CertsCommand};
use crate::error::Usage;
use crate::output::Columns;

const REPORT_COLUMNS: Columns = &[
    ("Role", "/role"),
    ("Host", "/host"),
    ("Status", "/status"),
    ("File", "/file"),
    ("Not After", "/notAfter"),
    ("Fingerprint (SHA-256)", "/fingerprintSha256"),
];
const SHOW_COLUMNS: Columns = &[
    ("Role", "/role"),
    ("Host", "/host"),
    ("Subject", "/subject"),
    ("SANs", "/sans"),
    ("Not After", "/notAfter"),
    ("Days Left", "/daysLeft"),
    ("Key", "/keyAlgorithm"),
];
const VERIFY_COLUMNS: Columns =
    &[("Subject", "/subject"), ("Check", "/check"), ("Status", "/status"), ("Detail", "/detail")];
const PATH_COLUMNS: Columns = &[("Cert Dir", "/certDir"), ("CA", "/ca"), ("Cert", "/cert"), ("Key", "/key")];

pub(crate) fn run(ctx: &Ctx, args: CertsArgs, default_dir: Option<&Path>) -> anyhow::Result<()> {
    let dir = crate::config::docker_cert_dir(args.docker_cert_dir.as_deref(), default_dir)?;
    let store = CertStore::new(dir);
    with_passphrases(|passphrases| run_with(ctx, &store, args.command, passphrases))
}

/// Runs `f` with the CA key's passphrases: `AZDOCK_CA_KEY_PASSPHRASE`, then a prompt when a
/// person is at the terminal.
pub(crate) fn with_passphrases<T>(f: impl FnOnce(&Passphrases<'_>) -> T) -> T {
    let given = std::env::var("AZDOCK_CA_KEY_PASSPHRASE").ok().map(Zeroizing::new);
    let prompt = |path: &Path| -> Option<Zeroizing<String>> {
        rpassword::prompt_password(format!("Passphrase for `{}`: ", path.display())).ok().map(Zeroizing::new)
    };
    let passphrases = Passphrases {
        given: given.as_ref().map(|s| s.as_str()),
        prompt: if interactive() { Some(&prompt) } else { None },
    };
    f(&passphrases)
}

fn run_with(ctx: &Ctx, store: &CertStore, command: CertsCommand, passphrases: &Passphrases<'_>) -> anyhow::Result<()> {
    match command {
        CertsCommand::Init => report(ctx, &store.init(passphrases)?),
        CertsCommand::Server { host, dns, ips } => {
            let request = ServerRequest::new(&host, &dns, &ips)?;
            report(ctx, &store.server(&request, passphrases)?)
        }
        CertsCommand::Show => {
            let infos = store.show()?;
            if infos.is_empty() {
                ctx.warn(&format!("no certificates in `{}`; run `azdock certs init`", store.dir().display()));
            }
            ctx.print(&serde_json::to_value(infos)?, SHOW_COLUMNS)
        }
        CertsCommand::Verify { hosts, sans } => {
            let checks = store.verify(&hosts, &sans, passphrases)?;
            ctx.print(&serde_json::to_value(&checks)?, VERIFY_COLUMNS)?;
            let failed = checks.iter().filter(|c| c.status == CheckStatus::Failed).count();
            if failed > 0 {
                anyhow::bail!("{failed} of {} checks failed in `{}`", checks.len(), store.dir().display());
            }
            Ok(())
        }
        CertsCommand::Rotate { server, client, ca, dns, ips, yes } => {
            let rotation = if let Some(host) = server {
                Rotation::Server(ServerRequest::new(&host, &dns, &ips)?)
            } else if client {
                Rotation::Client
            } else {
                debug_assert!(ca, "clap requires one of --server, --client, --ca");
                confirm_ca_rotation(store, yes)?;
                Rotation::Ca
            };
            let result = store.rotate(&rotation, passphrases)?;
            if !result.redeploy.is_empty() {
                ctx.warn(&format!(
                    "the CA changed: redeploy the certificates of {} (`azdock ext docker rotate-certs`); their old certificates are in `{}`",
                    result.redeploy.join(", "),
                    result.backup_dir.as_deref().unwrap_or(store.dir()).display()
                ));
            }
            report(ctx, &result)
        }
        CertsCommand::Path => ctx.print(
            &json!({
                "certDir": store.dir(),
                "ca": store.ca_path(),
                "cert": store.client_cert_path(),
                "key": store.client_key_path(),
            }),
            PATH_COLUMNS,
        ),
    }
}

fn report(ctx: &Ctx, report: &Report) -> anyhow::Result<()> {
    for warning in &report.warnings {
        ctx.warn(warning);
    }
    // Tables show one row per certificate; json keeps the whole report.
    let value = if ctx.query.is_none() && ctx.format == crate::output::Format::Table {
        serde_json::to_value(&report.certificates)?
    } else {
        serde_json::to_value(report)?
    };
    ctx.print(&value, REPORT_COLUMNS)
}

fn confirm_ca_rotation(store: &CertStore, yes: bool) -> anyhow::Result<()> {
    if yes {
        return Ok(());
    }
    let hosts = store.server_hosts()?;
    let impact = if hosts.is_empty() { String::from("every Docker host using it") } else { hosts.join(", ") };
    if !interactive() {
        return Err(Usage::new(format!(
            "rotating the CA in `{}` invalidates the certificates of {impact}; pass `--yes` to confirm",
            store.dir().display()
        ))
        .into());
    }
    eprint!("Rotating the CA invalidates the certificates of {impact}. Continue? [y/N] ");
    std::io::stderr().flush().ok();
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer).context("cannot read the answer")?;
    if matches!(answer.trim(), "y" | "Y" | "yes") { Ok(()) } else { Err(Usage::new("CA rotation cancelled").into()) }
}
