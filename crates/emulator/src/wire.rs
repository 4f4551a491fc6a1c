//! The emulator's own HTTP request/response values and ARM's error envelope. Deliberately not
//! shared with the client crate: an independent reading of the wire format catches
//! misunderstandings on either side.

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// A request as the handlers see it.
#[derive(Debug)]
pub(crate) struct Req {
    pub method: String,
    /// The path, percent-decoded, without the query.
    pub path: String,
    /// Query parameters by lower-cased name.
    pub query: BTreeMap<String, String>,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl Req {
    pub(crate) fn query(&self, name: &str) -> Option<&str> {
        self.query.get(&name.to_ascii_lowercase()).map(String::as_str)
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str)
    }

    /// The body as JSON; an empty body is an error, as ARM answers it.
    pub(crate) fn json(&self) -> Result<Value, ArmError> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Err(ArmError::new(
                400,
                "InvalidRequestContent",
                "The request content was invalid and could not be deserialized: 'The request body is empty.'",
            ));
        }
        serde_json::from_slice(&self.body).map_err(|e| {
            ArmError::new(
                400,
                "InvalidRequestContent",
                format!("The request content was invalid and could not be deserialized: '{e}'."),
            )
        })
    }
}

/// A response: status, headers and an optional JSON body.
#[derive(Debug, Clone)]
pub(crate) struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Option<Value>,
}

impl Resp {
    pub(crate) fn json(status: u16, body: Value) -> Self {
        Self { status, headers: Vec::new(), body: Some(body) }
    }

    pub(crate) fn empty(status: u16) -> Self {
        Self { status, headers: Vec::new(), body: None }
    }

    #[must_use]
    pub(crate) fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }
}

/// ARM's error envelope: `{"error": {"code", "message", "target", "details"}}`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ArmError {
    pub status: u16,
    pub code: String,
    pub message: String,
    pub target: Option<String>,
    pub headers: Vec<(String, String)>,
}

impl ArmError {
    pub(crate) fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        Self { status, code: code.to_owned(), message: message.into(), target: None, headers: Vec::new() }
    }

    #[must_use]
    pub(crate) fn target(mut self, target: &str) -> Self {
        self.target = Some(target.to_owned());
        self
    }

    /// The `error` object, as it also appears inside operation status bodies.
    pub(crate) fn body(&self) -> Value {
        let mut error = json!({"code": self.code, "message": self.message});
        if let Some(target) = &self.target {
            error["target"] = json!(target);
        }
        error
    }

    pub(crate) fn into_resp(self) -> Resp {
        let body = json!({"error": self.body()});
        Resp { status: self.status, headers: self.headers, body: Some(body) }
    }
}

impl From<ArmError> for Resp {
    fn from(e: ArmError) -> Self {
        e.into_resp()
    }
}

/// Decodes `%XX` escapes; invalid escapes are kept as they are.
pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(b) = s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses a query string into lower-cased names and decoded values.
pub(crate) fn parse_query(query: &str) -> BTreeMap<String, String> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k).to_ascii_lowercase(), percent_decode(&v.replace('+', " ")))
        })
        .collect()
}

/// A fresh UUID (v4) from the system's secure random source.
pub(crate) fn uuid() -> String {
    use ring::rand::SecureRandom as _;
    let mut b = [0u8; 16];
    // The system random source does not fail on Linux; zeros would still be a valid UUID shape.
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = crate::guest::hex(&b);
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_and_path_decoding() {
        let q = parse_query("api-version=2024-11-01&$expand=instanceView&%24filter=name%20eq%20%27x%27");
        assert_eq!(q["api-version"], "2024-11-01");
        assert_eq!(q["$expand"], "instanceView");
        assert_eq!(q["$filter"], "name eq 'x'");
        assert_eq!(percent_decode("/a%20b/%zz"), "/a b/%zz");
        let id = uuid();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
    }
}
