//! The HTTP pipeline: one pooled rustls client, a request id per call, retries with jittered
//! exponential backoff for requests that are safe to repeat, `Retry-After` honoured, pacing as
//! ARM's rate-limit headers approach zero, redacted debug logs, and long-running operations
//! followed to their end.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::body::Body;
use crate::cloud::Cloud;
use crate::credential::Credential;
use crate::error::{ArmErrorBody, AzureError};

/// How hard to try.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts per request, the first included.
    pub attempts: u32,
    /// First backoff; each retry doubles it, with ±20% jitter, up to `max_delay`.
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// Timeout of one HTTP exchange.
    pub request_timeout: Duration,
    /// Overall deadline of one call, retries and long-running operation included.
    pub deadline: Duration,
}

impl RetryPolicy {
    /// The default, with the first backoff taken from `AZDOCK_RETRY_BASE_DELAY_MS` when set (a
    /// script that would rather fail fast than wait out a long outage sets it low).
    pub fn from_env() -> Self {
        let mut policy = Self::default();
        if let Some(ms) = std::env::var("AZDOCK_RETRY_BASE_DELAY_MS").ok().and_then(|v| v.trim().parse::<u64>().ok()) {
            policy.base_delay = Duration::from_millis(ms);
        }
        policy
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 6,
            base_delay: Duration::from_millis(800),
            max_delay: Duration::from_secs(30),
            request_timeout: Duration::from_secs(60),
            deadline: Duration::from_secs(3600),
        }
    }
}

/// An answer from ARM.
#[derive(Debug, Clone)]
pub struct ArmResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

/// The client's view of one of ARM's token buckets, shared by every call of this client.
#[derive(Debug)]
struct Bucket {
    /// Requests ARM will still take; unknown until the first answer says.
    tokens: Option<f64>,
    updated: Instant,
    /// A request is out to learn the budget; the others wait for its answer.
    probing: bool,
}

/// ARM's refill rates (requests per second) since 2024; the client assumes them, and ARM's
/// `x-ms-ratelimit-remaining-*` answers correct its count.
fn refill_rate(bucket: &str) -> f64 {
    if bucket == "reads" { 25.0 } else { 10.0 }
}

/// One bucket per subscription and kind of request, as ARM counts them.
#[derive(Debug, Default)]
struct Budget {
    buckets: HashMap<(String, &'static str), Bucket>,
}

impl Budget {
    fn bucket(&mut self, key: &(String, &'static str)) -> &mut Bucket {
        self.buckets.entry(key.clone()).or_insert(Bucket { tokens: None, updated: Instant::now(), probing: false })
    }
}

/// The subscription a request is counted against (empty for tenant-level calls).
fn subscription_of(url: &str) -> String {
    let lower = url.to_ascii_lowercase();
    lower.find("/subscriptions/").map_or_else(String::new, |at| {
        lower[at + "/subscriptions/".len()..].split(['/', '?']).next().unwrap_or_default().to_owned()
    })
}

/// The ARM client.
#[derive(Debug, Clone)]
pub struct Arm {
    http: reqwest::Client,
    cloud: Cloud,
    credential: Arc<dyn Credential>,
    policy: RetryPolicy,
    budget: Arc<Mutex<Budget>>,
}

fn transport(url: &str, e: &reqwest::Error) -> AzureError {
    AzureError::Transport { url: url.to_owned(), detail: e.to_string() }
}

/// Secret fields are replaced before a body reaches a log.
const SECRET_KEYS: &[&str] = &[
    "protectedsettings",
    "adminpassword",
    "customdata",
    "script",
    "password",
    "client_secret",
    "access_token",
    "secret",
];

/// A copy of `value` with every secret field replaced by `[redacted]`.
pub fn redact(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let hidden = SECRET_KEYS.contains(&k.to_ascii_lowercase().as_str());
                    (k.clone(), if hidden { Value::String("[redacted]".into()) } else { redact(v) })
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact).collect()),
        other => other.clone(),
    }
}

fn bucket(method: &Method) -> &'static str {
    match *method {
        Method::GET | Method::HEAD => "reads",
        Method::DELETE => "deletes",
        _ => "writes",
    }
}

/// A fraction in [0.8, 1.2) from the system's random source, to spread retries apart.
fn jitter() -> f64 {
    use ring::rand::SecureRandom as _;
    let mut b = [0u8; 2];
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    jitter_from(u16::from_le_bytes(b))
}

/// A factor in [0.8, 1.2) from a random number: 65,536 steps, the last short of 1.2.
fn jitter_from(random: u16) -> f64 {
    0.8 + f64::from(random) / 65_536.0 * 0.4
}

/// Headers as the debug log shows them: credentials (`Authorization`, cookies, any
/// `x-ms-…-token`) replaced by `[redacted]`.
fn logged_headers(headers: &HeaderMap) -> String {
    let secret = |name: &str| {
        matches!(name, "authorization" | "proxy-authorization" | "cookie" | "set-cookie")
            || name.starts_with("x-ms-") && name.contains("token")
    };
    let mut out: Vec<String> = headers
        .iter()
        .map(|(name, value)| {
            let name = name.as_str().to_ascii_lowercase();
            let value =
                if secret(&name) { "[redacted]".to_owned() } else { value.to_str().unwrap_or("[binary]").to_owned() };
            format!("{name}: {value}")
        })
        .collect();
    out.sort();
    out.join("; ")
}

/// A URL's path and query, without the host: how `--verbose` names a call.
fn path_of(url: &str) -> &str {
    url.strip_prefix("https://").and_then(|rest| rest.find('/').map(|i| &rest[i..])).unwrap_or(url)
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|s| Duration::from_secs_f64(s.max(0.0)))
}

/// When to poll a long-running operation next. The first poll comes when the operation's
/// `Retry-After` says (at once for 0: a quick operation is done by then), else after a second;
/// every later one waits at least [`Polls::FLOOR`], longer when `Retry-After` says so, and backs
/// off (doubling up to [`Polls::CEILING`]) when it says nothing — never back to back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Polls {
    wait: Duration,
    backoff: Duration,
}

impl Polls {
    const FLOOR: Duration = Duration::from_secs(1);
    const CEILING: Duration = Duration::from_secs(16);

    fn new(first: &HeaderMap) -> Self {
        Self { wait: retry_after(first).unwrap_or(Self::FLOOR), backoff: Self::FLOOR }
    }

    fn next(&mut self, answer: &HeaderMap) {
        self.wait = match retry_after(answer) {
            Some(asked) => asked.max(Self::FLOOR),
            None => {
                self.backoff = (self.backoff * 2).min(Self::CEILING);
                self.backoff
            }
        };
    }
}

impl Arm {
    /// A client for `cloud`, signing in with `credential`.
    pub fn new(cloud: Cloud, credential: Arc<dyn Credential>, policy: RetryPolicy) -> Result<Self, AzureError> {
        let http = cloud.http_client(policy.request_timeout)?;
        Ok(Self { http, cloud, credential, policy, budget: Arc::default() })
    }

    pub fn cloud(&self) -> &Cloud {
        &self.cloud
    }

    /// The HTTP client (for the cloud's other endpoints, such as Entra's).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The credential requests are signed with.
    pub fn credential(&self) -> &Arc<dyn Credential> {
        &self.credential
    }

    /// Takes one request from the client's copy of ARM's bucket, waiting for a refill when it
    /// is empty, so that a fan-out slows down before ARM has to answer 429.
    async fn acquire(&self, key: &(String, &'static str)) {
        let bucket = key.1;
        loop {
            let wait = {
                let mut budget = self.budget.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let b = budget.bucket(key);
                match b.tokens {
                    None if !b.probing => {
                        b.probing = true;
                        return;
                    }
                    None => Duration::from_millis(20),
                    Some(tokens) => {
                        let now = Instant::now();
                        let tokens =
                            tokens + now.saturating_duration_since(b.updated).as_secs_f64() * refill_rate(bucket);
                        b.updated = now;
                        if tokens >= 1.0 {
                            b.tokens = Some(tokens - 1.0);
                            return;
                        }
                        b.tokens = Some(tokens);
                        Duration::from_secs_f64((1.0 - tokens) / refill_rate(bucket))
                    }
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// Records what ARM said about the bucket: its remaining count, or that it is empty.
    fn note_budget(&self, key: &(String, &'static str), headers: Option<&HeaderMap>, throttled: bool) {
        let header = format!("x-ms-ratelimit-remaining-subscription-{}", key.1);
        let remaining = headers
            .and_then(|h| h.get(header.as_str()))
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<f64>().ok());
        let mut budget = self.budget.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let b = budget.bucket(key);
        b.probing = false;
        let reported = if throttled { Some(0.0) } else { remaining };
        if let Some(reported) = reported {
            // Requests still in flight are not in ARM's count yet; keep the lower figure.
            b.tokens = Some(b.tokens.map_or(reported, |t| t.min(reported)));
            b.updated = Instant::now();
        }
    }

    /// Sends one request (path and query relative to ARM, or an absolute URL on ARM), retrying
    /// what is safe to retry. Returns the first answer that is not a transient failure; ARM
    /// errors become [`AzureError::Arm`].
    pub async fn send(&self, method: Method, path: &str, body: Option<&Body>) -> Result<ArmResponse, AzureError> {
        let idempotent = matches!(method, Method::GET | Method::HEAD | Method::PUT | Method::DELETE);
        self.send_as(method, path, body, idempotent).await
    }

    /// Like [`Arm::send`], for a POST whose repetition is harmless (`start` on a started VM
    /// does nothing): it is retried after a dropped connection or a 5xx like a PUT.
    pub async fn send_idempotent(
        &self,
        method: Method,
        path: &str,
        body: Option<&Body>,
    ) -> Result<ArmResponse, AzureError> {
        self.send_as(method, path, body, true).await
    }

    async fn send_as(
        &self,
        method: Method,
        path: &str,
        body: Option<&Body>,
        idempotent: bool,
    ) -> Result<ArmResponse, AzureError> {
        let url = if path.starts_with("https://") {
            path.to_owned()
        } else {
            format!("{}{path}", self.cloud.resource_manager)
        };
        let bucket = (subscription_of(&url), bucket(&method));
        let request_id = crate::uuid();
        let started = Instant::now();
        let mut attempt = 0;
        let mut signed_in_again = false;
        loop {
            attempt += 1;
            self.acquire(&bucket).await;
            let token = self.credential.token(&self.http, &self.cloud.scope()).await?;
            let mut req = self
                .http
                .request(method.clone(), &url)
                .bearer_auth(token.token.expose())
                .header("x-ms-client-request-id", &request_id);
            if let Some(b) = body {
                req = req.header(reqwest::header::CONTENT_TYPE, "application/json").body(b.bytes());
            }
            let request = req.build().map_err(|e| transport(&url, &e))?;
            let logged = body.map_or(&Value::Null, Body::logged);
            tracing::debug!(request_id, %method, url, headers = %logged_headers(request.headers()), body = %logged, "request");
            let sent = Instant::now();
            let result = self.http.execute(request).await;
            let (failure, wait) = match result {
                Ok(resp) => {
                    let status = resp.status();
                    let headers = resp.headers().clone();
                    self.note_budget(&bucket, Some(&headers), status == StatusCode::TOO_MANY_REQUESTS);
                    let text = resp.text().await.map_err(|e| transport(&url, &e))?;
                    let millis = sent.elapsed().as_millis();
                    // `--verbose`: each call, as a user reads it.
                    tracing::info!("{method} {} {} {millis} ms", path_of(&url), status.as_u16());
                    tracing::debug!(
                        request_id,
                        status = status.as_u16(),
                        millis,
                        headers = %logged_headers(&headers),
                        "response"
                    );
                    let body = if text.trim().is_empty() {
                        Value::Null
                    } else {
                        serde_json::from_str(&text).unwrap_or(Value::String(text))
                    };
                    if status.is_success() || status == StatusCode::NOT_FOUND && method == Method::HEAD {
                        return Ok(ArmResponse { status, headers, body });
                    }
                    let error = arm_error(status, &body);
                    // A refused token (a kept one revoked, or from a local cloud since reset):
                    // ARM processed nothing, so sign in afresh and send once more.
                    if status == StatusCode::UNAUTHORIZED && !signed_in_again {
                        signed_in_again = true;
                        self.credential.forget(&self.cloud.scope()).await;
                        tracing::debug!(request_id, "the token was refused; signing in again");
                        continue;
                    }
                    // ARM did not process a 429 or a 503 with Retry-After: safe for any method.
                    let not_processed = status == StatusCode::TOO_MANY_REQUESTS
                        || status == StatusCode::SERVICE_UNAVAILABLE && headers.contains_key("retry-after");
                    let transient = matches!(status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504);
                    if !(transient && (idempotent || not_processed)) {
                        return Err(error);
                    }
                    (error, retry_after(&headers))
                }
                Err(e) => {
                    self.note_budget(&bucket, None, false);
                    let error = transport(&url, &e);
                    // The request may have reached ARM: only repeat what is idempotent.
                    if !idempotent {
                        return Err(error);
                    }
                    (error, None)
                }
            };
            let backoff = self
                .policy
                .base_delay
                .saturating_mul(1 << (attempt - 1).min(10))
                .min(self.policy.max_delay)
                .mul_f64(jitter());
            let wait = wait.unwrap_or(backoff);
            if attempt >= self.policy.attempts || started.elapsed() + wait > self.policy.deadline {
                return Err(AzureError::Exhausted {
                    attempts: attempt,
                    elapsed: started.elapsed(),
                    last: Box::new(failure),
                });
            }
            tracing::debug!(request_id, attempt, wait_ms = wait.as_millis(), error = %failure, "retrying");
            tokio::time::sleep(wait).await;
        }
    }

    /// GET a resource.
    pub async fn get(&self, path: &str) -> Result<Value, AzureError> {
        Ok(self.send(Method::GET, path, None).await?.body)
    }

    /// PUT a resource, follow its long-running operation, and GET the result.
    pub async fn put(&self, path: &str, body: &Body) -> Result<Value, AzureError> {
        let resp = self.send(Method::PUT, path, Some(body)).await?;
        if self.follow(&resp).await? { self.get(path).await } else { Ok(resp.body) }
    }

    /// DELETE a resource and wait until it is gone.
    pub async fn delete(&self, path: &str) -> Result<(), AzureError> {
        let resp = self.send(Method::DELETE, path, None).await?;
        self.follow(&resp).await.map(|_| ())
    }

    /// POST an action and wait for its operation.
    pub async fn post(&self, path: &str, body: Option<&Body>) -> Result<Value, AzureError> {
        let resp = self.send(Method::POST, path, body).await?;
        self.follow(&resp).await?;
        Ok(resp.body)
    }

    /// POST an action that is safe to repeat (see [`Arm::send_idempotent`]) and wait for it.
    pub async fn post_idempotent(&self, path: &str, body: Option<&Body>) -> Result<Value, AzureError> {
        let resp = self.send_idempotent(Method::POST, path, body).await?;
        self.follow(&resp).await?;
        Ok(resp.body)
    }

    /// Follows a long-running operation (`Azure-AsyncOperation` first, else `Location`) to its
    /// end; `false` when the response was final already.
    pub async fn follow(&self, resp: &ArmResponse) -> Result<bool, AzureError> {
        let header = |name: &str| resp.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let started = Instant::now();
        let mut polls = Polls::new(&resp.headers);
        if let Some(url) = header("azure-asyncoperation") {
            loop {
                self.sleep_within(started, polls.wait).await?;
                let status = self.send(Method::GET, &url, None).await?;
                // ARM's statuses are case-insensitive: `Succeeded` and `succeeded` both end it.
                let state = status.body["status"].as_str().unwrap_or("InProgress").to_ascii_lowercase();
                match state.as_str() {
                    "succeeded" => return Ok(true),
                    "failed" | "canceled" | "cancelled" => {
                        let error = serde_json::from_value(status.body["error"].clone()).unwrap_or(ArmErrorBody {
                            code: status.body["status"].as_str().unwrap_or("Failed").to_owned(),
                            message: "the operation ended without an error description".into(),
                            target: None,
                            details: Vec::new(),
                        });
                        return Err(AzureError::Arm { status: 200, error });
                    }
                    _ => polls.next(&status.headers),
                }
            }
        }
        if resp.status == StatusCode::ACCEPTED
            && let Some(url) = header("location")
        {
            loop {
                self.sleep_within(started, polls.wait).await?;
                let polled = self.send(Method::GET, &url, None).await?;
                if polled.status != StatusCode::ACCEPTED {
                    return Ok(true);
                }
                polls.next(&polled.headers);
            }
        }
        Ok(false)
    }

    async fn sleep_within(&self, started: Instant, wait: Duration) -> Result<(), AzureError> {
        if started.elapsed() + wait > self.policy.deadline {
            return Err(AzureError::Timeout(self.policy.deadline));
        }
        tokio::time::sleep(wait).await;
        Ok(())
    }
}

/// ARM's error envelope as a typed error (or a generic one when the body is not ARM's).
fn arm_error(status: StatusCode, body: &Value) -> AzureError {
    let error = serde_json::from_value::<ArmErrorBody>(body["error"].clone()).unwrap_or_else(|_| ArmErrorBody {
        code: status.canonical_reason().unwrap_or("HttpError").replace(' ', ""),
        message: format!("HTTP {status}: {}", body.as_str().map_or_else(|| body.to_string(), str::to_owned)),
        target: None,
        details: Vec::new(),
    });
    AzureError::Arm { status: status.as_u16(), error }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn headers(retry_after: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(v) = retry_after {
            h.insert("retry-after", v.parse().unwrap());
        }
        h
    }

    #[test]
    fn polls_wait_as_asked_but_never_back_to_back() {
        let s = Duration::from_secs;
        let mut p = Polls::new(&headers(Some("0")));
        assert_eq!(p.wait, Duration::ZERO, "a quick operation is polled at once");
        p.next(&headers(Some("0")));
        assert_eq!(p.wait, s(1), "then never sooner than the floor");
        p.next(&headers(Some("5")));
        assert_eq!(p.wait, s(5), "a longer Retry-After is honoured");
        p.next(&headers(Some("0.25")));
        assert_eq!(p.wait, s(1));
        // Without one: backing off, up to the ceiling.
        let waits: Vec<u64> = (0..6)
            .map(|_| {
                p.next(&headers(None));
                p.wait.as_secs()
            })
            .collect();
        assert_eq!(waits, [2, 4, 8, 16, 16, 16]);
        assert_eq!(Polls::new(&headers(None)).wait, s(1));
        assert_eq!(Polls::new(&headers(Some("7"))).wait, s(7));
        assert_eq!(Polls::new(&headers(Some("soon"))).wait, s(1));
    }

    #[test]
    fn logged_headers_hide_credentials() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("Authorization", "Bearer eyJ0eXAi.secret"),
            ("Cookie", "session=abc"),
            ("Set-Cookie", "x=y"),
            ("Proxy-Authorization", "Basic Zm9v"),
            ("x-ms-client-request-id", "rid-1"),
            ("x-ms-authorization-auxiliary-token", "aux-s3cret"),
            ("x-ms-ratelimit-remaining-subscription-reads", "11999"),
        ] {
            h.insert(reqwest::header::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        let out = logged_headers(&h);
        for secret in ["eyJ0eXAi", "session=abc", "x=y", "Zm9v", "aux-s3cret"] {
            assert!(!out.contains(secret), "{secret} in {out}");
        }
        assert!(out.contains("authorization: [redacted]") && out.contains("x-ms-client-request-id: rid-1"), "{out}");
        assert!(out.contains("x-ms-ratelimit-remaining-subscription-reads: 11999"), "{out}");
        assert_eq!(path_of("https://127.0.0.1:8443/subscriptions/s?api-version=1"), "/subscriptions/s?api-version=1");
        assert_eq!(path_of("https://management.azure.com"), "https://management.azure.com");
    }

    #[test]
    fn redaction_hides_secrets_at_any_depth() {
        let body = json!({"properties": {"osProfile": {"adminPassword": "p", "customData": "c", "adminUsername": "u"},
                          "protectedSettings": {"script": "s"}, "settings": {"port": 2376}}});
        let out = redact(&body).to_string();
        assert!(!out.contains("\"p\"") && !out.contains("\"c\"") && !out.contains("\"s\""), "{out}");
        assert!(out.contains("\"u\"") && out.contains("2376"));
    }

    #[test]
    fn requests_count_against_their_subscription() {
        assert_eq!(subscription_of("https://m/subscriptions/AB-1/resourceGroups/g?x"), "ab-1");
        assert_eq!(subscription_of("https://m/subscriptions?api-version=1"), "");
        assert_eq!(subscription_of("https://m/tenants"), "");
    }

    #[test]
    fn jitter_stays_in_range() {
        // The extremes: the largest random number once gave 1.2000000000000002.
        assert!((jitter_from(0) - 0.8).abs() < f64::EPSILON);
        assert!((0.8..1.2).contains(&jitter_from(u16::MAX)), "{}", jitter_from(u16::MAX));
        assert!((jitter_from(32_768) - 1.0).abs() < 1e-9);
        let draws: Vec<f64> = (0..100).map(|_| jitter()).collect();
        assert!(draws.iter().all(|j| (0.8..1.2).contains(j)), "{draws:?}");
        // Random, so spread: a hundred equal draws would mean no jitter at all.
        assert!(draws.iter().any(|j| (j - draws[0]).abs() > f64::EPSILON), "{draws:?}");
    }
}
