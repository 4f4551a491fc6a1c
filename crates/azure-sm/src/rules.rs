//! Azure's rules for what users type — admin user names, passwords, VM names, DNS labels, SSH
//! public keys — checked before anything is sent, each error naming the value and the rule.

use base64::Engine as _;

use crate::models::OsType;

/// Names Azure refuses as admin user names on both OSes.
pub const DISALLOWED_USER_NAMES: &[&str] = &[
    "administrator",
    "admin",
    "user",
    "user1",
    "test",
    "user2",
    "test1",
    "user3",
    "admin1",
    "1",
    "123",
    "a",
    "actuser",
    "adm",
    "admin2",
    "aspnet",
    "backup",
    "console",
    "guest",
    "owner",
    "root",
    "server",
    "sql",
    "support",
    "support_388945a0",
    "sys",
    "test2",
    "test3",
    "user4",
    "user5",
    "david",
    "john",
];

/// Passwords Azure refuses however complex they look.
pub const DISALLOWED_PASSWORDS: &[&str] = &[
    "abc@123",
    "P@$$w0rd",
    "P@ssw0rd",
    "P@ssword123",
    "Pa$$word",
    "pass@word1",
    "Password!",
    "Password1",
    "Password22",
    "iloveyou!",
];

/// An admin user name.
pub fn check_user_name(name: &str, os: &OsType) -> Result<(), String> {
    let (max, forbidden): (usize, &str) =
        if *os == OsType::Windows { (20, "\\/\"[]:|<>+=;,?*@") } else { (64, "\\/\"[]:|<>+=;,?*@#()!") };
    if name.is_empty() || name.chars().count() > max {
        return Err(format!("user name `{name}` must have 1 to {max} characters on {os}"));
    }
    if let Some(c) = name.chars().find(|c| forbidden.contains(*c) || c.is_whitespace()) {
        return Err(format!(
            "user name `{name}` contains `{c}`; {os} user names cannot contain any of {forbidden} or spaces"
        ));
    }
    // Azure documents no case rule, and accepts `Foo12` on Linux (recorded sessions of its Java
    // and .NET SDKs create VMs with it and reset it with VMAccessForLinux): no stricter guess.
    if *os != OsType::Windows {
        if name.starts_with(['$', '-']) {
            return Err(format!("user name `{name}` cannot start with `$` or `-` on Linux"));
        }
    } else if name.ends_with('.') {
        return Err(format!("user name `{name}` cannot end with `.` on Windows"));
    }
    if DISALLOWED_USER_NAMES.contains(&name.to_ascii_lowercase().as_str()) {
        return Err(format!("user name `{name}` is reserved by Azure; choose another (e.g. azureuser)"));
    }
    Ok(())
}

/// An admin password, by the platform rule; `min` raises the minimum (az asks 12 on create).
/// The message never repeats the password.
pub fn check_password(password: &str, os: &OsType, min: usize) -> Result<(), String> {
    let (lo, hi) = if *os == OsType::Windows { (8, 123) } else { (6, 72) };
    let lo = lo.max(min);
    let n = password.chars().count();
    if n < lo || n > hi {
        return Err(format!("the password has {n} characters; {os} VMs need {lo} to {hi}"));
    }
    let classes = [
        password.chars().any(char::is_lowercase),
        password.chars().any(char::is_uppercase),
        password.chars().any(|c| c.is_ascii_digit()),
        password.chars().any(|c| !c.is_alphanumeric()),
    ];
    if classes.iter().filter(|c| **c).count() < 3 {
        return Err(
            "the password needs 3 of: a lower-case letter, an upper-case letter, a digit, a special character".into()
        );
    }
    if DISALLOWED_PASSWORDS.contains(&password) {
        return Err("the password is on Azure's list of refused passwords; choose another".into());
    }
    Ok(())
}

/// A VM (computer) name.
pub fn check_vm_name(name: &str, os: &OsType) -> Result<(), String> {
    let max = if *os == OsType::Windows { 15 } else { 64 };
    let ok = !name.is_empty()
        && name.len() <= max
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || (c == '.' && *os != OsType::Windows))
        && !name.ends_with(['-', '.'])
        && !name.starts_with(['-', '.'])
        && !name.chars().all(|c| c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "VM name `{name}`: use 1 to {max} letters, digits and `-`, not only digits, not starting or ending with `-` or `.`"
        ))
    }
}

/// A public IP's DNS label (`<label>.<region>.cloudapp.azure.com`).
pub fn check_dns_label(label: &str) -> Result<(), String> {
    let b = label.as_bytes();
    let ok = (3..=63).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[b.len() - 1] != b'-';
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{label}` cannot be a DNS label: Azure wants ^[a-z][a-z0-9-]{{1,61}}[a-z0-9]$ (3 to 63 lower-case letters, digits and `-`, starting with a letter)"
        ))
    }
}

/// The SSH key types Azure accepts.
const KINDS: [&str; 5] =
    ["ssh-rsa", "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521"];

/// An SSH public key as `authorized_keys` takes it (OpenSSH one-line format), or an SSH2
/// (RFC 4716) block, which is converted; read by the `ssh-key` crate, so the key's own type
/// inside the base64 must match its label and an RSA key must have Azure's 2048 bits.
pub fn ssh_public_key(text: &str) -> Result<String, String> {
    let text = text.trim();
    if text.starts_with("---- BEGIN SSH2 PUBLIC KEY ----") {
        let body: String = text
            .lines()
            .skip(1)
            .take_while(|l| !l.starts_with("---- END"))
            .filter(|l| !l.contains(':') && !l.ends_with('\\'))
            .collect();
        let blob = base64::engine::general_purpose::STANDARD
            .decode(body.trim())
            .map_err(|_| "the SSH2 key's body is not base64".to_owned())?;
        let key = ssh_key::PublicKey::from_bytes(&blob)
            .map_err(|e| format!("the SSH2 key's body is not an SSH key ({e})"))?;
        let line = key.to_openssh().map_err(|e| format!("cannot write the SSH2 key as a line: {e}"))?;
        return ssh_public_key(&line);
    }
    let line = text.lines().next().unwrap_or(text);
    let mut parts = line.split_whitespace();
    let (Some(kind), Some(_)) = (parts.next(), parts.next()) else {
        return Err("not an SSH public key: expected `ssh-ed25519 AAAA…`, `ssh-rsa AAAA…`, `ecdsa-sha2-nistp256 AAAA…` or an SSH2 block".into());
    };
    if !KINDS.contains(&kind) {
        return Err(format!("SSH key type `{kind}` is not accepted: use one of {}", KINDS.join(", ")));
    }
    let key = ssh_key::PublicKey::from_openssh(line)
        .map_err(|e| format!("the {kind} key is damaged or mislabelled ({e})"))?;
    if let Some(rsa) = key.key_data().rsa()
        && rsa.n.as_positive_bytes().map_or(0, <[u8]>::len) * 8 < 2048
    {
        return Err("the RSA key is shorter than 2048 bits, which Azure refuses".into());
    }
    Ok(line.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names() {
        assert!(check_user_name("azureuser", &OsType::Linux).is_ok());
        for bad in ["-x", "$x", "a@b", "root", "admin", "Admin", "", "a b", &"x".repeat(65)] {
            assert!(check_user_name(bad, &OsType::Linux).is_err(), "{bad}");
        }
        // Every admin name in Azure's own recorded sessions (Java, .NET, xplat CLI).
        for good in
            ["tirekicker", "azureuser", "seconduser", "chentanyi", "testuser", "thirduser", "Foo12", &"x".repeat(64)]
        {
            assert!(check_user_name(good, &OsType::Linux).is_ok(), "{good}");
        }
        assert!(check_user_name("AzureUser", &OsType::Windows).is_ok());
        assert!(check_user_name("a-very-long-windows-name", &OsType::Windows).is_err());
    }

    #[test]
    fn passwords_never_echo_and_follow_the_classes() {
        assert!(check_password("Sup3r-Secret!", &OsType::Linux, 12).is_ok());
        for bad in ["short1!", "alllowercaseletters", "P@ssw0rd", "NoDigitsOrSpecial"] {
            let e = check_password(bad, &OsType::Linux, 8).unwrap_err();
            assert!(!e.contains(bad), "{e}");
        }
    }

    #[test]
    fn names_and_labels() {
        assert!(check_vm_name("web-1", &OsType::Linux).is_ok());
        assert!(check_vm_name("123", &OsType::Linux).is_err());
        assert!(check_vm_name("sixteen-chars-xx", &OsType::Windows).is_err());
        assert!(check_dns_label("web1").is_ok());
        for bad in ["Web1", "1web", "we", "web-", "web_1"] {
            assert!(check_dns_label(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ssh_keys() {
        let ed = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGd3nqjmI9Y2Gm4zk1t6b0x8v5wQwCkq3pX5uS9r2k0m me@host";
        assert_eq!(ssh_public_key(ed).unwrap(), ed);
        assert!(
            ssh_public_key("ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIGd3nqjmI9Y2Gm4zk1t6b0x8v5wQwCkq3pX5uS9r2k0m").is_err()
        );
        assert!(ssh_public_key("ssh-dss AAAA").unwrap_err().contains("not accepted"));
        let ssh2 = "---- BEGIN SSH2 PUBLIC KEY ----\nComment: \"me\"\nAAAAC3NzaC1lZDI1NTE5AAAAIGd3nqjmI9Y2Gm4zk1t6b0x8v5wQwCkq3pX5uS9r2k0m\n---- END SSH2 PUBLIC KEY ----";
        assert!(ssh_public_key(ssh2).unwrap().starts_with("ssh-ed25519 AAAAC3"));
        // A short RSA key (1024 bits), and a key whose body is cut short.
        let short = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDL4q0xpqFQe0pQ6JrJYpD8VRT9q1uKxJ3JbLqM3aJmPeBYk2eY0u+5hF2Qm9hQx5oXb0cXy3mV2iHf2c5d+f+1VYgcgkh5u9XmcM7FrWcG6HDvP3aT+vt4m4wKF9A0cUbWJ2v2mKx7f7bL8eNmFEQ4HVEPs6t3m0cIHJsj7ixK5w== short";
        assert!(ssh_public_key(short).unwrap_err().contains("shorter than 2048 bits"), "{:?}", ssh_public_key(short));
        assert!(ssh_public_key("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGd3").unwrap_err().contains("damaged"));
        assert!(ssh_public_key("ssh-ed25519").unwrap_err().contains("not an SSH public key"));
        // Exactly Azure's 2048 bits is enough.
        let rsa2048 = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC1oJFdUJx3Id71sQhLbiVRLHjO4fENiPIbm3E4979vQbWYaKLr78iuvNqoILjTzP4hiL31g1lneae8/txVqNFgZyanC4C7d5jZ3+b6ILkAW9Pgg2kF6Qjurt4TeZj7Wur2CkzHwICrUZzRqpDmdu6agFSc/0q2oWYDc3ywv1J4MAL2Z8R+0Et7lMyKnu5+xFSyCcn5jekDHLel3ublI0MwxMw/sTQeu1tqy0GPzRlY4O58VmLdqCiGr0310H2Te/uPr4GW+ZKp5LGyv/d31/r/mV/cOlKc8EoTzh4zAC5gOtUg+WQEWfpV0vr4XJGdDuY+ulLIEceNneXYV/Z3ixF1 k2048";
        assert_eq!(ssh_public_key(rsa2048).unwrap(), rsa2048);
    }
}
