//! `Secret<T>`: a value that never prints, serialises only on purpose, and is wiped on drop.

use std::cell::Cell;
use std::fmt;
use std::io;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroize;

/// Values whose memory can be overwritten before it is freed.
///
/// Our own trait rather than `zeroize::Zeroize` so that `serde_json::Value` (protected settings)
/// can be wiped too: the orphan rule forbids implementing a foreign trait for a foreign type.
pub trait Wipe {
    /// Overwrites the secret bytes this value holds.
    fn wipe(&mut self);
}

impl Wipe for String {
    fn wipe(&mut self) {
        self.zeroize();
    }
}

impl Wipe for Vec<u8> {
    fn wipe(&mut self) {
        self.zeroize();
    }
}

impl Wipe for serde_json::Value {
    fn wipe(&mut self) {
        match self {
            serde_json::Value::String(s) => s.zeroize(),
            serde_json::Value::Array(items) => items.iter_mut().for_each(Wipe::wipe),
            // Keys are names such as "password", not secrets; only the values are wiped.
            serde_json::Value::Object(map) => map.values_mut().for_each(Wipe::wipe),
            serde_json::Value::Null | serde_json::Value::Bool(_) | serde_json::Value::Number(_) => {}
        }
        *self = serde_json::Value::Null;
    }
}

/// A secret: passwords, private keys, protected settings, tokens.
///
/// `Debug` and `Display` print `[redacted]`. It does not implement `Serialize`: a field that must
/// carry the secret across a boundary (the plugin ABI, an ARM request body) says so with
/// `#[serde(serialize_with = "azdock_core::secret::expose")]`, so every place a secret leaves
/// memory can be found with one search. It does not implement `Clone` either: a secret moves from
/// where it is read to where it is sent, and the one copy is wiped when it is dropped. What must
/// be shared (a cached token) is shared behind an `Arc`.
#[derive(Default, PartialEq, Eq)]
pub struct Secret<T: Wipe>(T);

impl<T: Wipe> Secret<T> {
    /// Wraps a value.
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// Borrows the secret value; every call site is a place the secret is used.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T: Wipe> From<T> for Secret<T> {
    fn from(value: T) -> Self {
        Self(value)
    }
}

impl<T: Wipe> Drop for Secret<T> {
    fn drop(&mut self) {
        self.0.wipe();
    }
}

impl<T: Wipe> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<T: Wipe> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<'de, T: Wipe + Deserialize<'de>> Deserialize<'de> for Secret<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        T::deserialize(deserializer).map(Secret)
    }
}

thread_local! {
    /// Set while [`to_redacted_json`] runs: [`expose`] then writes `[redacted]`. Serialisation is
    /// synchronous, so a thread-local flag covers exactly that one call.
    static REDACTING: Cell<bool> = const { Cell::new(false) };
}

/// Serialises a secret's value, owned or shared (`Secret<T>`, `Arc<Secret<T>>`). Use it only with
/// `serialize_with` on fields that must carry the secret, such as protected settings on their way
/// to ARM or across the plugin ABI.
pub fn expose<T, B, S>(secret: &B, serializer: S) -> Result<S::Ok, S::Error>
where
    T: Wipe + Serialize,
    B: std::borrow::Borrow<Secret<T>>,
    S: Serializer,
{
    if REDACTING.get() {
        return serializer.serialize_str(REDACTED);
    }
    secret.borrow().0.serialize(serializer)
}

/// [`expose`] for an optional secret, owned or borrowed (`Option<Secret<T>>`, `Option<&Secret<T>>`).
// serde's `serialize_with` hands over `&Option<_>`; the signature is not ours to choose.
#[allow(clippy::ref_option)]
pub fn expose_option<T, B, S>(secret: &Option<B>, serializer: S) -> Result<S::Ok, S::Error>
where
    T: Wipe + Serialize,
    B: std::borrow::Borrow<Secret<T>>,
    S: Serializer,
{
    match secret {
        Some(_) if REDACTING.get() => serializer.serialize_some(REDACTED),
        Some(secret) => serializer.serialize_some(&secret.borrow().0),
        None => serializer.serialize_none(),
    }
}

/// A borrowed secret that serialises as its value (`[redacted]` in [`to_redacted_json`]): for
/// request bodies that carry a secret they do not own. Like [`expose`], every use is a place a
/// secret leaves memory.
#[derive(Debug, Clone, Copy)]
pub struct Exposing<'a, T: Wipe>(pub &'a Secret<T>);

impl<T: Wipe + Serialize> Serialize for Exposing<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        expose(self.0, serializer)
    }
}

/// What a secret's place says in logs.
pub const REDACTED: &str = "[redacted]";

/// A byte buffer for serialised secrets (a request body, a line to the plugin process).
///
/// It is wiped when dropped, and when it must grow it moves its bytes into a larger allocation
/// and wipes the old one first — a plain `Vec` would leave each outgrown copy in freed memory.
#[derive(Default)]
pub struct SecretBuf(Vec<u8>);

impl SecretBuf {
    /// An empty buffer with room for `capacity` bytes before it first grows.
    pub fn with_capacity(capacity: usize) -> Self {
        Self(Vec::with_capacity(capacity))
    }

    /// The bytes written so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The capacity of the current allocation (the wiped length when it is dropped).
    pub fn capacity(&self) -> usize {
        self.0.capacity()
    }

    /// The text written, moved (not copied) into a [`Secret`]; `None` (and the bytes wiped)
    /// when it is not UTF-8.
    pub fn into_secret_string(mut self) -> Option<Secret<String>> {
        match String::from_utf8(std::mem::take(&mut self.0)) {
            Ok(text) => Some(Secret::new(text)),
            Err(e) => {
                e.into_bytes().zeroize();
                None
            }
        }
    }
}

impl AsRef<[u8]> for SecretBuf {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl io::Write for SecretBuf {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let needed = self.0.len() + bytes.len();
        if needed > self.0.capacity() {
            let mut grown = Vec::with_capacity(needed.max(self.0.capacity() * 2).max(256));
            grown.extend_from_slice(&self.0);
            // The old allocation is wiped (its whole capacity) before it is freed.
            self.0.zeroize();
            self.0 = grown;
        }
        self.0.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for SecretBuf {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for SecretBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBuf({} bytes)", self.0.len())
    }
}

/// `value` as JSON in a [`SecretBuf`]: the secrets it carries are written straight into the
/// buffer that is sent and wiped, never into an intermediate `String` or `Value`.
pub fn to_json<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<SecretBuf> {
    let mut buf = SecretBuf::with_capacity(1024);
    serde_json::to_writer(&mut buf, value)?;
    Ok(buf)
}

/// `value` as JSON for a log line: every secret it carries reads `[redacted]`.
pub fn to_redacted_json<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<String> {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            REDACTING.set(self.0);
        }
    }
    // Restored even if serialisation panics, so no later serialisation of this thread is
    // redacted by mistake.
    let _reset = Reset(REDACTING.replace(true));
    serde_json::to_string(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_are_redacted() {
        let secret = Secret::new(String::from("hunter2"));
        assert_eq!(format!("{secret:?}"), "[redacted]");
        assert_eq!(format!("{secret}"), "[redacted]");
        assert_eq!(secret.expose(), "hunter2");
    }

    #[test]
    fn serialising_needs_the_explicit_helper() {
        #[derive(Serialize)]
        struct Body {
            #[serde(serialize_with = "expose")]
            password: Secret<String>,
        }
        let body = Body { password: Secret::new("s3cret!".into()) };
        assert_eq!(serde_json::to_string(&body).unwrap(), r#"{"password":"s3cret!"}"#);
    }

    #[test]
    fn wipe_clears_nested_json_strings() {
        let mut value = serde_json::json!({"a": ["x", {"b": "secret"}], "n": 3});
        value.wipe();
        assert_eq!(value, serde_json::Value::Null);
        let mut s = String::from("abc");
        s.wipe();
        assert!(s.is_empty());
    }

    #[derive(Serialize)]
    struct Login {
        user: &'static str,
        #[serde(serialize_with = "expose")]
        password: Secret<String>,
        #[serde(serialize_with = "expose_option")]
        key: Option<Secret<String>>,
    }

    fn login() -> Login {
        Login { user: "azureuser", password: Secret::new("s3cret!".into()), key: Some(Secret::new("k3y".into())) }
    }

    #[test]
    fn redacted_json_hides_every_secret_and_only_while_it_runs() {
        let text = to_redacted_json(&login()).unwrap();
        assert_eq!(text, r#"{"user":"azureuser","password":"[redacted]","key":"[redacted]"}"#);
        // The flag is off again: the real serialisation carries the secrets.
        let sent = to_json(&login()).unwrap();
        assert_eq!(sent.as_bytes(), br#"{"user":"azureuser","password":"s3cret!","key":"k3y"}"#);
        let none = Login { key: None, ..login() };
        assert_eq!(to_redacted_json(&none).unwrap(), r#"{"user":"azureuser","password":"[redacted]","key":null}"#);
    }

    #[test]
    fn a_secret_buffer_grows_only_when_full_and_then_by_itself() {
        use std::io::Write as _;
        // Filling it exactly moves nothing.
        let mut exact = SecretBuf::with_capacity(4);
        exact.write_all(b"abcd").unwrap();
        assert_eq!(exact.capacity(), 4);
        // A first write larger than the buffer is a growth of its own (to at least 256 bytes),
        // not `Vec`'s, which would free the old allocation unwiped.
        let mut first = SecretBuf::with_capacity(4);
        first.write_all(b"abcdefgh").unwrap();
        assert!(first.capacity() >= 256, "{}", first.capacity());
        assert_eq!(first.as_bytes(), b"abcdefgh");
    }

    #[test]
    fn a_secret_buffer_grows_keeping_its_bytes() {
        use std::io::Write as _;
        let mut buf = SecretBuf::with_capacity(4);
        buf.write_all(b"abc").unwrap();
        assert_eq!(buf.capacity(), 4);
        buf.write_all(b"defgh").unwrap();
        assert_eq!(buf.as_bytes(), b"abcdefgh");
        assert!(buf.capacity() >= 256, "grows at least to 256: {}", buf.capacity());
        let large = vec![b'x'; 600];
        buf.write_all(&large).unwrap();
        assert_eq!(buf.as_bytes().len(), 608);
        assert!(buf.capacity() >= 608);
        assert_eq!(format!("{buf:?}"), "SecretBuf(608 bytes)");
        assert_eq!(buf.as_ref(), buf.as_bytes());
        let text = buf.into_secret_string().unwrap();
        assert!(text.expose().starts_with("abcdefghxx") && text.expose().len() == 608);
        let mut invalid = SecretBuf::default();
        invalid.write_all(&[0xff, 0xfe]).unwrap();
        assert!(invalid.into_secret_string().is_none());
    }

    #[test]
    fn deserialises_transparently() {
        let secret: Secret<String> = serde_json::from_str(r#""pw""#).unwrap();
        assert_eq!(secret.expose(), "pw");
    }
}
