//! What travels to the VM: the install script (CustomScript), the same steps as cloud-config
//! (cloud-init), the legacy DockerExtension's settings, and the uninstall script.
//!
//! Every variant leaves the same result: dockerd listening on `tcp://0.0.0.0:<port>` with
//! `--tlsverify` and the host's server certificate, the CA that signed the user's client
//! certificate, and the admin user in the `docker` group. Certificates and keys are written
//! 0600; the private key only ever travels in protected settings or `customData`.

use std::io::Write as _;

use azdock_core::Secret;
use azdock_core::secret::SecretBuf;
use base64::Engine as _;
use serde_json::{Value, json};

/// The install script's `apt_get`: apt-get as a first boot needs it.
fn apt_get_function() -> String {
    format!(
        r#"# apt-get as a first boot needs it: on Azure's Ubuntu images cloud-init and unattended-upgrades
# hold the package lock for minutes after boot, and a mirror may not answer yet. The dpkg lock is
# waited for by apt itself (DPkg::Lock::Timeout, ignored by an apt too old to know it); a lock
# apt does not wait for (update's) and an update that reached no mirror (apt says so in warnings
# and still exits 0) are tried again, for at most {APT_WAIT_SECS} s in all, saying what was waited for.
apt_get() {{
  out=$(mktemp)
  started=$(date +%s)
  waited_for=""
  while :; do
    if apt-get -o DPkg::Lock::Timeout=60 "$@" >"$out" 2>&1 \
      && ! grep -q '^W: Failed to fetch\|^W: Some index files failed to download' "$out"; then
      cat "$out"
      rm -f "$out"
      if [ -n "$waited_for" ]; then
        log "waited $(( $(date +%s) - started )) s for $waited_for"
      fi
      return 0
    fi
    cat "$out" >&2
    if grep -q 'Could not get lock\|Unable to acquire the dpkg frontend lock\|Unable to lock directory' "$out"; then
      holder=$(sed -n 's/.*It is held by process [0-9]* (\([^)]*\)).*/\1/p' "$out" | head -n 1)
      waited_for="the package lock (held by ${{holder:-another process}})"
    elif [ "$1" = update ]; then
      waited_for="a package mirror (apt-get update reached none)"
    else
      rm -f "$out"
      return 1
    fi
    if [ $(( $(date +%s) - started )) -ge {APT_WAIT_SECS} ]; then
      log "gave up after {APT_WAIT_SECS} s waiting for $waited_for"
      rm -f "$out"
      return 1
    fi
    log "waiting for $waited_for"
    sleep 5
  done
}}
"#
    )
}

/// How long the install script waits, in all, for the package lock and for a mirror on a first
/// boot (cloud-init and unattended-upgrades finish within minutes; CustomScript allows 90).
pub const APT_WAIT_SECS: u32 = 900;
/// Where the files go on the VM.
pub const CA_PATH: &str = "/etc/docker/ca.pem";
pub const CERT_PATH: &str = "/etc/docker/cert.pem";
pub const KEY_PATH: &str = "/etc/docker/key.pem";
/// The systemd drop-in that replaces the packaged `ExecStart=`.
pub const DROP_IN_PATH: &str = "/etc/systemd/system/docker.service.d/azdock.conf";

/// The Docker host a payload sets up.
#[derive(Debug)]
pub struct DockerSetup {
    pub port: u16,
    /// Extra dockerd flags (`--docker-option`), checked with [`check_option`].
    pub options: Vec<String>,
    /// The VM's admin user, added to the `docker` group.
    pub admin_user: Option<String>,
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: Secret<String>,
}

/// A dockerd flag given with `--docker-option`: it ends up in a systemd `ExecStart=` line and a
/// shell script, so it must be one word of plain characters.
pub fn check_option(option: &str) -> Result<(), String> {
    let ok = option.starts_with('-')
        && option.len() <= 200
        && option.chars().all(|c| c.is_ascii_alphanumeric() || "-_=:/.,@+".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{option}` is not a dockerd flag azdock can pass on: use one word starting with `-`, made of letters, digits and -_=:/.,@+ (e.g. --log-level=warn)"
        ))
    }
}

impl DockerSetup {
    /// The dockerd command line of the drop-in (after `ExecStart=`).
    fn dockerd_line(&self, dockerd: &str) -> String {
        let mut line = format!(
            "{dockerd} -H fd:// -H tcp://0.0.0.0:{} --tlsverify --tlscacert={CA_PATH} --tlscert={CERT_PATH} --tlskey={KEY_PATH}",
            self.port
        );
        for option in &self.options {
            line.push(' ');
            line.push_str(option);
        }
        line
    }

    /// The drop-in's contents, with dockerd at `dockerd`.
    fn drop_in(&self, dockerd: &str) -> String {
        format!(
            "# Written by azdock: dockerd with mutual TLS on port {port}.\n[Service]\nExecStart=\nExecStart={line}\n",
            port = self.port,
            line = self.dockerd_line(dockerd)
        )
    }

    /// The CustomScript install script: POSIX sh, idempotent (a second run finds everything in
    /// place and restarts nothing), installing Docker from the distribution's own packages.
    pub fn install_script(&self) -> Secret<String> {
        let user = self.admin_user.as_deref().unwrap_or_default();
        // It carries the server's private key: built in a buffer that wipes what it outgrows.
        let mut s = SecretBuf::with_capacity(16 * 1024);
        let _ = write!(
            s,
            "#!/bin/sh\n# azdock: Docker with mutual TLS on tcp://0.0.0.0:{port}. Generated; safe to run again.\nset -eu\numask 077\nPORT={port}\nADMIN_USER='{user}'\n",
            port = self.port,
        );
        script_common(&mut s);
        let _ = s.write_all(b"mkdir -p /etc/docker /etc/systemd/system/docker.service.d\n");
        for (path, pem) in [(CA_PATH, &self.ca_pem), (CERT_PATH, &self.cert_pem), (KEY_PATH, self.key_pem.expose())] {
            let _ = write!(s, "put_file {path} 600 <<'AZDOCK_PEM'\n{}\nAZDOCK_PEM\n", pem.trim_end());
        }
        // The drop-in names dockerd where this distribution put it; the heredoc is unquoted
        // for that one variable, and nothing else in it expands.
        let _ = write!(s, "put_file {DROP_IN_PATH} 644 <<AZDOCK_UNIT\n{}AZDOCK_UNIT\n", self.drop_in("$DOCKERD"));
        finish_script(
            &mut s,
            "docker restarted with TLS on tcp://0.0.0.0:$PORT",
            "nothing to change: docker already listens with TLS on port $PORT",
        );
        s.into_secret_string().unwrap_or_default()
    }

    /// The same steps as cloud-config for `customData` (new VMs): files first, then the
    /// install and restart, in the order cloud-init runs its modules.
    pub fn cloud_config(&self) -> Secret<String> {
        // It carries the server's private key: built in a buffer that wipes what it outgrows,
        // each line indented as it is written (no intermediate copy of the key).
        let mut s = SecretBuf::with_capacity(16 * 1024);
        let indented = |s: &mut SecretBuf, text: &str| {
            for line in text.trim_end().lines() {
                let _ = writeln!(s, "      {line}");
            }
        };
        let _ =
            write!(s, "#cloud-config\n# azdock: Docker with mutual TLS on tcp://0.0.0.0:{}\nwrite_files:\n", self.port);
        for (path, pem) in [(CA_PATH, &self.ca_pem), (CERT_PATH, &self.cert_pem), (KEY_PATH, self.key_pem.expose())] {
            let _ = write!(s, "  - path: {path}\n    permissions: '0600'\n    content: |\n");
            indented(&mut s, pem);
        }
        let _ = write!(s, "  - path: {DROP_IN_PATH}\n    permissions: '0644'\n    content: |\n");
        indented(&mut s, &self.drop_in("/usr/bin/dockerd"));
        let _ = s.write_all(b"runcmd:\n");
        let _ = s.write_all(b"  - [sh, -c, 'command -v dockerd >/dev/null || (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q docker.io) || dnf install -y -q moby-engine']\n");
        let _ = s.write_all(
            b"  - [systemctl, daemon-reload]\n  - [systemctl, enable, docker]\n  - [systemctl, restart, docker]\n",
        );
        if let Some(user) = self.admin_user.as_deref().filter(|u| !u.is_empty()) {
            let _ = writeln!(s, "  - [sh, -c, 'if id {user} >/dev/null 2>&1; then usermod -aG docker {user}; fi']");
        }
        s.into_secret_string().unwrap_or_default()
    }

    /// The retired DockerExtension's settings: public `docker.port` (a string) and `options`;
    /// protected base64 certificates.
    pub fn legacy_settings(&self) -> (Value, Secret<Value>) {
        let b64 = |text: &str| base64::engine::general_purpose::STANDARD.encode(text.as_bytes());
        let public = json!({"docker": {"port": self.port.to_string(), "options": self.options}});
        let protected =
            json!({"certs": {"ca": b64(&self.ca_pem), "cert": b64(&self.cert_pem), "key": b64(self.key_pem.expose())}});
        (public, Secret::new(protected))
    }
}

/// What every install script does after its variables: logging, apt-get as a first boot needs
/// it, Docker from the distribution's packages, and `put_file`.
fn script_common(s: &mut impl std::io::Write) {
    let _ = write!(
        s,
        r#"changed=0

log() {{ printf 'azdock: %s\n' "$*"; }}

{apt_get}
# Docker from the distribution's own packages (no curl | sh).
if ! command -v dockerd >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    log "installing docker.io with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt_get update -q
    apt_get install -y -q docker.io
  elif command -v dnf >/dev/null 2>&1; then
    log "installing moby-engine with dnf"
    dnf install -y -q moby-engine || dnf install -y -q docker
  elif command -v tdnf >/dev/null 2>&1; then
    log "installing moby-engine with tdnf"
    tdnf install -y -q moby-engine
  else
    distro=unknown
    if [ -r /etc/os-release ]; then
      distro=$(sed -n 's/^PRETTY_NAME=//p' /etc/os-release | tr -d '"')
    fi
    echo "azdock: cannot install Docker on '$distro': no apt-get, dnf or tdnf. Use an Ubuntu, Debian, Azure Linux, RHEL, AlmaLinux or Fedora image, or install Docker first." >&2
    exit 3
  fi
  changed=1
fi
# Where the package put dockerd (Debian, Ubuntu and Fedora all use /usr/bin).
DOCKERD=$(command -v dockerd || echo /usr/bin/dockerd)

# Writes stdin to $1 with mode $2, only when the contents differ.
put_file() {{
  tmp="$1.azdock-new"
  cat > "$tmp"
  chmod "$2" "$tmp"
  if [ -f "$1" ] && cmp -s "$tmp" "$1"; then
    rm -f "$tmp"
  else
    mv -f "$tmp" "$1"
    changed=1
  fi
}}

"#,
        apt_get = apt_get_function(),
    );
}

/// Adds the admin user to the `docker` group (its socket's group) when it is not in it.
const ADD_TO_DOCKER_GROUP: &str = r#"
if [ -n "$ADMIN_USER" ] && id "$ADMIN_USER" >/dev/null 2>&1; then
  if ! id -nG "$ADMIN_USER" | tr ' ' '\n' | grep -qx docker; then
    usermod -aG docker "$ADMIN_USER"
    log "added $ADMIN_USER to the docker group"
  fi
fi

"#;

/// What every install script ends with: the admin user in the `docker` group, and Docker
/// restarted when something changed (or it is not running), saying which.
fn finish_script(s: &mut impl std::io::Write, restarted: &str, unchanged: &str) {
    let _ = s.write_all(ADD_TO_DOCKER_GROUP.as_bytes());
    let _ = write!(
        s,
        r#"if [ "$changed" = 1 ] || ! systemctl is-active --quiet docker; then
  systemctl daemon-reload
  systemctl enable docker
  systemctl restart docker
  log "{restarted}"
else
  log "{unchanged}"
fi
"#
    );
}

/// A Docker host reached over SSH: dockerd on its unix socket only, so no daemon port faces the
/// network; the admin user reaches it through the `docker` group.
#[derive(Debug, Clone)]
pub struct SocketSetup {
    /// Extra dockerd flags (`--docker-option`), checked with [`check_option`].
    pub options: Vec<String>,
    pub admin_user: String,
}

impl SocketSetup {
    /// The drop-in's contents, with dockerd at `dockerd`: systemd's socket only (`fd://`).
    fn drop_in(&self, dockerd: &str) -> String {
        let mut line = format!("{dockerd} -H fd://");
        for option in &self.options {
            line.push(' ');
            line.push_str(option);
        }
        format!(
            "# Written by azdock: dockerd on its unix socket only, reached over SSH.\n[Service]\nExecStart=\nExecStart={line}\n"
        )
    }

    /// The CustomScript install script: Docker from the distribution's packages listening on
    /// its socket only (a TLS listener an earlier install set up goes, with its certificates),
    /// the admin user in the `docker` group, then the VM's public SSH host keys printed for the
    /// client to pin. Idempotent, like the TLS one.
    pub fn install_script(&self) -> String {
        // Nothing secret in it: a plain buffer.
        let mut s = Vec::with_capacity(8 * 1024);
        let _ = write!(
            s,
            "#!/bin/sh\n# azdock: Docker on its unix socket only, reached over SSH. Generated; safe to run again.\nset -eu\numask 077\nADMIN_USER='{}'\n",
            self.admin_user
        );
        script_common(&mut s);
        let _ = s.write_all(b"mkdir -p /etc/systemd/system/docker.service.d\n");
        let _ = write!(s, "put_file {DROP_IN_PATH} 644 <<AZDOCK_UNIT\n{}AZDOCK_UNIT\n", self.drop_in("$DOCKERD"));
        let _ = write!(
            s,
            r#"# No TCP listener: the certificates of an earlier TLS install go too.
for f in {CA_PATH} {CERT_PATH} {KEY_PATH}; do
  if [ -e "$f" ]; then
    rm -f "$f"
    changed=1
    log "removed $f"
  fi
done
getent group docker >/dev/null 2>&1 || groupadd --system docker
"#
        );
        finish_script(
            &mut s,
            "docker restarted on its unix socket only (no TCP listener)",
            "nothing to change: docker already listens on its unix socket only",
        );
        let _ = write!(
            s,
            r#"# The VM's public SSH host keys, for the client to pin before it connects.
for key in /etc/ssh/ssh_host_*_key.pub; do
  [ -f "$key" ] || continue
  printf '{prefix}%s\n' "$(cut -d' ' -f1,2 "$key")"
done
"#,
            prefix = azdock_core::HOST_KEY_PREFIX
        );
        String::from_utf8_lossy(&s).into_owned()
    }
}

/// Undoes what the install script did: the TCP listener and its certificates go, Docker itself
/// stays (containers and images are the user's).
pub fn uninstall_script(port: u16) -> String {
    format!(
        r#"#!/bin/sh
# azdock: remove Docker's TLS listener on port {port}. Docker and its data stay.
set -eu
if [ -f {DROP_IN_PATH} ]; then
  rm -f {DROP_IN_PATH} {CA_PATH} {CERT_PATH} {KEY_PATH}
  systemctl daemon-reload
  systemctl restart docker
  printf 'azdock: %s\n' "docker no longer listens on tcp port {port}"
else
  printf 'azdock: %s\n' "nothing to remove: no azdock drop-in"
fi
"#
    )
}

/// The CustomScript protected settings carrying a script.
pub fn customscript_protected(script: &str) -> Secret<Value> {
    Secret::new(json!({"script": base64::engine::general_purpose::STANDARD.encode(script.as_bytes())}))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn setup() -> DockerSetup {
        DockerSetup {
            port: 2376,
            options: vec!["--log-level=warn".into()],
            admin_user: Some("azureuser".into()),
            ca_pem: "-----BEGIN CERTIFICATE-----\nQ0E=\n-----END CERTIFICATE-----\n".into(),
            cert_pem: "-----BEGIN CERTIFICATE-----\nU0VSVkVS\n-----END CERTIFICATE-----\n".into(),
            key_pem: Secret::new("-----BEGIN PRIVATE KEY-----\nS0VZ\n-----END PRIVATE KEY-----\n".into()),
        }
    }

    #[test]
    fn options_are_single_plain_flags() {
        assert!(check_option("--log-level=warn").is_ok());
        assert!(check_option("--default-ulimit=nofile=1024:2048").is_ok());
        for bad in ["log-level", "--x; rm -rf /", "--a b", "--x=$(id)", "--x\nExecStart=/bin/sh", ""] {
            assert!(check_option(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_install_script_for_a_given_input() {
        insta::assert_snapshot!("install_script", setup().install_script().expose());
    }

    #[test]
    fn the_cloud_config_for_a_given_input() {
        insta::assert_snapshot!("cloud_config", setup().cloud_config().expose());
    }

    #[test]
    fn legacy_settings_carry_the_port_as_a_string_and_base64_certificates() {
        let (public, protected) = setup().legacy_settings();
        assert_eq!(public["docker"]["port"], "2376");
        assert_eq!(
            protected.expose()["certs"]["ca"],
            "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tClEwRT0KLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo="
        );
    }

    #[test]
    fn the_ssh_install_script_for_a_given_input() {
        let setup = SocketSetup { options: vec!["--log-level=warn".into()], admin_user: "azureuser".into() };
        insta::assert_snapshot!("ssh_install_script", setup.install_script());
    }

    #[test]
    fn the_uninstall_script() {
        insta::assert_snapshot!("uninstall_script", uninstall_script(2376));
    }
}
