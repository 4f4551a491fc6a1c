//! `cargo xtask dist`: the release tarball — binary, completions, man pages — with SHA-256 sums.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, bail};
use clap_complete::Shell;
use sha2::{Digest, Sha256};

pub(crate) fn run(root: &Path) -> anyhow::Result<()> {
    crate::cmd("cargo", &["build", "--release", "--locked", "-p", "azdock"])?;
    let version = env!("CARGO_PKG_VERSION");
    let target = format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS);
    let name = format!("azdock-{version}-{target}");
    let dist = root.join("target/dist");
    let stage = dist.join(&name);
    if stage.exists() {
        fs::remove_dir_all(&stage)?;
    }
    fs::create_dir_all(stage.join("completions"))?;
    fs::create_dir_all(stage.join("man"))?;
    fs::copy(root.join("target/release/azdock"), stage.join("azdock"))?;
    fs::copy(root.join("README.md"), stage.join("README.md"))?;

    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish, Shell::PowerShell, Shell::Elvish] {
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut azdock_cli::command(), "azdock", &mut out);
        let file = match shell {
            Shell::Bash => "azdock.bash".to_owned(),
            Shell::Zsh => "_azdock".to_owned(),
            Shell::Fish => "azdock.fish".to_owned(),
            Shell::PowerShell => "_azdock.ps1".to_owned(),
            other => format!("azdock.{other}"),
        };
        fs::write(stage.join("completions").join(file), out)?;
    }
    man_pages(&azdock_cli::command(), "azdock", &stage.join("man"))?;

    let tarball = format!("{name}.tar.gz");
    let status =
        Command::new("tar").args(["-czf", &tarball, &name]).current_dir(&dist).status().context("cannot run `tar`")?;
    if !status.success() {
        bail!("tar failed with {status}");
    }
    let mut sums = String::new();
    for file in [stage.join("azdock"), dist.join(&tarball)] {
        let digest = Sha256::digest(fs::read(&file)?);
        let hex = digest.iter().fold(String::new(), |mut hex, b| {
            let _ = write!(hex, "{b:02x}");
            hex
        });
        let rel = file.strip_prefix(&dist).unwrap_or(&file).display().to_string();
        let _ = writeln!(sums, "{hex}  {rel}");
    }
    fs::write(dist.join("SHA256SUMS"), &sums)?;
    print!("{sums}");
    eprintln!("dist: {}", dist.join(&tarball).display());
    Ok(())
}

/// One man page per command, named as git names them (`azdock-certs-init.1`).
fn man_pages(cmd: &clap::Command, name: &str, dir: &Path) -> anyhow::Result<()> {
    let cmd = cmd.clone().display_name(name.to_owned()).bin_name(name.replace('-', " "));
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut out)?;
    fs::write(dir.join(format!("{name}.1")), out)?;
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        man_pages(sub, &format!("{name}-{}", sub.get_name()), dir)?;
    }
    Ok(())
}
