//! `Secret<T>`: a value that never prints, serialises only on purpose, and is wiped on drop.

use std::fmt;

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
/// memory can be found with one search.
#[derive(Clone, Default, PartialEq, Eq)]
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

/// Serialises a secret's value. Use it only with `serialize_with` on fields that must carry the
/// secret, such as protected settings on their way to ARM or across the plugin ABI.
pub fn expose<T, S>(secret: &Secret<T>, serializer: S) -> Result<S::Ok, S::Error>
where
    T: Wipe + Serialize,
    S: Serializer,
{
    secret.0.serialize(serializer)
}

/// [`expose`] for an optional secret.
// serde's `serialize_with` hands over `&Option<_>`; the signature is not ours to choose.
#[allow(clippy::ref_option)]
pub fn expose_option<T, S>(secret: &Option<Secret<T>>, serializer: S) -> Result<S::Ok, S::Error>
where
    T: Wipe + Serialize,
    S: Serializer,
{
    match secret {
        Some(secret) => serializer.serialize_some(&secret.0),
        None => serializer.serialize_none(),
    }
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

    #[test]
    fn deserialises_transparently() {
        let secret: Secret<String> = serde_json::from_str(r#""pw""#).unwrap();
        assert_eq!(secret.expose(), "pw");
    }
}
