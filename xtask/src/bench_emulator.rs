//! The local cloud's throughput and memory: simple GETs per second over HTTPS with keep-alive,
//! and the resident memory of `azdock local serve` holding 1,000 VMs.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

/// One line of the second table.
pub(crate) struct Measure {
    pub what: String,
    pub value: String,
    pub target: &'static str,
}

struct Cloud {
    http: reqwest::Client,
    base: String,
    token: String,
    sub: String,
}

impl Cloud {
    async fn put(&self, path: &str, body: Value) -> anyhow::Result<()> {
        let resp = self.http.put(format!("{}{path}", self.base)).bearer_auth(&self.token).json(&body).send().await?;
        if !resp.status().is_success() {
            bail!("PUT {path}: {} {}", resp.status(), resp.text().await.unwrap_or_default());
        }
        Ok(())
    }
}

pub(crate) fn run(bin: &Path, home: &Path) -> anyhow::Result<Vec<Measure>> {
    let data = home.join("local-data");
    let azdock = |args: &[&str]| -> anyhow::Result<Value> {
        let out = Command::new(bin)
            .args(args)
            .env("HOME", home)
            .env("AZDOCK_DATA_DIR", &data)
            .env("AZDOCK_CONFIG_DIR", home.join("config"))
            .output()?;
        if !out.status.success() {
            bail!("azdock {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
        }
        Ok(serde_json::from_slice(&out.stdout).unwrap_or(Value::Null))
    };
    let up = azdock(&["local", "up", "--instant", "--no-throttle", "-o", "json"])?;
    let result = tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(measure(&up));
    // The fleet read through the real binary, against the 1,000 VMs `measure` created.
    let fleet = result.as_ref().ok().map(|_| fleet_read(bin, home, &data));
    let fan_out = result.as_ref().ok().map(|_| ext_fan_out(bin, home, &data, &up));
    azdock(&["local", "down", "-o", "json"])?;
    let mut measures = result?;
    if let Some(fleet) = fleet {
        measures.push(fleet?);
    }
    if let Some(fan_out) = fan_out {
        measures.extend(fan_out?);
    }
    measures.extend(docker_create(bin, home)?);
    Ok(measures)
}

/// Fixed operation times for the `vm docker create` measure, in milliseconds.
const NETWORK_MS: u64 = 2000;
const VM_CREATE_MS: u64 = 6000;
const EXTENSION_MS: u64 = 3000;

/// `azdock vm docker create` against a local cloud whose operations take fixed times: the wall
/// time against the critical path (group → network resources together → NIC → VM → extension;
/// the group is synchronous), and the HTTP requests it made.
fn docker_create(bin: &Path, home: &Path) -> anyhow::Result<Vec<Measure>> {
    let home = home.join("docker-create");
    let data = home.join("data");
    std::fs::create_dir_all(&home)?;
    let azdock = |args: &[&str]| -> anyhow::Result<Value> {
        let out = azdock_against(bin, &home, &data, false).args(args).output()?;
        if !out.status.success() {
            bail!("azdock {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
        }
        Ok(serde_json::from_slice(&out.stdout).unwrap_or(Value::Null))
    };
    let durations = format!(
        "network={NETWORK_MS},vm-create={VM_CREATE_MS},extension={EXTENSION_MS},vm-action=1000,delete=1000,group-delete=1000"
    );
    let up = azdock(&["local", "up", "--durations", &durations, "-o", "json"])?;
    // One create, timed; `extra` picks the transport.
    let create = |name: &str, extra: &[&str]| -> anyhow::Result<(std::time::Duration, Value)> {
        let start = Instant::now();
        let out = azdock_against(bin, &home, &data, false)
            .args(["--cloud", "local", "vm", "docker", "create", name, "--generate-ssh-keys", "-y", "-o", "json"])
            .args(extra)
            .output()?;
        let elapsed = start.elapsed();
        if !out.status.success() {
            bail!("vm docker create {name} {} failed: {}", extra.join(" "), String::from_utf8_lossy(&out.stderr));
        }
        Ok((elapsed, serde_json::from_slice(&out.stdout)?))
    };
    let result = (|| {
        let (elapsed, report) = create("benchhost", &[])?;
        let log = reqwest_blocking_log(&up)?;
        let warm = warm_show(bin, &home, &data, &up, &report)?;
        let before = reqwest_blocking_log(&up)?.len();
        let (ssh_elapsed, ssh_report) = create("benchssh", &["--transport", "ssh"])?;
        let ssh_requests = reqwest_blocking_log(&up)?.len() - before;
        anyhow::Ok((elapsed, report, log, warm, (ssh_elapsed, ssh_report, ssh_requests)))
    })();
    azdock(&["local", "down", "-o", "json"])?;
    let (elapsed, report, log, warm, (ssh_elapsed, ssh_report, ssh_requests)) = result?;
    #[allow(clippy::cast_precision_loss)]
    let critical = (NETWORK_MS * 2 + VM_CREATE_MS + EXTENSION_MS) as f64 / 1000.0;
    let requests = log.len();
    let arm = log.iter().filter(|e| e["path"].as_str().is_some_and(|p| p.starts_with("/subscriptions"))).count();
    let daemon = |r: &Value| r["daemon"]["status"].as_str().unwrap_or("?").to_owned();
    let against = |t: std::time::Duration| {
        format!("{:.2} s ({:+.1}%)", t.as_secs_f64(), (t.as_secs_f64() / critical - 1.0) * 100.0)
    };
    Ok(vec![
        warm,
        Measure {
            what: format!(
                "`vm docker create` (network {NETWORK_MS} ms, VM {VM_CREATE_MS} ms, extension {EXTENSION_MS} ms; critical path {critical:.1} s; daemon {}; {requests} HTTP requests, {arm} to ARM)",
                daemon(&report)
            ),
            value: against(elapsed),
            target: "within 10% of the critical path",
        },
        Measure {
            what: format!(
                "`vm docker create --transport ssh` (same times and critical path; daemon {} over SSH; {ssh_requests} HTTP requests)",
                daemon(&ssh_report)
            ),
            value: against(ssh_elapsed),
            target: "within 10% of the critical path",
        },
    ])
}

/// A warm `vm show` of the host just made: the token and the subscription are kept from the
/// create, so each run should make one ARM GET and nothing else (median of 20 runs).
fn warm_show(bin: &Path, home: &Path, data: &Path, up: &Value, report: &Value) -> anyhow::Result<Measure> {
    let group = report["resourceGroup"].as_str().context("the create reported no resource group")?;
    let runs = 20;
    let before = reqwest_blocking_log(up)?.len();
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        let out = azdock_against(bin, home, data, false)
            .args(["--cloud", "local", "vm", "show", "-n", "benchhost", "-g", group, "-o", "none"])
            .output()?;
        times.push(start.elapsed());
        if !out.status.success() {
            bail!("vm show failed: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
    times.sort();
    let log = reqwest_blocking_log(up)?;
    let made: Vec<&Value> =
        log[before..].iter().filter(|e| !e["path"].as_str().is_some_and(|p| p.starts_with("/_emulator/"))).collect();
    let arm = made.iter().filter(|e| e["path"].as_str().is_some_and(|p| p.starts_with("/subscriptions"))).count();
    #[allow(clippy::cast_precision_loss)]
    let per_run = |n: usize| n as f64 / runs as f64;
    Ok(Measure {
        what: "warm `vm show` (token and subscription kept from the last run; median of 20)".into(),
        value: format!(
            "{:.1} ms; {:.1} requests per run ({:.1} to ARM)",
            times[runs / 2].as_secs_f64() * 1000.0,
            per_run(made.len()),
            per_run(arm)
        ),
        target: "1 ARM GET and nothing else",
    })
}

/// The local cloud's request log, every entry.
/// The header and key the local cloud's admin routes require (azdock-emulator's
/// `ADMIN_KEY_HEADER`; xtask does not link the emulator).
const ADMIN_KEY_HEADER: &str = "x-azdock-admin-key";

/// The admin key of the local cloud `local up` printed, from its state directory.
fn admin_key(up: &Value) -> anyhow::Result<String> {
    let dir = up["stateDir"].as_str().context("`local up` printed no stateDir")?;
    let path = std::path::Path::new(dir).join("admin.key");
    Ok(std::fs::read_to_string(&path).with_context(|| format!("cannot read `{}`", path.display()))?.trim().to_owned())
}

fn reqwest_blocking_log(up: &Value) -> anyhow::Result<Vec<Value>> {
    let text = |k: &str| up[k].as_str().map(str::to_owned).with_context(|| format!("`local up` printed no {k}"));
    let ca = std::fs::read(text("caCertificate")?)?;
    let base = text("endpoint")?;
    tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
        let http = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca)?)
            .tls_built_in_root_certs(false)
            .build()?;
        let key = admin_key(up)?;
        let log: Value =
            http.get(format!("{base}/_emulator/requests")).header(ADMIN_KEY_HEADER, key).send().await?.json().await?;
        Ok(log["requests"].as_array().cloned().unwrap_or_default())
    })
}

/// ARM's limits, which the emulator enforces as `local up` does by default.
const READS: (f64, f64) = (250.0, 25.0);
const WRITES: (f64, f64) = (200.0, 10.0);

/// Fleet commands over 500 of the VMs each, with ARM's throttling switched on and full buckets:
/// `ext set --ids` (vm0–vm499) and `ext vmaccess reset-password --ids` (vm500–vm999).
fn ext_fan_out(bin: &Path, home: &Path, data: &Path, up: &Value) -> anyhow::Result<Vec<Measure>> {
    let sub = up["subscriptionId"].as_str().context("`local up` printed no subscriptionId")?;
    let ids = |range: std::ops::Range<u32>| -> Vec<String> {
        range
            .map(|i| {
                format!("/subscriptions/{sub}/resourceGroups/bench/providers/Microsoft.Compute/virtualMachines/vm{i}")
            })
            .collect()
    };
    // The command's words, then the VMs' ids.
    let command = |head: &[&str], range: std::ops::Range<u32>| -> Vec<String> {
        head.iter().map(|s| (*s).to_owned()).chain(ids(range)).collect()
    };
    let set = command(
        &[
            "--cloud",
            "local",
            "ext",
            "set",
            "--publisher",
            "Microsoft.OSTCExtensions",
            "--type",
            "VMAccessForLinux",
            "--settings",
            r#"{"check_disk": true}"#,
            "--max-parallel",
            "32",
            "-o",
            "none",
            "--ids",
        ],
        0..500,
    );
    let reset = command(
        &[
            "--cloud",
            "local",
            "ext",
            "vmaccess",
            "reset-password",
            "-u",
            "benchops",
            "--password-stdin",
            "--max-parallel",
            "32",
            "-o",
            "none",
            "--ids",
        ],
        500..1000,
    );
    let mut out = throttled_run(bin, home, data, up, "`ext set --ids` over 500 VMs", &set, None)?;
    out.extend(throttled_run(
        bin,
        home,
        data,
        up,
        "`ext vmaccess reset-password --ids` over 500 VMs",
        &reset,
        Some("B3nch-Passw0rd!"),
    )?);
    Ok(out)
}

/// Runs one fleet command with ARM's limits in force and full buckets; the time against the
/// least the token buckets allow for the requests it made, the 429s ARM had to send, and the
/// client's peak memory.
fn throttled_run(
    bin: &Path,
    home: &Path,
    data: &Path,
    up: &Value,
    label: &str,
    args: &[String],
    stdin: Option<&str>,
) -> anyhow::Result<Vec<Measure>> {
    let text = |k: &str| up[k].as_str().map(str::to_owned).with_context(|| format!("`local up` printed no {k}"));
    let base = text("endpoint")?;
    let ca = std::fs::read(text("caCertificate")?)?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca)?)
        .tls_built_in_root_certs(false)
        .build()?;
    let key = admin_key(up)?;
    let admin = |method: reqwest::Method, path: &str, body: Option<Value>| -> anyhow::Result<Value> {
        rt.block_on(async {
            let mut req = http.request(method, format!("{base}/_emulator{path}")).header(ADMIN_KEY_HEADER, &key);
            if let Some(b) = body {
                req = req.json(&b);
            }
            let resp = req.send().await?;
            let status = resp.status();
            let text = resp.text().await?;
            if !status.is_success() {
                bail!("{path}: {status} {text}");
            }
            Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
        })
    };
    admin(
        reqwest::Method::PUT,
        "/throttle",
        Some(
            json!({"readBurst": READS.0, "readPerSec": READS.1, "writeBurst": WRITES.0, "writePerSec": WRITES.1, "deleteBurst": 200.0, "deletePerSec": 10.0}),
        ),
    )?;
    let before = admin(reqwest::Method::GET, "/requests?since=999999999999", None)?["last"].as_u64().unwrap_or(0);
    let mut cmd = azdock_against(bin, home, data, Path::new("/usr/bin/time").exists());
    cmd.args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let start = Instant::now();
    let mut child = cmd.spawn()?;
    if let Some(input) = stdin {
        std::io::Write::write_all(&mut child.stdin.take().context("no stdin")?, format!("{input}\n").as_bytes())?;
    }
    drop(child.stdin.take());
    let out = child.wait_with_output()?;
    let elapsed = start.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!("{label} failed: {stderr}");
    }
    let rss = stderr.lines().last().and_then(|l| l.trim().parse::<u64>().ok());
    let log = admin(reqwest::Method::GET, &format!("/requests?since={before}"), None)?;
    let entries = log["requests"].as_array().cloned().unwrap_or_default();
    let arm = entries.iter().filter(|e| e["path"].as_str().is_some_and(|p| p.starts_with("/subscriptions")));
    let (mut reads, mut writes, mut throttled) = (0u32, 0u32, 0u32);
    for e in arm {
        if e["status"] == 429 {
            throttled += 1;
        }
        if e["method"] == "GET" { reads += 1 } else { writes += 1 }
    }
    // The least time the buckets allow: what exceeds the burst, at the refill rate.
    let bound = |(burst, rate): (f64, f64), n: u32| ((f64::from(n) - burst) / rate).max(0.0);
    let floor = bound(READS, reads).max(bound(WRITES, writes));
    #[allow(clippy::cast_precision_loss)]
    let rss = rss.map_or_else(|| "-".to_owned(), |k| format!("{:.1} MB", k as f64 / 1024.0));
    Ok(vec![
        Measure {
            what: format!("{label}, ARM throttling on ({reads} reads, {writes} writes; bucket floor {floor:.1} s)"),
            value: format!(
                "{:.1} s ({:+.1}% over the floor)",
                elapsed.as_secs_f64(),
                (elapsed.as_secs_f64() / floor - 1.0) * 100.0
            ),
            target: "within 10% of the floor",
        },
        Measure {
            what: "  429s ARM sent / surfaced to the user; client peak RSS".into(),
            value: format!("{throttled} / 0; {rss}"),
            target: "0 surfaced; < 50 MB",
        },
    ])
}

/// The azdock binary with the bench's home and local cloud, under GNU time (`%M`, peak RSS in
/// KiB on the last line of stderr) when `timed`.
fn azdock_against(bin: &Path, home: &Path, data: &Path, timed: bool) -> Command {
    let mut cmd = if timed { Command::new("/usr/bin/time") } else { Command::new(bin) };
    if timed {
        cmd.args(["-f", "%M"]).arg(bin);
    }
    cmd.env("HOME", home).env("AZDOCK_DATA_DIR", data).env("AZDOCK_CONFIG_DIR", home.join("config"));
    cmd
}

/// `azdock --cloud local vm list` over 1,000 VMs: median wall time of 5 runs, and peak RSS.
fn fleet_read(bin: &Path, home: &Path, data: &Path) -> anyhow::Result<Measure> {
    let run = |timed: bool| -> anyhow::Result<(Duration, Option<u64>)> {
        let mut cmd = azdock_against(bin, home, data, timed);
        cmd.args(["--cloud", "local", "vm", "list", "-o", "none"]);
        let start = Instant::now();
        let out = cmd.output()?;
        let elapsed = start.elapsed();
        if !out.status.success() {
            bail!("azdock vm list failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let rss = timed
            .then(|| String::from_utf8_lossy(&out.stderr).lines().last().and_then(|l| l.trim().parse().ok()))
            .flatten();
        Ok((elapsed, rss))
    };
    let mut times = (0..5).map(|_| run(false).map(|(t, _)| t)).collect::<anyhow::Result<Vec<_>>>()?;
    times.sort();
    let rss = if Path::new("/usr/bin/time").exists() { run(true)?.1 } else { None };
    #[allow(clippy::cast_precision_loss)]
    let rss = rss.map_or_else(|| "-".to_owned(), |k| format!("{:.1} MB", k as f64 / 1024.0));
    Ok(Measure {
        what: "`azdock --cloud local vm list` over 1,000 VMs (median of 5; peak RSS)".into(),
        value: format!("{:.0} ms; {rss}", times[2].as_secs_f64() * 1000.0),
        target: "-",
    })
}

async fn measure(up: &Value) -> anyhow::Result<Vec<Measure>> {
    let text = |k: &str| up[k].as_str().map(str::to_owned).with_context(|| format!("`local up` printed no {k}"));
    let ca = std::fs::read(text("caCertificate")?)?;
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca)?)
        .tls_built_in_root_certs(false)
        .pool_max_idle_per_host(16)
        .build()?;
    let base = text("endpoint")?;
    let form = [
        ("grant_type", "client_credentials".to_owned()),
        ("client_id", text("clientId")?),
        ("client_secret", text("clientSecret")?),
        ("scope", format!("{base}/.default")),
    ];
    let token: Value =
        http.post(format!("{base}/{}/oauth2/v2.0/token", text("tenantId")?)).form(&form).send().await?.json().await?;
    let cloud = Cloud {
        http,
        base,
        token: token["access_token"].as_str().context("no token")?.to_owned(),
        sub: text("subscriptionId")?,
    };
    let pid = up["pid"].as_u64().context("no pid")?;
    let rg = format!("/subscriptions/{}/resourcegroups/bench", cloud.sub);
    cloud.put(&format!("{rg}?api-version=2021-04-01"), json!({"location": "westeurope"})).await?;

    let get = throughput(&cloud, &format!("{}{rg}?api-version=2021-04-01", cloud.base)).await?;
    // 1,000 VMs, each with its NIC, created eight at a time.
    let net = format!("/subscriptions/{}/resourceGroups/bench/providers/Microsoft.Network", cloud.sub);
    cloud
        .put(
            &format!("{net}/virtualNetworks/vnet?api-version=2024-05-01"),
            json!({"location": "westeurope", "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}, "subnets": [{"name": "default", "properties": {"addressPrefix": "10.0.0.0/16"}}]}}),
        )
        .await?;
    let cloud = std::sync::Arc::new(cloud);
    let fleet = fleet(cloud.clone(), &net, pid).await?;
    let durable = durable_puts(&cloud).await?;
    Ok(std::iter::once(get).chain(fleet).chain([durable]).collect())
}

/// Resource-group PUTs, 16 in flight: each is answered only once the journal has it on disk,
/// so this is the rate of acknowledged, durable writes (concurrent ones share an fsync).
async fn durable_puts(cloud: &std::sync::Arc<Cloud>) -> anyhow::Result<Measure> {
    let (workers, each) = (16, 150);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..workers {
        let cloud = cloud.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..each {
                let path =
                    format!("/subscriptions/{}/resourcegroups/durable-{w}-{i}?api-version=2021-04-01", cloud.sub);
                cloud.put(&path, json!({"location": "westeurope"})).await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    #[allow(clippy::cast_precision_loss)]
    let rate = f64::from(workers * each) / start.elapsed().as_secs_f64();
    Ok(Measure {
        what: "acknowledged PUTs, each on disk before its answer (resource groups, 16 in flight)".into(),
        value: format!("{rate:.0} PUT/s"),
        target: "(new)",
    })
}

/// Simple GETs with 8 keep-alive connections. wrk (Debian's `wrk`) is the load generator when
/// installed: cargo builds xtask without optimisations, so its own client would measure itself.
async fn throughput(cloud: &Cloud, url: &str) -> anyhow::Result<Measure> {
    let wrk = Command::new("wrk")
        .args(["-t1", "-c8", "-d5s", "-H", &format!("Authorization: Bearer {}", cloud.token), url])
        .output();
    if let Some(out) = wrk.ok().filter(|o| o.status.success()) {
        let text = String::from_utf8_lossy(&out.stdout);
        if text.contains("Non-2xx") {
            bail!("wrk saw failed requests:\n{text}");
        }
        let rate =
            text.lines().find_map(|l| l.strip_prefix("Requests/sec:")).map(str::trim).context("wrk printed no rate")?;
        return Ok(Measure {
            what: "emulator simple GETs over HTTPS (wrk, 8 keep-alive connections, 5 s)".into(),
            value: format!("{rate} req/s"),
            target: ">= 5,000 req/s",
        });
    }
    let (connections, per_connection) = (8, 2500);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (http, url, token) = (cloud.http.clone(), url.to_owned(), cloud.token.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..per_connection {
                let resp = http.get(&url).bearer_auth(&token).send().await?;
                if !resp.status().is_success() {
                    bail!("GET failed with {}", resp.status());
                }
                resp.bytes().await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    #[allow(clippy::cast_precision_loss)]
    let rate = f64::from(connections * per_connection) / start.elapsed().as_secs_f64();
    Ok(Measure {
        what: "emulator simple GETs over HTTPS (xtask's reqwest client; install `wrk` for the server's figure)".into(),
        value: format!("{rate:.0} req/s"),
        target: ">= 5,000 req/s",
    })
}

/// 1,000 VMs with their NICs, listed in one GET; the server's memory afterwards.
async fn fleet(cloud: std::sync::Arc<Cloud>, net: &str, pid: u64) -> anyhow::Result<Vec<Measure>> {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let (cloud, net) = (cloud.clone(), net.to_owned());
        tasks.push(tokio::spawn(async move {
            for i in (worker..1000).step_by(8) {
                let subnet = format!("{net}/virtualNetworks/vnet/subnets/default");
                let nic = json!({"location": "westeurope", "properties": {"ipConfigurations": [{"name": "ipconfig1", "properties": {"subnet": {"id": subnet}}}]}});
                cloud.put(&format!("{net}/networkInterfaces/nic{i}?api-version=2024-05-01"), nic).await?;
                let vm = json!({"location": "westeurope", "properties": {"hardwareProfile": {"vmSize": "Standard_B1s"},
                    "storageProfile": {"imageReference": {"publisher": "Canonical", "offer": "ubuntu-24_04-lts", "sku": "server", "version": "latest"}},
                    "osProfile": {"adminUsername": "azureuser", "adminPassword": "Sup3r-Secret!"},
                    "networkProfile": {"networkInterfaces": [{"id": format!("{net}/networkInterfaces/nic{i}")}]}}});
                cloud.put(&format!("/subscriptions/{}/resourceGroups/bench/providers/Microsoft.Compute/virtualMachines/vm{i}?api-version=2024-11-01", cloud.sub), vm).await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let create = start.elapsed();
    let start = Instant::now();
    let list: Value = cloud
        .http
        .get(format!(
            "{}/subscriptions/{}/providers/Microsoft.Compute/virtualMachines?api-version=2024-11-01",
            cloud.base, cloud.sub
        ))
        .bearer_auth(&cloud.token)
        .send()
        .await?
        .json()
        .await?;
    let list_time = start.elapsed();
    let vms = list["value"].as_array().map_or(0, Vec::len);
    if vms != 1000 {
        bail!("expected 1000 VMs in the list, got {vms}");
    }
    // Let the saver write the snapshot, which is part of the cost of holding them.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    #[allow(clippy::cast_precision_loss)]
    let mb = |kib: u64| format!("{:.1} MB", kib as f64 / 1024.0);
    Ok(vec![
        Measure {
            what: "create 1,000 VMs with their NICs (2,000 PUTs, 8 at a time)".into(),
            value: format!("{:.2} s", create.as_secs_f64()),
            target: "-",
        },
        Measure {
            what: "list 1,000 VMs in one GET".into(),
            value: format!("{:.1} ms", list_time.as_secs_f64() * 1000.0),
            target: "-",
        },
        Measure {
            what: "`azdock local serve` resident memory holding 1,000 VMs (VmRSS / VmHWM)".into(),
            value: format!("{} / {}", mb(field("VmRSS:")), mb(field("VmHWM:"))),
            target: "< 100 MB",
        },
    ])
}
