//! The emulator's state: resources by id, long-running operations, VM runtimes with their
//! guests, throttling buckets, fault rules and the request log. One mutex guards it all; every
//! request holds it briefly, which keeps the model simple and is far from the throughput limit.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::faults::Faults;
use crate::guest::Guest;
use crate::throttle::Throttle;
use crate::tracked::Tracked;
use crate::wire::ArmError;

/// How long operations take. Realistic by default; near zero for tests.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Durations {
    #[serde(with = "millis")]
    pub network: Duration,
    #[serde(with = "millis")]
    pub vm_create: Duration,
    #[serde(with = "millis")]
    pub vm_action: Duration,
    #[serde(with = "millis")]
    pub extension: Duration,
    #[serde(with = "millis")]
    pub delete: Duration,
    #[serde(with = "millis")]
    pub resource_group_delete: Duration,
}

impl Default for Durations {
    /// Roughly what Azure takes in a quiet region.
    fn default() -> Self {
        Self {
            network: Duration::from_secs(2),
            vm_create: Duration::from_secs(35),
            vm_action: Duration::from_secs(15),
            extension: Duration::from_secs(20),
            delete: Duration::from_secs(10),
            resource_group_delete: Duration::from_secs(30),
        }
    }
}

impl Durations {
    /// Every operation completes at once (still through the long-running-operation protocol).
    pub fn instant() -> Self {
        Self {
            network: Duration::ZERO,
            vm_create: Duration::ZERO,
            vm_action: Duration::ZERO,
            extension: Duration::ZERO,
            delete: Duration::ZERO,
            resource_group_delete: Duration::ZERO,
        }
    }
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// A stored resource: its id as first written and its body as ARM returns it.
#[derive(Debug, Clone)]
pub(crate) struct Resource {
    pub id: String,
    pub body: Value,
}

/// What happens when an operation completes.
#[derive(Debug, Clone)]
pub(crate) enum Effect {
    /// A PUT finishes: provisioningState becomes Succeeded (or Failed).
    Provision { key: String },
    /// Deletes finish: the resources (and VM runtimes) disappear.
    Delete { keys: Vec<String> },
    /// A VM power action finishes.
    /// A power action; a failed one puts the VM back in the state it was in (`back`).
    Power { vm_key: String, to: &'static str, back: &'static str },
}

/// A long-running operation.
#[derive(Debug, Clone)]
pub(crate) struct Operation {
    pub started: Instant,
    /// When it started by the wall clock, so that it can resume after a restart.
    pub started_wall: SystemTime,
    pub started_at: String,
    pub duration: Duration,
    pub effect: Effect,
    pub result: Result<(), ArmError>,
    pub settled: bool,
    /// Waiting for work outside the state lock (a dockerd starting); not done until cleared.
    pub blocked: bool,
}

impl Operation {
    pub(crate) fn done(&self, now: Instant) -> bool {
        !self.blocked && now >= self.started + self.duration
    }

    pub(crate) fn remaining(&self, now: Instant) -> Duration {
        if self.blocked {
            return Duration::from_secs(1);
        }
        (self.started + self.duration).saturating_duration_since(now)
    }
}

/// Work that must not run under the state lock; drained after each request.
#[derive(Debug, Clone)]
pub(crate) enum Job {
    /// Start the VM's dockerd, then unblock `op` (if any).
    StartDocker {
        vm_key: String,
        op: Option<String>,
    },
    StopDocker {
        vm_key: String,
    },
    /// Open the VM's SSH endpoint (it was created or started).
    StartSsh {
        vm_key: String,
    },
    /// Close it (the VM stopped).
    StopSsh {
        vm_key: String,
    },
    /// Write what a VMAccess run changed in the model into the VM's files, then unblock `op`.
    SyncAccounts {
        vm_key: String,
        op: String,
        before: Box<Guest>,
    },
    /// The VM is gone: stop its dockerd and delete its guest files.
    ForgetVm {
        vm_key: String,
    },
    /// Apply the VM's user data (cloud-init) at first boot, then unblock `op`.
    CloudInit {
        vm_key: String,
        op: String,
        user_data: crate::customscript::Script,
    },
    /// Delete the guest directory of a VM that no longer exists (found at start-up).
    RemoveGuest {
        dir: PathBuf,
    },
    /// Run a CustomScript, then unblock `op`.
    RunScript {
        vm_key: String,
        extension: String,
        op: String,
        script: crate::customscript::Script,
    },
}

/// A VM's runtime: power state, guest, and what its extension handlers reported.
#[derive(Debug, Clone)]
pub(crate) struct VmRuntime {
    pub power: &'static str,
    pub guest: Guest,
    /// Extension instance name (lower-case) → its instanceView statuses.
    pub extension_status: BTreeMap<String, Vec<Value>>,
}

/// One logged request, for tests that assert what reached (or did not reach) the cloud.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LogEntry {
    pub seq: u64,
    pub method: String,
    pub path: String,
    pub status: u16,
    pub millis: u64,
}

const LOG_CAPACITY: usize = 20_000;

/// Everything mutable.
#[derive(Debug)]
pub(crate) struct Inner {
    pub resources: Tracked<Resource>,
    pub ops: Tracked<Operation>,
    pub vms: Tracked<VmRuntime>,
    /// Template deployments by key (lower-case id), kept after they end.
    pub deployments: Tracked<crate::arm::Run>,
    pub throttle: Throttle,
    pub faults: Faults,
    pub durations: Durations,
    pub log: VecDeque<LogEntry>,
    pub log_seq: u64,
    pub next_ip: u32,
    pub jobs: Vec<Job>,
    /// A script the extension PUT being handled wants run, until its operation exists.
    pub pending_script: Option<(String, String, crate::customscript::Script)>,
    /// The guest as it was before the VMAccess run of the extension PUT being handled, until
    /// its operation exists.
    pub pending_accounts: Option<(String, Box<Guest>)>,
    /// User data of the VM being created, until its operation exists.
    pub pending_user_data: Option<(String, crate::customscript::Script)>,
    /// The address counter as last journaled.
    pub saved_next_ip: u32,
    /// A principal's certificates or federated credentials changed since the last journal entry.
    pub principals_changed: bool,
    /// The person's device codes and refresh tokens.
    pub people: crate::people::People,
}

impl Inner {
    pub(crate) fn new(throttle: Throttle, faults: Faults, durations: Durations) -> Self {
        Self {
            resources: Tracked::default(),
            ops: Tracked::default(),
            vms: Tracked::default(),
            deployments: Tracked::default(),
            throttle,
            faults,
            durations,
            log: VecDeque::new(),
            log_seq: 0,
            // A random start, so that two local clouds on one machine (parallel tests) hand out
            // different addresses and their dockerds do not collide.
            next_ip: {
                use ring::rand::SecureRandom as _;
                let mut b = [0u8; 4];
                let _ = ring::rand::SystemRandom::new().fill(&mut b);
                u32::from_le_bytes(b) % (253 * 256)
            },
            jobs: Vec::new(),
            pending_script: None,
            pending_user_data: None,
            pending_accounts: None,
            saved_next_ip: 0,
            principals_changed: false,
            people: crate::people::People::default(),
        }
    }

    pub(crate) fn log(&mut self, method: &str, path: &str, status: u16, elapsed: Duration) {
        self.log_seq += 1;
        if self.log.len() == LOG_CAPACITY {
            self.log.pop_front();
        }
        let millis = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        self.log.push_back(LogEntry {
            seq: self.log_seq,
            method: method.to_owned(),
            path: path.to_owned(),
            status,
            millis,
        });
    }

    /// Applies the effects of every operation that has finished by `now`.
    pub(crate) fn settle(&mut self, now: Instant) {
        let due: Vec<String> =
            self.ops.iter().filter(|(_, op)| !op.settled && op.done(now)).map(|(id, _)| id.clone()).collect();
        for id in due {
            let Some(op) = self.ops.get_mut(&id) else { continue };
            op.settled = true;
            let (effect, ok) = (op.effect.clone(), op.result.is_ok());
            match effect {
                Effect::Provision { key } => {
                    if let Some(r) = self.resources.get_mut(&key) {
                        r.body["properties"]["provisioningState"] = json!(if ok { "Succeeded" } else { "Failed" });
                    }
                }
                Effect::Delete { keys } => {
                    if ok {
                        for key in keys {
                            self.resources.remove(&key);
                            self.deployments.remove(&key);
                            // A deleted extension leaves the VM's instance view with it.
                            if let Some((vm_key, name)) = key.rsplit_once("/extensions/")
                                && let Some(vm) = self.vms.get_mut(vm_key)
                            {
                                vm.extension_status.remove(name);
                            }
                            if self.vms.remove(&key).is_some() {
                                self.jobs.push(Job::ForgetVm { vm_key: key });
                            }
                        }
                    }
                }
                Effect::Power { vm_key, to, back } => {
                    if let Some(vm) = self.vms.get_mut(&vm_key)
                        && !ok
                    {
                        vm.power = back;
                    }
                    if let Some(vm) = self.vms.get_mut(&vm_key)
                        && ok
                    {
                        vm.power = to;
                        if vm.guest.os == crate::OsKind::Linux {
                            let vm_key = vm_key.clone();
                            if to == "running" {
                                self.jobs.push(Job::StartSsh { vm_key });
                            } else {
                                vm.guest.ssh_endpoint = Some(crate::guest::SshEndpoint::Stopped);
                                self.jobs.push(Job::StopSsh { vm_key });
                            }
                        }
                        if let Some(docker) = vm.guest.docker.as_mut().filter(|d| d.runs_daemon()) {
                            if to == "running" {
                                docker.daemon = crate::guest::Daemon::Starting;
                                self.jobs.push(Job::StartDocker { vm_key, op: None });
                            } else {
                                docker.daemon = crate::guest::Daemon::Stopped;
                                self.jobs.push(Job::StopDocker { vm_key });
                            }
                        }
                    }
                }
            }
        }
        // Keep finished operations an hour, as ARM keeps their status, then forget them.
        self.ops.retain(|_, op| {
            !op.settled || now.saturating_duration_since(op.started + op.duration) < Duration::from_secs(3600)
        });
    }

    /// Starts an operation and returns its id.
    pub(crate) fn start_op(&mut self, duration: Duration, effect: Effect, result: Result<(), ArmError>) -> String {
        let id = crate::wire::uuid();
        self.ops.insert(
            id.clone(),
            Operation {
                started: Instant::now(),
                started_wall: SystemTime::now(),
                started_at: crate::now_rfc3339(),
                duration,
                effect,
                result,
                settled: false,
                blocked: false,
            },
        );
        id
    }

    /// The next emulated public IP, in 127.1.0.0/16 so that the VM's services (a real dockerd)
    /// can listen on it on this machine.
    pub(crate) fn allocate_public_ip(&mut self) -> String {
        loop {
            self.next_ip += 1;
            let n = self.next_ip;
            let (hi, lo) = (n / 253 % 256, n % 253 + 2);
            let ip = format!("127.1.{hi}.{lo}");
            let taken = self.resources.values().any(|r| r.body["properties"]["ipAddress"] == json!(ip));
            if !taken {
                return ip;
            }
        }
    }
}
