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
use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitCode, Stdio};
use std::sync::Mutex;

use azdock_core::{ExtensionError, Manifest, Plan, PlanRequest, VmExtension};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::PluginDir;
use super::load::{LoadedPlugin, load_here};

/// The hidden first argument that makes azdock the plugin process.
pub const ARG: &str = "__plugin-host";

/// What azdock asks the plugin process.
#[derive(Debug, Serialize, Deserialize)]
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
        let answer =
            call(&Ask::Plan { path: self.path.clone(), request: Box::new(request.clone()) }).map_err(failed)?;
        if let Some(plan) = answer.get("plan") {
            return serde_json::from_value(plan.clone()).map_err(|e| failed(format!("an unreadable plan: {e}")));
        }
        let error: ExtensionError = serde_json::from_value(answer.get("error").cloned().unwrap_or(Value::Null))
            .map_err(|e| failed(format!("an unreadable answer: {e}")))?;
        Err(error)
    }
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

/// One question to the plugin process, one answer; a helper that dies on it is replaced for
/// the next question.
fn call(ask: &Ask) -> Result<Value, String> {
    let mut slot = HELPER.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if slot.is_none() {
        *slot = Some(start()?);
    }
    let helper = slot.as_mut().unwrap_or_else(|| unreachable!("started above"));
    let line = serde_json::to_string(ask).map_err(|e| e.to_string())? + "\n";
    let mut answer = String::new();
    let sent = helper.input.write_all(line.as_bytes()).and_then(|()| helper.input.flush());
    let read = sent.and_then(|()| helper.output.read_line(&mut answer));
    match read {
        Ok(n) if n > 0 => serde_json::from_str(&answer).map_err(|e| format!("the plugin process answered badly: {e}")),
        _ => {
            let helper = slot.take().unwrap_or_else(|| unreachable!("in use above"));
            Err(format!("the plugin failed and was stopped: {}", ending(helper)))
        }
    }
}

/// Loads a plugin in the plugin process; its manifest is checked again here.
pub fn load(path: &Path, hash: bool) -> Result<PluginExtension, String> {
    let answer = call(&Ask::Load { path: path.to_owned(), hash })?;
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
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let answer = match serde_json::from_str::<Ask>(&line) {
            Err(e) => json!({"refused": format!("a request the plugin process cannot read: {e}")}),
            Ok(Ask::Load { path, hash }) => {
                let plugin = loaded.entry(path.clone()).or_insert_with(|| load_here(plugins, &path, hash));
                match plugin {
                    Ok(p) => json!({"manifest": p.manifest, "sha256": p.sha256}),
                    Err(why) => json!({"refused": why}),
                }
            }
            Ok(Ask::Plan { path, request }) => {
                let plugin = loaded.entry(path.clone()).or_insert_with(|| load_here(plugins, &path, false));
                let result = match plugin {
                    Ok(p) => p.plan(&request),
                    Err(why) => Err(ExtensionError::Failed(why.clone())),
                };
                match result {
                    Ok(plan) => json!({"plan": plan}),
                    Err(error) => json!({"error": error}),
                }
            }
        };
        let mut text = answer.to_string();
        text.push('\n');
        if stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()).is_err() {
            break;
        }
    }
    ExitCode::SUCCESS
}
