//! The guest's accounts and sshd settings as files: what provisioning and VMAccess did to the
//! guest model is written into the VM's own `/etc/passwd`, `/etc/shadow`, `/etc/group`,
//! `~/.ssh/authorized_keys` and `/etc/ssh/sshd_config`, the files the VM's real sshd and PAM
//! read — so a password reset is tried by logging in, not by asking the model.
//!
//! Lines of other accounts (the image's, or ones a script made with `useradd`) are kept as they
//! are; only the accounts the model names are written.

use std::path::Path;

use crate::guest::{Guest, User};
use crate::guestfs;
use crate::sandbox::IdMap;

/// The packaged default sshd_config (Debian's openssh-server), which VMAccess's `reset_ssh`
/// puts back; a built-in copy of the same settings when the host has none.
const PACKAGED_SSHD_CONFIG: &str = "/usr/share/openssh/sshd_config";
const DEFAULT_SSHD_CONFIG: &str = "Include /etc/ssh/sshd_config.d/*.conf\nKbdInteractiveAuthentication no\nUsePAM yes\nX11Forwarding yes\nPrintMotd no\nAcceptEnv LANG LC_*\nSubsystem\tsftp\t/usr/lib/openssh/sftp-server\n";
pub(crate) const SSHD_CONFIG: &str = "/etc/ssh/sshd_config";
/// Where `reset_ssh` keeps the file it replaced, for `restore_backup_ssh`.
pub(crate) const SSHD_BACKUP: &str = "/etc/ssh/sshd_config.vmaccess-backup";
/// The first uid and gid of an account made for a person, as `useradd` picks them.
const FIRST_UID: u32 = 1000;

/// Writes what changed between two states of the guest model (`before` is `None` at
/// provisioning: every account in `after` is written, and sshd's password setting).
pub(crate) fn sync(vm: &Path, ids: IdMap, before: Option<&Guest>, after: &Guest) -> std::io::Result<()> {
    let mut files = Files::read(vm)?;
    let old_users = before.map(|b| &b.users);
    for name in old_users.iter().flat_map(|u| u.keys()).filter(|n| !after.users.contains_key(*n)) {
        files.remove(name);
    }
    let mut homes = Vec::new();
    for (name, user) in &after.users {
        if old_users.and_then(|u| u.get(name)) != Some(user) {
            let (uid, gid) = files.upsert(name, user);
            homes.push((name, user, uid, gid));
        }
    }
    files.write(vm, ids)?;
    for (name, user, uid, gid) in homes {
        write_home(vm, ids, name, user, (uid, gid))?;
    }
    sync_sshd(vm, ids, before, after)
}

/// sshd_config: `reset_ssh` backs the file up and puts the packaged default in its place,
/// `restore_backup_ssh` puts the backup back, and `PasswordAuthentication` follows the model.
fn sync_sshd(vm: &Path, ids: IdMap, before: Option<&Guest>, after: &Guest) -> std::io::Result<()> {
    let current = String::from_utf8_lossy(&guestfs::read(vm, SSHD_CONFIG).unwrap_or_default()).into_owned();
    let mut text = current.clone();
    if let Some(before) = before {
        let reset = after.sshd.backup.is_some() && after.sshd.backup != before.sshd.backup;
        let restored = before.sshd.backup.is_some() && after.sshd.backup.is_none();
        if reset {
            guestfs::write(vm, SSHD_BACKUP, current.as_bytes(), 0o644, ids)?;
            text = std::fs::read_to_string(PACKAGED_SSHD_CONFIG).unwrap_or_else(|_| DEFAULT_SSHD_CONFIG.to_owned());
        } else if restored && let Ok(backup) = guestfs::read(vm, SSHD_BACKUP) {
            text = String::from_utf8_lossy(&backup).into_owned();
            guestfs::remove(vm, SSHD_BACKUP)?;
        }
    }
    let password_changed = before.is_none_or(|b| b.sshd.password_authentication != after.sshd.password_authentication);
    if password_changed || text != current {
        text = with_setting(
            &text,
            "PasswordAuthentication",
            if after.sshd.password_authentication { "yes" } else { "no" },
        );
    }
    if text == current { Ok(()) } else { guestfs::write(vm, SSHD_CONFIG, text.as_bytes(), 0o644, ids) }
}

/// `keyword value` set as sshd reads it: the first setting outside a `Match` block wins, so an
/// existing one is replaced in place, else the line goes before the first `Match`.
pub(crate) fn with_setting(text: &str, keyword: &str, value: &str) -> String {
    let line = format!("{keyword} {value}");
    let mut out = Vec::new();
    let mut done = false;
    for l in text.lines() {
        let first = l.split_whitespace().next().unwrap_or("");
        if !done && first.eq_ignore_ascii_case("Match") {
            out.push(line.clone());
            done = true;
        }
        if !done && first.eq_ignore_ascii_case(keyword) {
            out.push(line.clone());
            done = true;
            continue;
        }
        out.push(l.to_owned());
    }
    if !done {
        out.push(line);
    }
    out.join("\n") + "\n"
}

/// The user's home, `.ssh` and `authorized_keys` (written when the model holds keys: keys put
/// there otherwise are the guest's own business).
fn write_home(vm: &Path, ids: IdMap, name: &str, user: &User, owner: (u32, u32)) -> std::io::Result<()> {
    let home = format!("/home/{name}");
    if guestfs::list(vm, &home).is_err() {
        guestfs::make_dir(vm, &home, 0o750, ids, owner)?;
    }
    if !user.authorized_keys.is_empty() {
        guestfs::make_dir(vm, &format!("{home}/.ssh"), 0o700, ids, owner)?;
        let keys: String = user.authorized_keys.iter().flat_map(|k| [k.as_str(), "\n"]).collect();
        guestfs::write_owned(vm, &format!("{home}/.ssh/authorized_keys"), keys.as_bytes(), 0o600, ids, owner)?;
    }
    Ok(())
}

/// The account databases, as lines.
struct Files {
    passwd: Vec<String>,
    shadow: Vec<String>,
    group: Vec<String>,
}

fn lines(vm: &Path, path: &str) -> std::io::Result<Vec<String>> {
    match guestfs::read(vm, path) {
        Ok(bytes) => Ok(String::from_utf8_lossy(&bytes).lines().map(str::to_owned).collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

fn name_of(line: &str) -> &str {
    line.split(':').next().unwrap_or("")
}

fn field(line: &str, n: usize) -> Option<&str> {
    line.split(':').nth(n)
}

/// Days since 1970-01-01 of a `yyyy-mm-dd` date (shadow's expiry field).
fn epoch_days(date: &str) -> Option<i64> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let day = time::Date::parse(date, &format).ok()?;
    Some(i64::from(
        day.to_julian_day() - time::Date::from_calendar_date(1970, time::Month::January, 1).ok()?.to_julian_day(),
    ))
}

impl Files {
    fn read(vm: &Path) -> std::io::Result<Self> {
        Ok(Self {
            passwd: lines(vm, "/etc/passwd")?,
            shadow: lines(vm, "/etc/shadow")?,
            group: lines(vm, "/etc/group")?,
        })
    }

    fn write(&self, vm: &Path, ids: IdMap) -> std::io::Result<()> {
        let text = |lines: &[String]| lines.iter().flat_map(|l| [l.as_str(), "\n"]).collect::<String>();
        guestfs::write(vm, "/etc/passwd", text(&self.passwd).as_bytes(), 0o644, ids)?;
        // shadow is root's and the shadow group's (gid 42 on Debian), as `passwd` leaves it.
        let shadow_gid = self.group.iter().find(|l| name_of(l) == "shadow").and_then(|l| field(l, 2)?.parse().ok());
        guestfs::write_owned(
            vm,
            "/etc/shadow",
            text(&self.shadow).as_bytes(),
            0o640,
            ids,
            (0, shadow_gid.unwrap_or(0)),
        )?;
        guestfs::write(vm, "/etc/group", text(&self.group).as_bytes(), 0o644, ids)
    }

    /// A free id from 1000 up, in both passwd and group.
    fn free_id(&self) -> u32 {
        let taken = |n: u32| {
            self.passwd.iter().any(|l| field(l, 2) == Some(&n.to_string()))
                || self.group.iter().any(|l| field(l, 2) == Some(&n.to_string()))
        };
        (FIRST_UID..60_000).find(|n| !taken(*n)).unwrap_or(60_000)
    }

    /// Adds or updates the account; its uid and gid.
    fn upsert(&mut self, name: &str, user: &User) -> (u32, u32) {
        let existing = self
            .passwd
            .iter()
            .find(|l| name_of(l) == name)
            .and_then(|l| Some((field(l, 2)?.parse::<u32>().ok()?, field(l, 3)?.parse::<u32>().ok()?)));
        let (uid, gid) = existing.unwrap_or_else(|| {
            let id = self.free_id();
            self.passwd.push(format!("{name}:x:{id}:{id}::/home/{name}:/bin/bash"));
            if !self.group.iter().any(|l| name_of(l) == name) {
                self.group.push(format!("{name}:x:{id}:"));
            }
            (id, id)
        });
        let hash = user.password_hash.clone().unwrap_or_else(|| "!".into());
        let expire = user.expiration.as_deref().and_then(epoch_days).map(|d| d.to_string()).unwrap_or_default();
        let changed = (time::OffsetDateTime::now_utc().unix_timestamp() / 86_400).to_string();
        let line = format!("{name}:{hash}:{changed}:0:99999:7::{expire}:");
        match self.shadow.iter_mut().find(|l| name_of(l) == name) {
            Some(l) => *l = line,
            None => self.shadow.push(line),
        }
        if user.admin {
            self.add_member("sudo", name);
        }
        (uid, gid)
    }

    fn add_member(&mut self, group: &str, name: &str) {
        if let Some(line) = self.group.iter_mut().find(|l| name_of(l) == group) {
            let members = line.rsplit(':').next().unwrap_or("");
            if !members.split(',').any(|m| m == name) {
                if !members.is_empty() {
                    line.push(',');
                }
                line.push_str(name);
            }
        }
    }

    /// Removes the account, its own group and its memberships (`userdel`).
    fn remove(&mut self, name: &str) {
        self.passwd.retain(|l| name_of(l) != name);
        self.shadow.retain(|l| name_of(l) != name);
        self.group.retain(|l| name_of(l) != name);
        for line in &mut self.group {
            let mut parts: Vec<String> = line.split(':').map(str::to_owned).collect();
            if let Some(members) = parts.get_mut(3) {
                *members = members.split(',').filter(|m| !m.is_empty() && *m != name).collect::<Vec<_>>().join(",");
                *line = parts.join(":");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_setting_replaces_the_first_one_or_goes_before_match() {
        let text = "Include x\n#PasswordAuthentication yes\nPasswordAuthentication no\nMatch User bob\n  PasswordAuthentication no\n";
        let out = with_setting(text, "PasswordAuthentication", "yes");
        assert_eq!(
            out,
            "Include x\n#PasswordAuthentication yes\nPasswordAuthentication yes\nMatch User bob\n  PasswordAuthentication no\n"
        );
        let out = with_setting("UsePAM yes\nMatch all\n", "PasswordAuthentication", "no");
        assert_eq!(out, "UsePAM yes\nPasswordAuthentication no\nMatch all\n");
        assert_eq!(
            with_setting("UsePAM yes", "PasswordAuthentication", "no"),
            "UsePAM yes\nPasswordAuthentication no\n"
        );
    }

    #[test]
    fn accounts_are_added_updated_and_removed_beside_the_images_own() {
        let mut files = Files {
            passwd: vec!["root:x:0:0:root:/root:/bin/bash".into(), "old:x:1000:1000::/home/old:/bin/sh".into()],
            shadow: vec!["root:*:19000:0:99999:7:::".into(), "old:!:19000:0:99999:7:::".into()],
            group: vec!["sudo:x:27:old".into(), "old:x:1000:".into(), "shadow:x:42:".into()],
        };
        let user = User {
            admin: true,
            password_hash: Some("$6$s$h".into()),
            expiration: Some("1970-01-31".into()),
            ..User::default()
        };
        assert_eq!(files.upsert("ops", &user), (1001, 1001));
        assert!(files.passwd.contains(&"ops:x:1001:1001::/home/ops:/bin/bash".into()));
        assert!(files.shadow.iter().any(|l| l.starts_with("ops:$6$s$h:") && l.ends_with(":30:")), "{:?}", files.shadow);
        assert_eq!(files.group[0], "sudo:x:27:old,ops");
        // An existing account keeps its ids and gets the new hash.
        assert_eq!(
            files.upsert("old", &User { password_hash: Some("$6$t$u".into()), ..User::default() }),
            (1000, 1000)
        );
        assert!(files.shadow.iter().any(|l| l.starts_with("old:$6$t$u:")));
        files.remove("old");
        assert_eq!(files.passwd.len(), 2);
        assert_eq!(files.group, vec!["sudo:x:27:ops", "shadow:x:42:", "ops:x:1001:"]);
        assert!(!files.shadow.iter().any(|l| l.starts_with("old:")));
        assert_eq!(epoch_days("1970-01-02"), Some(1));
        assert_eq!(epoch_days("31/01/1970"), None);
    }

    #[test]
    fn provisioning_and_vmaccess_runs_land_in_the_vms_files() {
        use std::os::unix::fs::MetadataExt as _;
        let dir = tempfile::tempdir().unwrap();
        let vm = dir.path().join("root");
        let ids = IdMap::for_vm("accounts-test");
        for d in ["etc/ssh", "home"] {
            std::fs::create_dir_all(vm.join(d)).unwrap();
        }
        std::fs::write(vm.join("etc/passwd"), "root:x:0:0:root:/root:/bin/bash\n").unwrap();
        std::fs::write(vm.join("etc/group"), "sudo:x:27:\nshadow:x:42:\n").unwrap();
        std::fs::write(vm.join("etc/ssh/sshd_config"), "Include /etc/ssh/sshd_config.d/*.conf\nUsePAM yes\n").unwrap();
        let read = |path: &str| std::fs::read_to_string(vm.join(path)).unwrap_or_default();
        let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGd3nqjmI9Y2Gm4zk1t6b0x8v5wQwCkq3pX5uS9r2k0m one@host";
        let mut guest = Guest::new(crate::OsKind::Linux, "vm1");
        guest.sshd.password_authentication = false;
        let admin = User { admin: true, authorized_keys: vec![key.into()], ..User::default() };
        guest.users.insert("azureuser".into(), admin);

        // Provisioning: the account, its home and key, and sshd's password setting.
        sync(&vm, ids, None, &guest).unwrap();
        assert!(
            read("etc/passwd").contains("azureuser:x:1000:1000::/home/azureuser:/bin/bash\n"),
            "{}",
            read("etc/passwd")
        );
        assert!(read("etc/shadow").starts_with("azureuser:!:"), "{}", read("etc/shadow"));
        assert_eq!(read("etc/group"), "sudo:x:27:azureuser\nshadow:x:42:\nazureuser:x:1000:\n");
        assert_eq!(read("home/azureuser/.ssh/authorized_keys"), format!("{key}\n"));
        let meta = |path: &str| std::fs::metadata(vm.join(path)).unwrap();
        assert_eq!((meta("home/azureuser").uid(), meta("home/azureuser").mode() & 0o777), (ids.host(1000), 0o750));
        assert_eq!(
            (meta("home/azureuser/.ssh").mode() & 0o777, meta("home/azureuser/.ssh/authorized_keys").mode() & 0o777),
            (0o700, 0o600)
        );
        assert_eq!((meta("etc/shadow").gid(), meta("etc/shadow").mode() & 0o777), (ids.host(42), 0o640));
        assert!(
            read("etc/ssh/sshd_config").contains("\nPasswordAuthentication no\n"),
            "{}",
            read("etc/ssh/sshd_config")
        );

        // A password reset: the hash, and password login on; another user added, no key.
        let before = guest.clone();
        guest.users.get_mut("azureuser").unwrap().password_hash = Some("$6$salt$hash".into());
        guest.sshd.password_authentication = true;
        guest.users.insert("ops".into(), User { password_hash: Some("$6$o$p".into()), ..User::default() });
        sync(&vm, ids, Some(&before), &guest).unwrap();
        assert!(read("etc/shadow").starts_with("azureuser:$6$salt$hash:"), "{}", read("etc/shadow"));
        assert!(read("etc/passwd").contains("ops:x:1001:1001:"), "{}", read("etc/passwd"));
        assert!(!vm.join("home/ops/.ssh").exists());
        assert!(
            read("etc/ssh/sshd_config").contains("PasswordAuthentication yes")
                && !read("etc/ssh/sshd_config").contains("PasswordAuthentication no")
        );

        // A broken sshd_config, reset (kept aside, the default back), then restored.
        std::fs::write(vm.join("etc/ssh/sshd_config"), "Broken yes\n").unwrap();
        let before = guest.clone();
        let old = Box::new(crate::guest::Sshd { backup: None, ..guest.sshd.clone() });
        guest.sshd = crate::guest::Sshd { backup: Some(old), ..crate::guest::Sshd::default() };
        sync(&vm, ids, Some(&before), &guest).unwrap();
        assert_eq!(read(SSHD_BACKUP.trim_start_matches('/')), "Broken yes\n");
        let reset = read("etc/ssh/sshd_config");
        assert!(
            reset.contains("UsePAM yes") && reset.contains("PasswordAuthentication yes") && !reset.contains("Broken"),
            "{reset}"
        );
        let before = guest.clone();
        guest.sshd = *guest.sshd.backup.take().unwrap();
        sync(&vm, ids, Some(&before), &guest).unwrap();
        assert!(read("etc/ssh/sshd_config").starts_with("Broken yes\n"), "{}", read("etc/ssh/sshd_config"));
        assert!(!vm.join(SSHD_BACKUP.trim_start_matches('/')).exists());

        // Nothing changed: nothing written (a file the guest changed stays as it is).
        std::fs::write(vm.join("etc/ssh/sshd_config"), "Mine\n").unwrap();
        sync(&vm, ids, Some(&guest.clone()), &guest).unwrap();
        assert_eq!(read("etc/ssh/sshd_config"), "Mine\n");

        // remove-user: gone from every file; the other account stays.
        let before = guest.clone();
        guest.users.remove("ops");
        sync(&vm, ids, Some(&before), &guest).unwrap();
        assert!(
            !read("etc/passwd").contains("ops:")
                && !read("etc/shadow").contains("ops:")
                && !read("etc/group").contains("ops:")
        );
        assert!(read("etc/passwd").contains("azureuser:"));
    }
}
