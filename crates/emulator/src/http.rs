//! The HTTPS front door: TLS accept loop, fault injection, authentication, throttling, and
//! dispatch to the token endpoints, discovery documents, ARM and the admin routes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::Shared;
use crate::faults::FaultKind;
use crate::throttle::{OpClass, Take};
use crate::wire::{ArmError, Req, Resp, parse_query, percent_decode, uuid};

const MAX_BODY: usize = 8 * 1024 * 1024;

pub(crate) async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((tcp, _)) = accepted else { continue };
                let _ = tcp.set_nodelay(true);
                let (acceptor, shared, shutdown) = (acceptor.clone(), shared.clone(), shutdown.clone());
                tokio::spawn(connection(tcp, acceptor, shared, shutdown));
            }
            _ = shutdown.changed() => break,
        }
    }
}

async fn connection(
    tcp: tokio::net::TcpStream,
    acceptor: TlsAcceptor,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let Ok(tls) = acceptor.accept(tcp).await else { return };
    let service = service_fn(move |req| handle(shared.clone(), req));
    let conn = hyper::server::conn::http1::Builder::new().keep_alive(true).serve_connection(TokioIo::new(tls), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = shutdown.changed() => conn.as_mut().graceful_shutdown(),
    }
}

/// Serves one request. An `Err` makes hyper drop the connection: that is how a `Drop` fault
/// looks to the client.
async fn handle(shared: Arc<Shared>, request: Request<Incoming>) -> Result<Response<Full<Bytes>>, std::io::Error> {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes().to_vec(),
        Err(_) => {
            return Ok(to_hyper(
                &ArmError::new(413, "RequestEntityTooLarge", "The request body is too large.").into_resp(),
                "",
            ));
        }
    };
    let req = Req {
        method: parts.method.as_str().to_owned(),
        path: percent_decode(parts.uri.path()),
        query: parse_query(parts.uri.query().unwrap_or_default()),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| (k.as_str().to_ascii_lowercase(), v.to_str().unwrap_or_default().to_owned()))
            .collect(),
        body,
    };
    let admin = req.path.starts_with("/_emulator");
    // The IMDS key is a secret path segment: the request log never shows it.
    let logged_path = match req.path.strip_prefix("/_imds/") {
        Some(rest) => format!("/_imds/[key]{}", rest.find('/').map_or("", |i| &rest[i..])),
        None => req.path.clone(),
    };
    if admin && !holds_admin_key(&shared, &req) {
        let resp = ArmError::new(
            401,
            "AuthenticationFailed",
            format!(
                "the local cloud's admin routes answer only its owner: send the key in `{}` as the {} header",
                shared.state_dir.join(crate::ADMIN_KEY_FILE).display(),
                crate::ADMIN_KEY_HEADER
            ),
        )
        .into_resp();
        lock(&shared).log(&req.method, &logged_path, resp.status, started.elapsed());
        return Ok(to_hyper(&resp, &request_id(&req)));
    }
    let fault = if admin { None } else { lock(&shared).faults.decide(&req.method, &req.path) };
    let mut op = crate::arm::OpFault::default();
    let mut retry_after = None;
    match fault {
        Some(FaultKind::Drop) => {
            lock(&shared).log(&req.method, &logged_path, 0, started.elapsed());
            return Err(std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "fault injection: dropped"));
        }
        Some(FaultKind::Latency { millis }) => tokio::time::sleep(Duration::from_millis(millis)).await,
        Some(FaultKind::Status { status }) => {
            let resp = fault_status(status);
            lock(&shared).log(&req.method, &logged_path, status, started.elapsed());
            return Ok(to_hyper(&resp, &request_id(&req)));
        }
        Some(FaultKind::LroFail { code, message }) => op.fail = Some(ArmError::new(200, &code, message)),
        Some(FaultKind::OperationTime { millis }) => op.time = Some(Duration::from_millis(millis)),
        Some(FaultKind::RetryAfter { seconds }) => retry_after = Some(seconds),
        Some(FaultKind::None) | None => {}
    }
    let mut resp = dispatch(&shared, &req, op);
    record(&shared, &req, &resp);
    if let Some(seconds) = retry_after {
        resp.headers.retain(|(k, _)| !k.eq_ignore_ascii_case("retry-after"));
        resp.headers.push(("Retry-After".into(), seconds.to_string()));
    }
    let rid = request_id(&req);
    let (jobs, seq) = {
        let mut inner = lock(&shared);
        inner.log(&req.method, &logged_path, resp.status, started.elapsed());
        // Whatever this request (or anything before it) changed is journaled in order; the
        // answer leaves only once all of it is on disk, so nothing acknowledged is lost.
        let seq = crate::persist::append(&shared, &mut inner);
        (std::mem::take(&mut inner.jobs), seq)
    };
    crate::run_jobs(&shared, jobs);
    if let Err(reason) = crate::persist::durable(&shared, seq).await {
        let resp = ArmError::new(
            500,
            "InternalServerError",
            format!("The local cloud could not save the change, so it is not acknowledged: {reason}"),
        )
        .into_resp();
        return Ok(to_hyper(&resp, &rid));
    }
    Ok(to_hyper(&resp, &rid))
}

/// Appends an ARM exchange to the recording, when one is kept ([`crate::Config::record`]).
fn record(shared: &Shared, req: &Req, resp: &crate::wire::Resp) {
    let Some(file) = &shared.record else { return };
    let arm = req.path.starts_with("/subscriptions") || req.path.starts_with("/providers");
    if !arm {
        return;
    }
    let line = serde_json::json!({
        "method": req.method, "path": req.path, "apiVersion": req.query("api-version"),
        "status": resp.status, "request": serde_json::from_slice::<serde_json::Value>(&req.body).ok(),
        "response": resp.body,
    });
    let mut file = file.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    // Best effort: a recording that cannot be written does not fail the request.
    let _ = std::io::Write::write_all(&mut *file, format!("{line}\n").as_bytes());
}

fn holds_admin_key(shared: &Shared, req: &Req) -> bool {
    let sent = req.header(crate::ADMIN_KEY_HEADER).unwrap_or_default();
    crate::auth::constant_time_eq(sent.as_bytes(), shared.admin_key.as_bytes())
}

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, crate::state::Inner> {
    shared.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn request_id(req: &Req) -> String {
    req.header("x-ms-client-request-id").map_or_else(uuid, str::to_owned)
}

/// The bodies ARM sends with transient failures.
fn fault_status(status: u16) -> Resp {
    let (code, message) = match status {
        429 => (
            "TooManyRequests",
            "The request is being throttled as the limit has been reached for operation type - Read_ObservationWindow. (fault injection)",
        ),
        503 => ("ServiceUnavailable", "The server (leased) is currently unavailable. (fault injection)"),
        408 => ("RequestTimeout", "The request timed out. (fault injection)"),
        502 => ("BadGateway", "The gateway did not receive a response in time. (fault injection)"),
        _ => ("InternalServerError", "Encountered internal server error. (fault injection)"),
    };
    let mut resp = ArmError::new(status, code, message).into_resp();
    if matches!(status, 429 | 503) {
        resp.headers.push(("Retry-After".into(), "1".into()));
    }
    resp
}

fn dispatch(shared: &Shared, req: &Req, op: crate::arm::OpFault) -> Resp {
    let segments: Vec<&str> = req.path.trim_matches('/').split('/').collect();
    // The person signs in through the public client and calls ARM like a principal.
    let mut principals = shared.principals();
    principals.push(crate::people::principal(crate::LOCAL_TENANT, &shared.subscriptions));
    let issuer = crate::auth::Issuer {
        key: &shared.key,
        base_url: &shared.base_url,
        principals: &principals,
        lifetime_secs: shared.token_lifetime_secs,
    };
    let mut inner = lock(shared);
    inner.settle(Instant::now());
    match (req.method.as_str(), segments.as_slice()) {
        (_, [first, ..]) if *first == "_emulator" => crate::admin::handle(&mut inner, shared, req, &segments[1..]),
        // Azure serves this document from a public blob, without a token.
        ("GET", ["cli", "vm", "aliases.json"]) => Resp::json(200, crate::catalog::alias_doc()),
        ("GET", ["metadata", "endpoints"]) => {
            Resp::json(200, crate::metadata_endpoints(&shared.base_url, req.query("api-version")))
        }
        ("GET", ["_imds", key, "metadata", "identity", "oauth2", "token"])
            if crate::auth::constant_time_eq(key.as_bytes(), shared.imds_key.as_bytes()) =>
        {
            issuer.managed_identity(req, None)
        }
        // IMDS without its key: every user of the machine reaches this port, and a token here
        // is a token for the whole cloud.
        (
            "GET",
            ["metadata", "identity", "oauth2", "token"] | ["_imds", _, "metadata", "identity", "oauth2", "token"],
        ) => Resp::json(
            401,
            json!({"error": "unauthorized", "error_description": "the local cloud's IMDS answers only at the endpoint `GET /_emulator/identity` gives its owner, and inside its VMs"}),
        ),
        ("GET", ["msi", "token"]) => issuer.managed_identity(req, Some(&shared.identity_header)),
        ("POST", [tenant, "oauth2", "v2.0", "devicecode"]) => {
            let timing = crate::people::Timing {
                code_lifetime: std::time::Duration::from_secs(shared.device_code_lifetime_secs),
                interval: std::time::Duration::from_secs(1),
            };
            inner.people.start(&issuer, tenant, &req.body, timing)
        }
        ("GET", ["devicelogin"]) => Resp::json(
            200,
            json!({"message": "The local cloud's sign-in codes are approved by its owner: `azdock local approve CODE`."}),
        ),
        ("POST", [tenant, "oauth2", "v2.0", "token"]) => {
            match inner.people.grant(&issuer, tenant, &req.body, &shared.subscriptions) {
                Some(resp) => resp,
                None => issuer.token(tenant, &req.body, true),
            }
        }
        ("POST", [tenant, "oauth2", "token"]) => issuer.token(tenant, &req.body, false),
        (
            "GET",
            [tenant, "v2.0", ".well-known", "openid-configuration"] | [tenant, ".well-known", "openid-configuration"],
        ) => Resp::json(200, crate::auth::openid_configuration(&shared.base_url, tenant)),
        _ => {
            let principal = match issuer.authenticate(req.header("authorization")) {
                Ok(p) => p.clone(),
                Err(e) => return e.into_resp(),
            };
            let subscription = match segments.as_slice() {
                [s, sub, ..] if s.eq_ignore_ascii_case("subscriptions") => (*sub).to_owned(),
                _ => principal.tenant_id.clone(),
            };
            let class = OpClass::from_method(&req.method);
            let remaining = match inner.throttle.take(&subscription, "local", class, Instant::now()) {
                Take::Allowed(n) => n,
                Take::Throttled { retry_after, message } => {
                    let secs = retry_after.as_secs_f64().ceil().max(1.0);
                    return ArmError::new(429, "TooManyRequests", message)
                        .into_resp()
                        .header("Retry-After", secs.to_string())
                        .header(class.header(), "0");
                }
            };
            crate::arm::handle(&mut inner, shared, &principal, req, op).header(class.header(), remaining.to_string())
        }
    }
}

fn to_hyper(resp: &Resp, request_id: &str) -> Response<Full<Bytes>> {
    let body = resp.body.as_ref().map(|b| serde_json::to_vec(b).unwrap_or_default()).unwrap_or_default();
    let mut builder = Response::builder().status(resp.status);
    if resp.body.is_some() {
        builder = builder.header("Content-Type", "application/json; charset=utf-8");
    }
    builder = builder
        .header("x-ms-request-id", request_id)
        .header("x-ms-correlation-request-id", request_id)
        .header("Cache-Control", "no-cache")
        .header("Strict-Transport-Security", "max-age=31536000; includeSubDomains");
    for (name, value) in &resp.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    builder.body(Full::new(Bytes::from(body))).unwrap_or_else(|_| {
        let mut fallback = Response::new(Full::new(Bytes::from_static(
            br#"{"error":{"code":"InternalServerError","message":"invalid response"}}"#,
        )));
        *fallback.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
        fallback
    })
}
