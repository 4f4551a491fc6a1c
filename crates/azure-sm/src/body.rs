//! Request bodies: JSON written once into a [`SecretBuf`](azdock_core::secret::SecretBuf) and sent from there, so a password or
//! protected setting in a body never sits in an intermediate `String` or `Value`; the buffer is
//! wiped when the last send is done with it. What `--debug` logs is a second rendering with
//! every secret redacted.

use azdock_core::secret;
use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;

use crate::error::AzureError;

/// A JSON request body, ready to be sent (and sent again on a retry: clones share the buffer).
/// `Debug` shows the redacted rendering, never the bytes.
#[derive(Clone)]
pub struct Body {
    bytes: Bytes,
    /// The body as the debug log shows it; made only when debug logging is on.
    logged: Option<Value>,
}

impl Body {
    /// `value` as a request body.
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<Self, AzureError> {
        let buf = secret::to_json(value).map_err(unserialisable)?;
        let logged = if tracing::enabled!(tracing::Level::DEBUG) {
            let text = secret::to_redacted_json(value).map_err(unserialisable)?;
            // Fields that hold secrets in a plain `Value` are hidden by name as well.
            Some(crate::redact(&serde_json::from_str(&text).unwrap_or(Value::String(text))))
        } else {
            None
        };
        Ok(Self { bytes: Bytes::from_owner(buf), logged })
    }

    /// The bytes to send; the buffer behind them is wiped once every clone is dropped.
    pub(crate) fn bytes(&self) -> Bytes {
        self.bytes.clone()
    }

    /// What the debug log shows.
    pub(crate) fn logged(&self) -> &Value {
        self.logged.as_ref().unwrap_or(&Value::Null)
    }
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Body").field("bytes", &self.bytes.len()).field("logged", &self.logged).finish()
    }
}

#[allow(clippy::needless_pass_by_value)] // `map_err` hands the error over by value.
fn unserialisable(e: serde_json::Error) -> AzureError {
    AzureError::Protocol { url: String::new(), detail: format!("a request body could not be written: {e}") }
}

#[cfg(test)]
mod tests {
    use azdock_core::Secret;

    use super::*;

    #[derive(Serialize)]
    struct Login {
        user: &'static str,
        #[serde(serialize_with = "azdock_core::secret::expose")]
        password: Secret<String>,
    }

    #[test]
    fn the_body_carries_the_secret_and_shares_one_buffer() {
        let body = Body::json(&Login { user: "u", password: Secret::new("pw-1".into()) }).unwrap();
        assert_eq!(&body.bytes()[..], br#"{"user":"u","password":"pw-1"}"#);
        let again = body.clone();
        assert_eq!(again.bytes().as_ptr(), body.bytes().as_ptr(), "a retry sends the same buffer, not a copy");
        let debug = format!("{body:?}");
        assert!(!debug.contains("pw-1") && debug.contains("Body") && debug.contains("30"), "{debug}");
    }

    #[test]
    fn the_debug_log_shows_the_body_with_its_secrets_redacted() {
        let subscriber = tracing_subscriber::fmt().with_max_level(tracing::Level::DEBUG).finish();
        let body = tracing::subscriber::with_default(subscriber, || {
            Body::json(&Login { user: "u", password: Secret::new("pw-1".into()) }).unwrap()
        });
        assert_eq!(body.logged(), &serde_json::json!({"user": "u", "password": "[redacted]"}));
        // Without debug logging nothing is rendered for the log.
        let quiet = Body::json(&Login { user: "u", password: Secret::new("pw-1".into()) }).unwrap();
        assert_eq!(quiet.logged(), &Value::Null);
    }
}
