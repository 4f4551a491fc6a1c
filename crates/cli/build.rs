//! Links GCC's unwinder into `azdock` statically, as `gcc -static-libgcc` would.
//!
//! On `*-linux-gnu` Rust's standard library asks the linker for `-lgcc_s`: GCC's unwinder (used
//! for panics and backtraces) as a shared library. Every process then maps and relocates it and
//! runs its constructor, `__cpu_indicator_init`, whose `cpuid` instructions each trap to the
//! hypervisor on a virtual machine (4.4 µs apiece on this project's machines): about 0.12 ms of
//! every start, a tenth of `azdock --version`. The same unwinder ships beside it as a static
//! archive, `libgcc_eh.a`, without that constructor. The linker takes, for `-lgcc_s`, the first
//! search directory holding `libgcc_s.so` or `libgcc_s.a`, and directories given by build
//! scripts come before the system's: one holding that archive under the name `libgcc_s.a`
//! makes it the one linked. Where the C compiler knows no `libgcc_eh.a`, or the target is not
//! glibc's or links statically anyway, nothing changes and `libgcc_s.so` is linked as before.
//! Plugins are separate libraries with their own unwinder, and a panic never crosses into or
//! out of one (their entry points are `extern "C"`), so nothing is shared between the two.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=RUSTC_LINKER");
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let static_already = var("CARGO_CFG_TARGET_FEATURE").split(',').any(|f| f == "crt-static");
    if var("CARGO_CFG_TARGET_OS") != "linux" || var("CARGO_CFG_TARGET_ENV") != "gnu" || static_already {
        return;
    }
    let Some(archive) = unwinder_archive() else {
        println!("cargo::warning=the C compiler knows no libgcc_eh.a: azdock links libgcc_s.so");
        return;
    };
    let dir = PathBuf::from(var("OUT_DIR")).join("static-unwinder");
    let link = dir.join("libgcc_s.a");
    let made = std::fs::create_dir_all(&dir).and_then(|()| match std::fs::remove_file(&link) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => std::os::unix::fs::symlink(&archive, &link),
    });
    match made {
        Ok(()) => println!("cargo::rustc-link-search=native={}", dir.display()),
        Err(e) => println!(
            "cargo::warning=cannot link {} as {}: {e}; azdock links libgcc_s.so",
            archive.display(),
            link.display()
        ),
    }
}

/// `libgcc_eh.a` of the C compiler that links for rustc (`cc` unless one is configured).
fn unwinder_archive() -> Option<PathBuf> {
    let linker = std::env::var_os("RUSTC_LINKER").unwrap_or_else(|| "cc".into());
    let out = Command::new(linker).arg("-print-file-name=libgcc_eh.a").output().ok()?;
    // A compiler that does not find it prints the bare name back.
    let path = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    (out.status.success() && path.is_absolute() && Path::new(&path).is_file()).then_some(path)
}
