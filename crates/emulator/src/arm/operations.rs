//! Long-running operations: their status and result routes, and the headers that point to them.

// A family of the parent module: it shares the parent's helpers, types and imports.
#[allow(clippy::wildcard_imports)]
use super::*;

/// Retry-After in whole seconds, rounded up, so clients never poll before the work is done.
pub(super) fn retry_after(d: Duration) -> String {
    d.as_secs_f64().ceil().to_string()
}

// ---------------------------------------------------------------------------------------------
// Long-running operations

pub(super) fn operation_status(inner: &mut Inner, id: &str, _loc: &str, monitor: bool) -> Result<Resp> {
    let now = Instant::now();
    let Some(op) = inner.ops.get(id) else {
        return Err(ArmError::new(404, "NotFound", format!("The operation '{id}' was not found.")));
    };
    if !op.done(now) {
        if monitor {
            return Ok(Resp::empty(202).header("Retry-After", retry_after(op.remaining(now))));
        }
        return Ok(Resp::json(200, json!({"startTime": op.started_at, "status": "InProgress", "name": id}))
            .header("Retry-After", retry_after(op.remaining(now))));
    }
    let end = crate::now_rfc3339();
    Ok(match &op.result {
        Ok(()) if monitor => Resp::empty(200),
        Ok(()) => {
            Resp::json(200, json!({"startTime": op.started_at, "endTime": end, "status": "Succeeded", "name": id}))
        }
        Err(e) if monitor => e.clone().into_resp(),
        Err(e) => Resp::json(
            200,
            json!({"startTime": op.started_at, "endTime": end, "status": "Failed", "error": e.body(), "name": id}),
        ),
    })
}

/// Resource-group deletes are polled through `Location`: 202 until done, then 200.
pub(super) fn operation_result(inner: &mut Inner, id: &str) -> Result<Resp> {
    let now = Instant::now();
    let Some(op) = inner.ops.get(id) else {
        return Err(ArmError::new(404, "NotFound", format!("The operation '{id}' was not found.")));
    };
    if op.done(now) {
        match &op.result {
            Ok(()) => Ok(Resp::empty(200)),
            Err(e) => Err(e.clone()),
        }
    } else {
        Ok(Resp::empty(202).header("Retry-After", retry_after(op.remaining(now))))
    }
}

/// The status URL of an operation, without query.
pub(super) fn op_url(ctx: &Ctx<'_>, sub: &str, ns: &str, location: &str, op: &str) -> String {
    format!("{}/subscriptions/{sub}/providers/{ns}/locations/{location}/operations/{op}", ctx.shared.base_url)
}

/// The response headers of an accepted long-running operation.
pub(super) fn lro_headers(resp: Resp, ctx: &Ctx<'_>, op_url: &str, duration: Duration, with_location: bool) -> Resp {
    let mut resp = resp
        .header("Azure-AsyncOperation", format!("{op_url}?api-version={}", ctx.api_version))
        .header("Retry-After", retry_after(duration));
    if with_location {
        resp = resp.header("Location", format!("{op_url}?monitor=true&api-version={}", ctx.api_version));
    }
    resp
}

// ---------------------------------------------------------------------------------------------
// Provider resources
