//! `SecretBuf` leaves no copy of what it held in freed memory: an allocator that looks into
//! every block as it is freed finds the secret in a plain `Vec`'s outgrown and dropped blocks,
//! and in none of a `SecretBuf`'s.

// A global allocator is unsafe by nature; it only forwards to `System` and reads blocks it frees.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use azdock_core::secret::SecretBuf;

/// The bytes looked for; built at run time so the test binary's own data does not hold them.
const MARKER_LEN: usize = 16;
static MARKER: [AtomicUsize; MARKER_LEN] = [const { AtomicUsize::new(0) }; MARKER_LEN];
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
            let holds = block
                .windows(MARKER_LEN)
                .any(|w| w.iter().zip(&MARKER).all(|(b, m)| usize::from(*b) == m.load(Ordering::SeqCst)));
            if holds {
                FOUND.fetch_add(1, Ordering::SeqCst);
            }
        }
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Inspecting = Inspecting;

/// Writes the marker after enough filler to make the buffer grow three times, then drops it;
/// returns how many freed blocks held the marker.
fn freed_copies(mut write: impl FnMut(&[u8])) -> usize {
    let marker: [u8; MARKER_LEN] = std::array::from_fn(|i| b'A' + u8::try_from(i).unwrap_or(0) * 3 % 26);
    for (slot, byte) in MARKER.iter().zip(marker) {
        slot.store(usize::from(byte), Ordering::SeqCst);
    }
    FOUND.store(0, Ordering::SeqCst);
    WATCHING.store(true, Ordering::SeqCst);
    write(&marker);
    for _ in 0..3 {
        write(&[b'.'; 700]);
    }
    WATCHING.store(false, Ordering::SeqCst);
    FOUND.load(Ordering::SeqCst)
}

// One test function: the allocator's flags are global, and tests in one binary run in parallel.
#[test]
fn secret_buffers_wipe_what_they_outgrow_and_what_they_hold() {
    let mut plain = Some(Vec::with_capacity(32));
    let plain_copies = freed_copies(|bytes| {
        if let Some(v) = plain.as_mut() {
            v.extend_from_slice(bytes);
            if v.len() > 2000 {
                plain = None;
            }
        }
    });
    assert!(plain_copies >= 2, "a plain Vec leaves copies behind ({plain_copies}): the check can see them");

    let mut secret = Some(SecretBuf::with_capacity(32));
    let secret_copies = freed_copies(|bytes| {
        if let Some(buf) = secret.as_mut() {
            buf.write_all(bytes).unwrap();
            if buf.as_bytes().len() > 2000 {
                secret = None;
            }
        }
    });
    assert_eq!(secret_copies, 0, "a SecretBuf left its contents in freed memory");
}
