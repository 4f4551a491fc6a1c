//! Plugins run in a helper process: azdock starts itself once per invocation as
//! `azdock __plugin-host` (when the first plugin is needed, never for built-ins alone) and
//! speaks JSON lines with it over pipes — load a plugin, plan with one. A plugin that aborts or
//! crashes ends the helper, not azdock: the call that was in flight fails with an error naming
//! the plugin and how the helper ended, and the next call starts a new helper, so the rest of
//! the command and the other plugins keep working. `catch_unwind` in the plugin cannot do this
//! for a plugin built with `panic = "abort"`, or one that segfaults.
//!
//! Requests and answers (one JSON object per line):
//! - `{"load": {"path": PATH, "hash": BOOL}}` → `{"manifest": Manifest, "sha256": HEX|null}` or
//!   `{"refused": REASON}`
//! - `{"plan": {"path": PATH, "request": PlanRequest}}` → `{"plan": Plan}` or `{"error": ExtensionError}`
//!
//! Secret arguments cross the pipe, never a command line.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write as _};
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitCode, Stdio};
use std::sync::Mutex;

use azdock_core::{ExtensionError, Manifest, Plan, PlanRequest, Secret, VmExtension};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::PluginDir;
use super::load::{LoadedPlugin, load_here};

/// The hidden first argument that makes azdock the plugin process.
pub const ARG: &str = "__plugin-host";

/// What azdock asks the plugin process, as it sends it: the request is borrowed, not copied,
/// and written straight into a wiped buffer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
enum Asking<'a> {
    Load { path: &'a Path, hash: bool },
    Plan { path: &'a Path, request: &'a PlanRequest },
}

/// What the plugin process reads ([`Asking`] on the other side of the pipe).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
enum Ask {
    /// `hash`: read and hash the file even outside the plugin directory (for `plugin add`).
    Load {
        path: PathBuf,
        hash: bool,
    },
    Plan {
        path: PathBuf,
        request: Box<PlanRequest>,
    },
}

/// A plugin as azdock sees it: its manifest, and the file the plugin process loads.
#[derive(Debug)]
pub struct PluginExtension {
    manifest: Manifest,
    path: PathBuf,
    /// The SHA-256 of the bytes the plugin process loaded, when it read them.
    pub sha256: Option<String>,
}

#[azdock_core::async_trait]
impl VmExtension for PluginExtension {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    async fn plan(&self, request: &PlanRequest) -> Result<Plan, ExtensionError> {
        let failed = |why: String| ExtensionError::Failed(format!("plugin `{}`: {why}", self.path.display()));
        let answer = call_raw(&Asking::Plan { path: &self.path, request }).map_err(failed)?;
        // Read straight from the line into the plan (whose protected settings are secrets), and
        // the line is wiped: no `Value` copy of the settings is left behind.
        match serde_json::from_str::<Planned>(answer.expose()) {
            Ok(Planned::Plan(plan)) => Ok(*plan),
            Ok(Planned::Error(error)) => Err(error),
            Ok(Planned::Refused(why)) => Err(failed(why)),
            Err(e) => Err(failed(format!("an unreadable answer: {e}"))),
        }
    }
}

/// The plugin process's answer to a plan request.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
enum Planned {
    Plan(Box<Plan>),
    Error(ExtensionError),
    Refused(String),
}

/// The plugin process of this invocation, started on first use.
struct Helper {
    child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
}

static HELPER: Mutex<Option<Helper>> = Mutex::new(None);

fn start() -> Result<Helper, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find azdock itself to run plugins: {e}"))?;
    let mut child = Command::new(exe)
        .arg(ARG)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start the plugin process: {e}"))?;
    let (Some(input), Some(output)) = (child.stdin.take(), child.stdout.take()) else {
        return Err("cannot talk to the plugin process".into());
    };
    Ok(Helper { child, input, output: BufReader::new(output) })
}

/// How a helper that stopped answering ended.
fn ending(mut helper: Helper) -> String {
    drop(helper.input);
    match helper.child.wait() {
        Ok(status) => match (status.signal(), status.code()) {
            (Some(6), _) => "it aborted (SIGABRT)".into(),
            (Some(11), _) => "it crashed (SIGSEGV)".into(),
            (Some(signal), _) => format!("it was killed by signal {signal}"),
            (None, Some(code)) => format!("it exited with code {code}"),
            (None, None) => "it ended".into(),
        },
        Err(e) => format!("it ended ({e})"),
    }
}

/// One question to the plugin process, one answer line (a secret: a plan's protected settings);
/// a helper that dies on it is replaced for the next question.
fn call_raw(ask: &Asking<'_>) -> Result<Secret<String>, String> {
    let mut slot = HELPER.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if slot.is_none() {
        *slot = Some(start()?);
    }
    let helper = slot.as_mut().unwrap_or_else(|| unreachable!("started above"));
    let mut line = azdock_core::secret::to_json(ask).map_err(|e| e.to_string())?;
    line.write_all(b"\n").map_err(|e| e.to_string())?;
    let mut answer = Secret::new(String::with_capacity(64 * 1024));
    let sent = helper.input.write_all(line.as_bytes()).and_then(|()| helper.input.flush());
    let read = sent.and_then(|()| read_line(&mut helper.output, &mut answer));
    match read {
        Ok(n) if n > 0 => Ok(answer),
        _ => {
            let helper = slot.take().unwrap_or_else(|| unreachable!("in use above"));
            Err(format!("the plugin failed and was stopped: {}", ending(helper)))
        }
    }
}

/// Reads one line into a secret string. Growing a `String` leaves its outgrown copies in freed
/// memory, so the line is gathered in a [`SecretBuf`](azdock_core::secret::SecretBuf) and moved.
fn read_line(input: &mut impl BufRead, into: &mut Secret<String>) -> std::io::Result<usize> {
    let mut buf = azdock_core::secret::SecretBuf::with_capacity(64 * 1024);
    loop {
        let chunk = input.fill_buf()?;
        if chunk.is_empty() {
            break;
        }
        let (take, done) = match chunk.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        buf.write_all(&chunk[..take])?;
        input.consume(take);
        if done {
            break;
        }
    }
    let text =
        std::str::from_utf8(buf.as_bytes()).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    *into = Secret::new(text.to_owned());
    Ok(buf.as_bytes().len())
}

/// One question whose answer holds no secret (loading a plugin), as JSON.
fn call(ask: &Asking<'_>) -> Result<Value, String> {
    let answer = call_raw(ask)?;
    serde_json::from_str(answer.expose()).map_err(|e| format!("the plugin process answered badly: {e}"))
}

/// Loads a plugin in the plugin process; its manifest is checked again here.
pub fn load(path: &Path, hash: bool) -> Result<PluginExtension, String> {
    let answer = call(&Asking::Load { path, hash })?;
    if let Some(reason) = answer.get("refused").and_then(Value::as_str) {
        return Err(reason.to_owned());
    }
    let manifest: Manifest = serde_json::from_value(answer.get("manifest").cloned().unwrap_or(Value::Null))
        .map_err(|e| format!("its manifest is not valid: {e}"))?;
    manifest.validate().map_err(|e| format!("its manifest breaks the rules: {e}"))?;
    let sha256 = answer.get("sha256").and_then(Value::as_str).map(str::to_owned);
    Ok(PluginExtension { manifest, path: path.to_owned(), sha256 })
}

/// The plugin process: answers questions on stdin until it closes. The binary calls this when
/// its first argument is [`ARG`], with the plugin directory it would use itself.
pub fn serve(plugins: &PluginDir) -> ExitCode {
    let mut loaded: HashMap<PathBuf, Result<LoadedPlugin, String>> = HashMap::new();
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout().lock();
    let mut input = stdin.lock();
    loop {
        let mut line = Secret::new(String::new());
        match read_line(&mut input, &mut line) {
            Ok(n) if n > 0 => {}
            _ => break,
        }
        let mut text = match serde_json::from_str::<Ask>(line.expose()) {
            Err(e) => json!({"refused": format!("a request the plugin process cannot read: {e}")}).to_string(),
            Ok(Ask::Load { path, hash }) => {
                let plugin = loaded.entry(path.clone()).or_insert_with(|| load_here(plugins, &path, hash));
                match plugin {
                    Ok(p) => json!({"manifest": p.manifest, "sha256": p.sha256}),
                    Err(why) => json!({"refused": why}),
                }
                .to_string()
            }
            Ok(Ask::Plan { path, request }) => {
                let plugin = loaded.entry(path.clone()).or_insert_with(|| load_here(plugins, &path, false));
                let result = match plugin {
                    Ok(p) => p.plan(&request),
                    Err(why) => Err(ExtensionError::Failed(why.clone())),
                };
                let planned = match result {
                    Ok(plan) => Planned::Plan(Box::new(plan)),
                    Err(error) => Planned::Error(error),
                };
                // The plan's protected settings go straight into a wiped buffer.
                let sent =
                    azdock_core::secret::to_json(&planned).map_err(std::io::Error::other).and_then(|mut json| {
                        json.write_all(b"\n")?;
                        stdout.write_all(json.as_bytes())?;
                        stdout.flush()
                    });
                if sent.is_err() {
                    break;
                }
                continue;
            }
        };
        text.push('\n');
        if stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()).is_err() {
            break;
        }
    }
    ExitCode::SUCCESS
}
