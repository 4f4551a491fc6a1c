//! `cargo xtask bench`: the performance table. Wall times are medians over repeated runs of the
//! release binary (and of xtask's own release build for what it measures in-process); peak RSS
//! comes from GNU time (`/usr/bin/time`, Debian's `time` package).
//!
//! The rows that create files depend on the disk's recent past: ext4 without a journal (this
//! project's machines) makes each new inode skip those deleted in the last one to six minutes
//! (`recently_deleted`), so right after a large deletion in the same block group every file
//! costs more. /tmp is where every build and test run makes and deletes its files (rustc's and
//! the linker's temporaries, the test suite's directories, a previous bench's work directory):
//! `certs server` was measured 1 ms slower in a new directory there than in one beside it in
//! the home directory, run for run in turn. A user's certificates live in their home
//! (`~/.docker`), so the rows that write certificates run in a temporary directory there, each
//! run by run in turn with its floors, which show what the disk and a bare process start asked
//! at the same moments.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use azdock_certs::{CertStore, Passphrases, ServerRequest};

struct Row {
    task: String,
    runs: usize,
    median: Duration,
    p90: Duration,
    rss_kib: Option<u64>,
    target: &'static str,
}

pub(crate) fn run(root: &Path) -> anyhow::Result<()> {
    // What runs in this process (the store in-process, the emulator's client) is measured
    // optimised too: `cargo xtask` is a debug build, so it hands the bench to its release self.
    if cfg!(debug_assertions) {
        crate::cmd("cargo", &["build", "--release", "--locked", "-p", "xtask", "-p", "azdock"])?;
        return crate::cmd(&root.join("target/release/xtask").to_string_lossy(), &["bench"]);
    }
    crate::cmd("cargo", &["build", "--release", "--locked", "-p", "azdock"])?;
    let bin = root.join("target/release/azdock");
    let work = tempfile::tempdir()?;
    let home = work.path().to_owned();
    let gnu_time = Path::new("/usr/bin/time").exists();
    if !gnu_time {
        eprintln!("note: /usr/bin/time is missing (`apt-get install time`); peak RSS is not measured");
    }
    let azdock = |args: &[&str]| {
        let mut c = Command::new(&bin);
        c.args(args).env("HOME", &home).env("AZDOCK_CONFIG_DIR", home.join("config")).stdout(Stdio::null());
        c
    };

    let mut rows = Vec::new();
    for (task, args, target) in [
        ("azdock --help", vec!["--help"], "< 10 ms, < 15 MB"),
        ("azdock ext list", vec!["ext", "list"], "< 10 ms, < 15 MB"),
    ] {
        rows.push(measure_process(task, 100, target, gnu_time, |_| azdock(&args))?);
    }
    // Removed at the end, after every row: its thousands of files, deleted, would slow the
    // creates of the rows after it on this disk (see the module's doc).
    let certs_work = certs_work_dir()?;
    rows.extend(certificate_rows(certs_work.path(), &azdock, gnu_time)?);
    // `ext list` with ten plugins, each a small plugin library with its own id; built after the
    // rows that write files, because a build writes and deletes many files (rustc's
    // temporaries, target/), whose writeback and freed inodes slow this disk for minutes: a
    // cost of the build, not of what is measured.
    let plugin_dir = home.join("plugins");
    std::fs::create_dir_all(&plugin_dir)?;
    for i in 0..10 {
        let status = Command::new("cargo")
            .args(["build", "-q", "--locked", "-p", "azdock-test-plugin-misbehave"])
            .env("AZDOCK_TEST_PLUGIN_ID", format!("bench{i}"))
            .current_dir(root)
            .status()?;
        if !status.success() {
            bail!("cannot build the bench plugins");
        }
        let lib = plugin_dir.join(format!("bench{i}.so"));
        std::fs::copy(root.join("target/debug/libazdock_test_plugin_misbehave.so"), &lib)?;
        std::fs::set_permissions(&lib, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    }
    let with_plugins = measure_process("azdock ext list (10 plugins)", 100, "< 15 ms", gnu_time, |_| {
        let mut cmd = azdock(&["ext", "list"]);
        cmd.env("AZDOCK_PLUGIN_PATH", &plugin_dir);
        cmd
    })?;
    rows.insert(2, with_plugins);
    // For scale: the classic CLI's openssl sequence (RSA 2048, nine processes).
    let classic = home.join("classic");
    let times = (0..5).map(|i| classic_openssl(&classic.join(i.to_string()))).collect();
    rows.push(row("classic CLI openssl sequence (9 processes)", times, None, "(comparison)"));

    print_table(&rows);
    let measures = crate::bench_emulator::run(&bin, &home)?;
    println!();
    println!("| measure | value | target |");
    println!("|---|---:|---|");
    for m in measures {
        println!("| {} | {} | {} |", m.what, m.value, m.target);
    }
    Ok(())
}

/// The rows that write a full PKI (CA, client and one server certificate) to a new directory:
/// through the CLI and through the library, each beside its floors.
fn certificate_rows(work: &Path, azdock: &impl Fn(&[&str]) -> Command, gnu_time: bool) -> anyhow::Result<Vec<Row>> {
    // A full PKI through the CLI: CA, client and one server certificate written to a new dir,
    // in the user's home as `~/.docker` is (see the module's doc). Run by run in turn with two
    // floors at the same moments, because this disk's speed moves from minute to minute: the
    // same files written by this process without crypto, and a process that does nothing.
    let mut rows = Vec::new();
    settle_disk()?;
    let dirs = work.join("pki");
    let certs_server = |i: usize| {
        let dir = dirs.join(i.to_string());
        let dir = dir.to_string_lossy().into_owned();
        azdock(&[
            "certs",
            "server",
            "vm1",
            "--dns",
            "vm1.westeurope.cloudapp.azure.com",
            "--ip",
            "20.1.2.3",
            "-C",
            &dir,
        ])
    };
    let nothing = || {
        let mut c = Command::new("true");
        c.stdout(Stdio::null());
        c
    };
    let (mut disk_times, mut start_times) = (Vec::new(), Vec::new());
    // The page cache holds `true` too, as the process row's warm-up run makes it hold azdock.
    nothing().status()?;
    let process = measure_process_beside(
        "azdock certs server (full PKI, new dir)",
        50,
        "< 3 ms (issue 14)",
        gnu_time,
        certs_server,
        |i| {
            disk_times.push(write_like(&dirs.join(i.to_string()), &work.join("pki-floor").join(i.to_string()))?);
            start_times.push(time_run("true", &mut nothing())?);
            Ok(())
        },
    )?;
    rows.push(process);
    rows.push(row("  beside it: the same files, no crypto (the disk's floor)", disk_times, None, "(floor)"));
    rows.push(row("  beside it: a process that does nothing (`true`)", start_times, None, "(floor)"));
    // The same through the library, without process start-up; and, run by run in turn so that
    // the disk's drift hits both alike, what the disk alone asks for the same files (names,
    // contents and modes as the store wrote them; written, synced, renamed, the directory
    // synced — no keys, no certificates, no process): the floor under it.
    let lib_dirs = work.join("lib");
    let floor_dirs = work.join("floor");
    let request = ServerRequest::new("vm1", &["vm1.westeurope.cloudapp.azure.com".into()], &["20.1.2.3".into()])?;
    let (mut store_times, mut floor_times) = (Vec::new(), Vec::new());
    settle_disk()?;
    for i in 0..200 {
        let dir = lib_dirs.join(i.to_string());
        let start = Instant::now();
        CertStore::new(&dir).server(&request, &Passphrases::NONE)?;
        store_times.push(start.elapsed());
        floor_times.push(write_like(&dir, &floor_dirs.join(i.to_string()))?);
    }
    rows.push(row("CertStore::server in-process (full PKI)", store_times, None, "< 10 ms"));
    rows.push(row("  beside it: the same files, no crypto (the disk's floor)", floor_times, None, "(floor)"));
    Ok(rows)
}

/// A new directory in the user's home for the rows that write certificates, removed when
/// dropped; the system's temporary directory where the home has no room for one.
fn certs_work_dir() -> anyhow::Result<tempfile::TempDir> {
    let in_home = std::env::var_os("HOME")
        .map(|home| tempfile::Builder::new().prefix(".azdock-bench-").tempdir_in(home))
        .transpose();
    match in_home {
        Ok(Some(dir)) => Ok(dir),
        _ => {
            eprintln!(
                "note: no directory can be made in $HOME; the certificate rows write under the system's temporary directory"
            );
            Ok(tempfile::tempdir()?)
        }
    }
}

/// Writes back what earlier steps left dirty (the release build, earlier rows) and waits for
/// it: the rows that sync files then measure their own syncs, not a backlog of other writes
/// queued in front of them on the disk.
fn settle_disk() -> anyhow::Result<()> {
    crate::cmd("sync", &[])
}

/// Writes the files of `written` (all but hidden ones, with their modes) into `dir` with one
/// [`azdock_files::write_atomic_all`]: how long that took.
fn write_like(written: &Path, dir: &Path) -> anyhow::Result<Duration> {
    use std::os::unix::fs::PermissionsExt as _;
    let mut files = Vec::new();
    for entry in std::fs::read_dir(written)? {
        let entry = entry?;
        if !entry.file_name().to_string_lossy().starts_with('.') && entry.file_type()?.is_file() {
            files.push((
                dir.join(entry.file_name()),
                std::fs::read(entry.path())?,
                entry.metadata()?.permissions().mode(),
            ));
        }
    }
    let files: Vec<(&Path, &[u8], u32)> = files.iter().map(|(p, d, m)| (p.as_path(), d.as_slice(), *m)).collect();
    let start = Instant::now();
    azdock_files::write_atomic_all(&files)?;
    Ok(start.elapsed())
}

fn measure_process(
    task: &str,
    runs: usize,
    target: &'static str,
    gnu_time: bool,
    make: impl Fn(usize) -> Command,
) -> anyhow::Result<Row> {
    measure_process_beside(task, runs, target, gnu_time, make, |_| Ok(()))
}

/// [`measure_process`], calling `beside(i)` right after timed run `i`: the floors measured at
/// the same moments as each run.
fn measure_process_beside(
    task: &str,
    runs: usize,
    target: &'static str,
    gnu_time: bool,
    make: impl Fn(usize) -> Command,
    mut beside: impl FnMut(usize) -> anyhow::Result<()>,
) -> anyhow::Result<Row> {
    // One warm-up run so the page cache holds the binary, as it does for a user.
    make(runs + 1).status()?;
    let mut times = Vec::with_capacity(runs);
    for i in 0..runs {
        times.push(time_run(task, &mut make(i))?);
        beside(i)?;
    }
    let rss = if gnu_time { Some(peak_rss(&make, runs)?) } else { None };
    Ok(row(task, times, rss, target))
}

/// How long `cmd` took to run to its successful end.
fn time_run(task: &str, cmd: &mut Command) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let status = cmd.status().with_context(|| format!("cannot run {task}"))?;
    let elapsed = start.elapsed();
    if !status.success() {
        bail!("{task} failed with {status}");
    }
    Ok(elapsed)
}

/// The largest maximum resident set size over ten runs, in KiB, as GNU time reports it.
fn peak_rss(make: &impl Fn(usize) -> Command, offset: usize) -> anyhow::Result<u64> {
    let mut peak = 0;
    for i in 0..10 {
        let inner = make(offset + 2 + i);
        let mut cmd = Command::new("/usr/bin/time");
        cmd.arg("-f").arg("%M").arg(inner.get_program()).args(inner.get_args()).stdout(Stdio::null());
        for (k, v) in inner.get_envs() {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        let out = cmd.output()?;
        let text = String::from_utf8_lossy(&out.stderr);
        let kib: u64 = text
            .lines()
            .last()
            .unwrap_or("")
            .trim()
            .parse()
            .with_context(|| format!("unexpected GNU time output: {text}"))?;
        peak = peak.max(kib);
    }
    Ok(peak)
}

fn classic_openssl(dir: &Path) -> Duration {
    let start = Instant::now();
    azdock_tests::classic_cli_pki(dir, "Docker123", true);
    start.elapsed()
}

fn row(task: &str, mut times: Vec<Duration>, rss_kib: Option<u64>, target: &'static str) -> Row {
    times.sort();
    let at = |q: f64| {
        // Nearest-rank percentile; the index is within the vector by construction.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
        let i = ((times.len() as f64 * q).ceil() as usize).clamp(1, times.len()) - 1;
        times[i]
    };
    Row { task: task.to_owned(), runs: times.len(), median: at(0.5), p90: at(0.9), rss_kib, target }
}

fn print_table(rows: &[Row]) {
    let ms = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1000.0);
    #[allow(clippy::cast_precision_loss)]
    let mb = |kib: Option<u64>| kib.map_or_else(|| "-".to_owned(), |k| format!("{:.1} MB", k as f64 / 1024.0));
    println!("| task | runs | median | p90 | peak RSS | target |");
    println!("|---|---:|---:|---:|---:|---|");
    for r in rows {
        println!("| {} | {} | {} | {} | {} | {} |", r.task, r.runs, ms(r.median), ms(r.p90), mb(r.rss_kib), r.target);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_is_timed_to_its_end_and_a_failed_one_is_an_error() {
        let mut sleep = Command::new("sleep");
        sleep.arg("0.05");
        assert!(time_run("sleep", &mut sleep).unwrap() >= Duration::from_millis(50));
        let e = time_run("false", &mut Command::new("false")).unwrap_err().to_string();
        assert!(e.starts_with("false failed with exit status: 1"), "{e}");
    }

    #[test]
    fn medians_and_p90_are_nearest_rank() {
        let ms = Duration::from_millis;
        let r = row("t", (1..=10).rev().map(ms).collect(), None, "-");
        assert_eq!((r.runs, r.median, r.p90), (10, ms(5), ms(9)));
    }
}
