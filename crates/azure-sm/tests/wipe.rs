//! A request body's secrets leave no copy in freed memory: an allocator that looks into every
//! block as it is freed watches a PUT carrying protected settings go through [`Arm`] to a
//! loopback server, and finds the secret in none of the blocks freed on the way — the body
//! buffer is wiped after the send. A control run with a plain `Vec` body shows the check sees
//! what it looks for.

// A global allocator is unsafe by nature; it only forwards to `System` and reads blocks it frees.
#![allow(unsafe_code, clippy::unwrap_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read as _, Write as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::time::Instant;

use azdock_azure_sm::credential::{AccessToken, Credential};
use azdock_azure_sm::requests::{ExtensionBody, ExtensionPropertiesBody};
use azdock_azure_sm::{Arm, AzureError, Body, Cloud, RetryPolicy};
use azdock_core::Secret;
use azdock_core::secret::{Exposing, Wipe as _};

const MARKER_LEN: usize = 24;
static MARKER: [AtomicU8; MARKER_LEN] = [const { AtomicU8::new(0) }; MARKER_LEN];
static WATCHING: AtomicBool = AtomicBool::new(false);
static FOUND: AtomicUsize = AtomicUsize::new(0);

struct Inspecting;

// SAFETY: every call is passed on to `System`; `dealloc` only reads the block it is about to
// free, which is still allocated and `layout.size()` bytes long.
unsafe impl GlobalAlloc for Inspecting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if WATCHING.load(Ordering::SeqCst) && layout.size() >= MARKER_LEN {
            let block = unsafe { std::slice::from_raw_parts(ptr, layout.size()) };
            let holds =
                block.windows(MARKER_LEN).any(|w| w.iter().zip(&MARKER).all(|(b, m)| *b == m.load(Ordering::SeqCst)));
            if holds {
                FOUND.fetch_add(1, Ordering::SeqCst);
            }
        }
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Inspecting = Inspecting;

/// A token that needs no sign-in: the server below does not check it.
#[derive(Debug)]
struct Fixed;

#[azdock_core::async_trait]
impl Credential for Fixed {
    async fn token(&self, _http: &reqwest::Client, _scope: &str) -> Result<AccessToken, AzureError> {
        Ok(AccessToken {
            token: Arc::new(Secret::new("t".into())),
            refresh_at: Instant::now() + std::time::Duration::from_secs(600),
        })
    }
}

/// A loopback HTTP/1.1 server answering one request with `{}`; returns whether the body it read
/// held the marker (so the secret did reach the wire). Its own buffer is wiped before it is freed.
fn serve_once(listener: std::net::TcpListener) -> std::thread::JoinHandle<bool> {
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut seen = Vec::with_capacity(64 * 1024);
        let mut chunk = [0u8; 4096];
        let held = loop {
            let n = stream.read(&mut chunk).unwrap();
            seen.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&seen).into_owned();
            if let Some(head_end) = text.find("\r\n\r\n") {
                let length = text[..head_end]
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap())
                    })
                    .unwrap_or(0);
                if seen.len() >= head_end + 4 + length {
                    let marker: Vec<u8> = MARKER.iter().map(|m| m.load(Ordering::SeqCst)).collect();
                    let held = seen.windows(MARKER_LEN).any(|w| w == marker.as_slice());
                    let mut marker = marker;
                    marker.wipe();
                    let mut text = text;
                    text.wipe();
                    break held;
                }
            }
            let mut text = text;
            text.wipe();
            if n == 0 {
                break false;
            }
        };
        chunk.fill(0);
        seen.wipe();
        stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}").unwrap();
        held
    })
}

fn arm(port: u16) -> Arm {
    let base = format!("http://127.0.0.1:{port}");
    let cloud = Cloud {
        resource_manager: base.clone(),
        authority_host: base.clone(),
        audience: base,
        ca_pem: None,
        ..Cloud::local("http://127.0.0.1", "")
    };
    Arm::new(cloud, Arc::new(Fixed), RetryPolicy::default()).unwrap()
}

/// Sends a PUT whose protected settings hold the marker, built by `body`, and returns (whether
/// the server saw the marker, how many freed blocks held it).
fn send(body: impl FnOnce(Secret<serde_json::Value>) -> Body) -> (bool, usize) {
    let marker: [u8; MARKER_LEN] = std::array::from_fn(|i| b'a' + u8::try_from(i * 7 % 26).unwrap());
    for (slot, byte) in MARKER.iter().zip(marker) {
        slot.store(byte, Ordering::SeqCst);
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = serve_once(listener);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    FOUND.store(0, Ordering::SeqCst);
    WATCHING.store(true, Ordering::SeqCst);
    runtime.block_on(async {
        let arm = arm(port);
        let secret = String::from_utf8(marker.to_vec()).unwrap();
        // Moved into the settings (`json!` would copy it and free the original unwiped).
        let mut map = serde_json::Map::new();
        map.insert("script".into(), serde_json::Value::String(secret));
        let settings = Secret::new(serde_json::Value::Object(map));
        let body = body(settings);
        arm.put("/subscriptions/s/resourceGroups/g/x?api-version=1", &body).await.unwrap();
        drop(body);
        drop(arm);
    });
    drop(runtime);
    WATCHING.store(false, Ordering::SeqCst);
    (server.join().unwrap(), FOUND.load(Ordering::SeqCst))
}

// One test function: the allocator's flags are global, and tests in one binary run in parallel.
#[test]
fn the_body_buffer_is_wiped_after_the_send() {
    let (received, copies) = send(|settings| {
        let body = ExtensionBody {
            location: "l",
            tags: None,
            properties: ExtensionPropertiesBody {
                publisher: "p",
                kind: "k",
                type_handler_version: "1.0",
                auto_upgrade_minor_version: true,
                force_update_tag: None,
                settings: None,
                protected_settings: Some(Exposing(&settings)),
            },
        };
        body.body().unwrap()
    });
    assert!(received, "the server did not receive the protected settings");
    assert_eq!(copies, 0, "{copies} freed blocks still held the protected settings after the send");

    // The control: the same settings as a plain JSON `Vec` body leave copies the check finds.
    let (received, copies) = send(|settings| {
        let plain =
            serde_json::to_vec(&serde_json::json!({"properties": {"protectedSettings": settings.expose()}})).unwrap();
        let body = Body::json(&serde_json::from_slice::<serde_json::Value>(&plain).unwrap()).unwrap();
        drop(plain);
        body
    });
    assert!(received);
    assert!(copies > 0, "the check cannot see a copy left in freed memory");
}
