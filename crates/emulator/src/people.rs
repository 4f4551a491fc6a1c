//! A person of the local cloud and how they sign in: Entra's device-code flow (RFC 8628: a
//! code to enter elsewhere, the client polling the token endpoint) and refresh tokens. The
//! person's "browser" is the owner: a code is approved through the admin routes (`azdock local
//! approve CODE`), never by whoever reaches the port — that would hand a token for the cloud to
//! any user of the machine.

// AADSTS error numbers are identifiers users search for; digit separators would hide them.
#![allow(clippy::unreadable_literal)]

use std::time::{Duration, Instant};

use serde_json::json;

use crate::auth::{Claims, Issuer, ServicePrincipal, entra_error, form};
use crate::wire::{Resp, uuid};

/// The Azure CLI's public client: what Microsoft's tools (and azure-identity's interactive
/// credentials) sign people in with, and what the local cloud accepts for a person.
pub const PUBLIC_CLIENT_ID: &str = "04b07795-8ddb-461a-bbee-02f9e1bf7b46";
/// The local cloud's person.
pub const LOCAL_USER: &str = "user@azdock.local";
const LOCAL_USER_OBJECT_ID: &str = "0b1ec700-0000-4000-8000-0000000000b2";
/// What a refresh token is for: never ARM (it is not an access token).
const REFRESH_AUDIENCE: &str = "urn:azdock:refresh-token";
/// Refresh tokens last 90 days, as Entra's do.
const REFRESH_LIFETIME_SECS: i64 = 90 * 24 * 3600;

const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// The person as ARM sees their calls: a caller with the subscriptions the person may use,
/// signed in through the public client.
pub(crate) fn principal(tenant: &str, subscriptions: &[String]) -> ServicePrincipal {
    ServicePrincipal {
        tenant_id: tenant.to_owned(),
        client_id: PUBLIC_CLIENT_ID.to_owned(),
        // A public client has no secret; the token endpoint refuses client credentials for it.
        client_secret: String::new(),
        object_id: LOCAL_USER_OBJECT_ID.to_owned(),
        subscriptions: subscriptions.to_vec(),
        certificates: Vec::new(),
        federated: Vec::new(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CodeState {
    Pending,
    Approved,
    Declined,
    /// Tokens were handed out: the code cannot be redeemed twice.
    Redeemed,
}

#[derive(Debug)]
struct DeviceCode {
    /// What the client polls with.
    secret: String,
    user_code: String,
    expires: Instant,
    interval: Duration,
    last_poll: Option<Instant>,
    state: CodeState,
}

/// Codes waiting for the person, and the refresh tokens handed out (by id) and revoked.
#[derive(Debug, Default)]
pub(crate) struct People {
    codes: Vec<DeviceCode>,
    issued: Vec<String>,
    revoked: std::collections::BTreeSet<String>,
}

/// How long codes live and how often clients may poll.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    pub code_lifetime: Duration,
    pub interval: Duration,
}

fn user_code() -> String {
    const LETTERS: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";
    let bytes = crate::random_bytes(8);
    let pick = |b: u8| char::from(LETTERS[usize::from(b) % LETTERS.len()]);
    let (a, b): (String, String) =
        (bytes[..4].iter().map(|b| pick(*b)).collect(), bytes[4..].iter().map(|b| pick(*b)).collect());
    format!("{a}-{b}")
}

impl People {
    /// `POST /{tenant}/oauth2/v2.0/devicecode`.
    pub(crate) fn start(&mut self, issuer: &Issuer<'_>, tenant: &str, body: &[u8], timing: Timing) -> Resp {
        let form = form(body);
        let get = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
        if let Err(resp) = check_client(get("client_id"), tenant) {
            return resp;
        }
        if let Err(resp) = check_scope(get("scope"), issuer) {
            return resp;
        }
        let now = Instant::now();
        self.codes.retain(|c| c.expires > now);
        let code = DeviceCode {
            secret: uuid(),
            user_code: user_code(),
            expires: now + timing.code_lifetime,
            interval: timing.interval,
            last_poll: None,
            state: CodeState::Pending,
        };
        let verification_uri = format!("{}/devicelogin", issuer.base_url);
        let answer = json!({
            "user_code": code.user_code,
            "device_code": code.secret,
            "verification_uri": verification_uri,
            "expires_in": timing.code_lifetime.as_secs(),
            "interval": timing.interval.as_secs(),
            "message": format!("To sign in to azdock's local cloud as {LOCAL_USER}, run `azdock local approve {}` as the local cloud's owner (or open {verification_uri}).", code.user_code),
        });
        self.codes.push(code);
        Resp::json(200, answer)
    }

    /// The owner approves (or declines) a code; whether there was such a code waiting.
    pub(crate) fn decide(&mut self, user_code: &str, approve: bool) -> bool {
        let now = Instant::now();
        match self.codes.iter_mut().find(|c| c.user_code.eq_ignore_ascii_case(user_code) && c.expires > now) {
            Some(code) if code.state == CodeState::Pending => {
                code.state = if approve { CodeState::Approved } else { CodeState::Declined };
                true
            }
            _ => false,
        }
    }

    /// Every refresh token issued so far stops working (a password change, an admin's revoke).
    pub(crate) fn revoke_sessions(&mut self) {
        self.revoked.extend(self.issued.drain(..));
    }

    /// The token endpoint's device-code and refresh-token grants; `None` for other grants.
    pub(crate) fn grant(
        &mut self,
        issuer: &Issuer<'_>,
        tenant: &str,
        body: &[u8],
        subscriptions: &[String],
    ) -> Option<Resp> {
        let form = form(body);
        let get = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
        let grant = get("grant_type");
        if grant != DEVICE_CODE_GRANT && grant != "refresh_token" {
            return None;
        }
        if let Err(resp) = check_client(get("client_id"), tenant) {
            return Some(resp);
        }
        let home = crate::LOCAL_TENANT;
        if grant == "refresh_token"
            && let Err(resp) = check_scope(get("scope"), issuer)
        {
            return Some(resp);
        }
        Some(if grant == DEVICE_CODE_GRANT {
            self.redeem(issuer, get("device_code"), home, subscriptions)
        } else {
            self.refresh(issuer, get("refresh_token"), home, subscriptions)
        })
    }

    fn redeem(&mut self, issuer: &Issuer<'_>, device_code: &str, tenant: &str, subscriptions: &[String]) -> Resp {
        let now = Instant::now();
        let Some(code) =
            self.codes.iter_mut().find(|c| crate::auth::constant_time_eq(c.secret.as_bytes(), device_code.as_bytes()))
        else {
            return entra_error(400, "bad_verification_code", 70019, "Verification code expired or not found.");
        };
        if code.expires <= now {
            return entra_error(
                400,
                "expired_token",
                70020,
                "The provided value for the input parameter 'device_code' is not valid. This device code has expired.",
            );
        }
        // Polling faster than the interval: RFC 8628 says slow down (by five seconds).
        let too_soon = code.last_poll.is_some_and(|last| now.duration_since(last) < code.interval);
        code.last_poll = Some(now);
        if too_soon && code.state == CodeState::Pending {
            code.interval += Duration::from_secs(5);
            return entra_error(
                400,
                "slow_down",
                70016,
                "The client is polling too fast; wait the interval between requests.",
            );
        }
        match code.state {
            CodeState::Pending => entra_error(
                400,
                "authorization_pending",
                70016,
                "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
            ),
            CodeState::Declined => entra_error(400, "authorization_declined", 70015, "The user declined the sign-in."),
            CodeState::Redeemed => entra_error(
                400,
                "invalid_grant",
                70000,
                "The provided value for the input parameter 'device_code' is not valid. It was already redeemed.",
            ),
            CodeState::Approved => {
                code.state = CodeState::Redeemed;
                self.tokens(issuer, tenant, subscriptions)
            }
        }
    }

    fn refresh(&mut self, issuer: &Issuer<'_>, refresh_token: &str, tenant: &str, subscriptions: &[String]) -> Resp {
        let Some(claims) = crate::auth::verify(issuer.key, refresh_token).filter(|c| c.aud == REFRESH_AUDIENCE) else {
            return entra_error(
                400,
                "invalid_grant",
                9002313,
                "Invalid request. Request is malformed or invalid: the refresh token is not one this cloud issued.",
            );
        };
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        if claims.exp <= now {
            return entra_error(
                400,
                "invalid_grant",
                700082,
                "The refresh token has expired due to inactivity. The token was issued on a date more than 90 days ago.",
            );
        }
        if self.revoked.contains(&claims.sub) {
            return entra_error(
                400,
                "invalid_grant",
                50173,
                "The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have changed or reset their password.",
            );
        }
        self.tokens(issuer, tenant, subscriptions)
    }

    /// An access token for ARM and a refresh token, as Entra answers a person's sign-in.
    fn tokens(&mut self, issuer: &Issuer<'_>, tenant: &str, subscriptions: &[String]) -> Resp {
        let person = principal(tenant, subscriptions);
        let (access, _) = issuer.mint(&person, issuer.base_url);
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let id = uuid();
        let refresh = crate::auth::sign(
            issuer.key,
            &Claims {
                aud: REFRESH_AUDIENCE.into(),
                iss: format!("{}/{tenant}/", issuer.base_url),
                iat: now,
                nbf: now,
                exp: now + REFRESH_LIFETIME_SECS,
                appid: PUBLIC_CLIENT_ID.into(),
                oid: LOCAL_USER_OBJECT_ID.into(),
                tid: tenant.into(),
                sub: id.clone(),
            },
        );
        self.issued.push(id);
        Resp::json(
            200,
            json!({
                "token_type": "Bearer",
                "scope": format!("{}/user_impersonation", issuer.base_url),
                "expires_in": issuer.lifetime_secs,
                "ext_expires_in": issuer.lifetime_secs,
                "access_token": access,
                "refresh_token": refresh,
            }),
        )
    }
}

/// A person's scope names the cloud's resource (`<resource>/.default` or
/// `<resource>/user_impersonation`), as Entra requires.
fn check_scope(scope: &str, issuer: &Issuer<'_>) -> Result<(), Resp> {
    if scope.is_empty() {
        return Err(entra_error(
            400,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'scope'.",
        ));
    }
    let resource = issuer.base_url.trim_end_matches('/');
    let names_resource = scope.split(' ').any(|s| {
        let s = s.trim_end_matches("/.default").trim_end_matches("/user_impersonation");
        s.trim_end_matches('/') == resource
    });
    if names_resource {
        Ok(())
    } else {
        Err(entra_error(
            400,
            "invalid_scope",
            70011,
            &format!(
                "The provided value for the input parameter 'scope' is not valid. The scope '{scope}' does not name the resource {resource}."
            ),
        ))
    }
}

/// The public client, at a tenant the person belongs to (`organizations` and `common` stand for
/// their home tenant, as in Entra).
fn check_client(client_id: &str, tenant: &str) -> Result<(), Resp> {
    let known = ["organizations", "common", crate::LOCAL_TENANT].iter().any(|t| t.eq_ignore_ascii_case(tenant));
    if !known {
        return Err(entra_error(
            400,
            "invalid_request",
            90002,
            &format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
            ),
        ));
    }
    if !client_id.eq_ignore_ascii_case(PUBLIC_CLIENT_ID) {
        return Err(entra_error(
            400,
            "unauthorized_client",
            700016,
            &format!(
                "Application with identifier '{client_id}' was not found in the directory '{tenant}'. A person signs in to the local cloud through the public client {PUBLIC_CLIENT_ID}."
            ),
        ));
    }
    Ok(())
}
