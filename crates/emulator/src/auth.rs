//! Entra ID, as much as ARM clients need: client-credentials tokens from the v2 and v1 token
//! endpoints for configured service principals, signed (HS256) and checked on every ARM call.

// AADSTS error numbers are identifiers users search for; digit separators would hide them.
#![allow(clippy::unreadable_literal)]

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::wire::{ArmError, Resp, uuid};

/// A service principal the emulator knows, with the subscriptions it has a role on.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ServicePrincipal {
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: String,
    pub object_id: String,
    pub subscriptions: Vec<String>,
    /// Certificates (PEM) registered for sign-in with a signed client assertion.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<String>,
    /// Federated identity credentials: tokens from another issuer (a Kubernetes cluster, a CI
    /// system) that this principal accepts as client assertions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub federated: Vec<FederatedCredential>,
}

/// A federated identity credential, as Entra stores it, plus the issuer's signing certificate:
/// Entra fetches an issuer's keys from its OIDC discovery document, which a local cloud cannot
/// reach, so the key is registered with the credential instead.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct FederatedCredential {
    pub issuer: String,
    pub subject: String,
    #[serde(default = "default_federated_audiences")]
    pub audiences: Vec<String>,
    /// The issuer's signing certificate (PEM).
    pub certificate: String,
}

fn default_federated_audiences() -> Vec<String> {
    vec!["api://AzureADTokenExchange".into()]
}

/// The claims azdock's emulator puts in a token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Claims {
    pub aud: String,
    pub iss: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub appid: String,
    pub oid: String,
    pub tid: String,
    pub sub: String,
}

/// Signs claims as a compact JWT (HS256).
pub(crate) fn sign(key: &[u8], claims: &Claims) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
    let signing_input = format!("{header}.{payload}");
    let tag = ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key), signing_input.as_bytes());
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

/// Checks a token's signature and returns its claims (expiry and audience are the caller's).
pub(crate) fn verify(key: &[u8], token: &str) -> Option<Claims> {
    let (signing_input, signature) = token.rsplit_once('.')?;
    let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
    ring::hmac::verify(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key), signing_input.as_bytes(), &signature)
        .ok()?;
    let (_, payload) = signing_input.split_once('.')?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
}

/// Entra's error body: `{"error", "error_description", "error_codes", …}`.
pub(crate) fn entra_error(status: u16, error: &str, code: u32, description: &str) -> Resp {
    let now = crate::now_rfc3339();
    let trace = uuid();
    let correlation = uuid();
    Resp::json(
        status,
        json!({
            "error": error,
            "error_description": format!("AADSTS{code}: {description}\r\nTrace ID: {trace}\r\nCorrelation ID: {correlation}\r\nTimestamp: {now}"),
            "error_codes": [code],
            "timestamp": now,
            "trace_id": trace,
            "correlation_id": correlation,
            "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
        }),
    )
}

/// Parses an `application/x-www-form-urlencoded` body.
pub(crate) fn form(body: &[u8]) -> BTreeMap<String, String> {
    crate::wire::parse_query(&String::from_utf8_lossy(body)).into_iter().collect()
}

/// What the token endpoints need from the emulator.
pub(crate) struct Issuer<'a> {
    pub key: &'a [u8],
    pub base_url: &'a str,
    pub principals: &'a [ServicePrincipal],
    pub lifetime_secs: i64,
}

impl Issuer<'_> {
    /// The audiences ARM accepts: the local ARM endpoint, with or without the trailing slash.
    pub(crate) fn audiences(&self) -> [String; 2] {
        [self.base_url.to_owned(), format!("{}/", self.base_url)]
    }

    /// `POST /{tenant}/oauth2/v2.0/token` (`v2`) or `POST /{tenant}/oauth2/token` (v1).
    // Entra's checks, one branch each, in the order Entra reports them.
    #[allow(clippy::too_many_lines)]
    pub(crate) fn token(&self, tenant: &str, body: &[u8], v2: bool) -> Resp {
        let form = form(body);
        let get = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
        if get("grant_type") != "client_credentials" {
            return entra_error(
                400,
                "unsupported_grant_type",
                70003,
                "The app requested an unsupported grant type. azdock's local cloud supports client_credentials.",
            );
        }
        if !self.principals.iter().any(|p| p.tenant_id.eq_ignore_ascii_case(tenant)) {
            return entra_error(
                400,
                "invalid_request",
                90002,
                &format!(
                    "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
                ),
            );
        }
        let client_id = get("client_id");
        if client_id.eq_ignore_ascii_case(crate::people::PUBLIC_CLIENT_ID) {
            return entra_error(
                401,
                "invalid_client",
                700025,
                "Client is public so neither 'client_assertion' nor 'client_secret' should be presented.",
            );
        }
        let Some(principal) = self
            .principals
            .iter()
            .find(|p| p.tenant_id.eq_ignore_ascii_case(tenant) && p.client_id.eq_ignore_ascii_case(client_id))
        else {
            return entra_error(
                400,
                "unauthorized_client",
                700016,
                &format!(
                    "Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."
                ),
            );
        };
        if let Some(assertion) = form.get("client_assertion") {
            if get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
                return entra_error(
                    400,
                    "invalid_request",
                    50027,
                    "Invalid JWT token: client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer.",
                );
            }
            let endpoint = if v2 {
                format!("{}/{tenant}/oauth2/v2.0/token", self.base_url)
            } else {
                format!("{}/{tenant}/oauth2/token", self.base_url)
            };
            if let Err(resp) = check_assertion(principal, assertion, &endpoint) {
                return resp;
            }
        } else {
            let secret = get("client_secret");
            if secret.is_empty() {
                return entra_error(
                    401,
                    "invalid_client",
                    7000218,
                    "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
                );
            }
            if !constant_time_eq(secret.as_bytes(), principal.client_secret.as_bytes()) {
                return entra_error(
                    401,
                    "invalid_client",
                    7000215,
                    "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app.",
                );
            }
        }
        let resource = if v2 {
            let scope = get("scope");
            if scope.is_empty() {
                return entra_error(
                    400,
                    "invalid_request",
                    900144,
                    "The request body must contain the following parameter: 'scope'.",
                );
            }
            let Some(resource) = scope.split(' ').find_map(|s| s.strip_suffix("/.default")) else {
                return entra_error(
                    400,
                    "invalid_scope",
                    1002012,
                    &format!(
                        "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
                    ),
                );
            };
            resource.to_owned()
        } else {
            get("resource").to_owned()
        };
        if !self.audiences().iter().any(|a| a.trim_end_matches('/') == resource.trim_end_matches('/')) {
            return entra_error(
                400,
                "invalid_resource",
                500011,
                &format!(
                    "The resource principal named {resource} was not found in the tenant named {tenant}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant."
                ),
            );
        }
        let (token, claims) = self.mint(principal, &resource);
        if v2 {
            Resp::json(
                200,
                json!({"token_type": "Bearer", "expires_in": self.lifetime_secs, "ext_expires_in": self.lifetime_secs, "access_token": token}),
            )
        } else {
            Resp::json(
                200,
                json!({
                    "token_type": "Bearer",
                    "expires_in": self.lifetime_secs.to_string(),
                    "ext_expires_in": self.lifetime_secs.to_string(),
                    "expires_on": claims.exp.to_string(),
                    "not_before": claims.nbf.to_string(),
                    "resource": resource,
                    "access_token": token,
                }),
            )
        }
    }

    /// A signed token for `principal` to call `resource`.
    pub(crate) fn mint(&self, principal: &ServicePrincipal, resource: &str) -> (String, Claims) {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let claims = Claims {
            aud: resource.to_owned(),
            iss: format!("{}/{}/", self.base_url, principal.tenant_id),
            iat: now,
            nbf: now - 300,
            exp: now + self.lifetime_secs,
            appid: principal.client_id.clone(),
            oid: principal.object_id.clone(),
            tid: principal.tenant_id.clone(),
            sub: principal.object_id.clone(),
        };
        (sign(self.key, &claims), claims)
    }

    /// Managed identity: IMDS (`GET /metadata/identity/oauth2/token`, header `Metadata: true`)
    /// and App Service's `IDENTITY_ENDPOINT` (`GET /msi/token`, header `X-IDENTITY-HEADER`).
    /// The identity is the first principal, or the one `client_id` names.
    pub(crate) fn managed_identity(&self, req: &crate::wire::Req, app_service_header: Option<&str>) -> Resp {
        let bad = |status: u16, error: &str, description: &str| {
            Resp::json(status, json!({"error": error, "error_description": description}))
        };
        match app_service_header {
            None if req.header("metadata") != Some("true") => {
                return bad(400, "invalid_request", "Required metadata header not specified");
            }
            Some(expected)
                if !constant_time_eq(
                    req.header("x-identity-header").unwrap_or_default().as_bytes(),
                    expected.as_bytes(),
                ) =>
            {
                return bad(401, "unauthorized", "The X-IDENTITY-HEADER is missing or wrong");
            }
            _ => {}
        }
        let resource = req.query("resource").unwrap_or_default();
        if !self.audiences().iter().any(|a| a.trim_end_matches('/') == resource.trim_end_matches('/')) {
            return bad(
                400,
                "invalid_resource",
                &format!("AADSTS500011: The resource principal named {resource} was not found in the tenant."),
            );
        }
        let wanted = req.query("client_id").or_else(|| req.query("clientid"));
        let principal = match wanted {
            Some(id) => self.principals.iter().find(|p| p.client_id.eq_ignore_ascii_case(id)),
            None => self.principals.first(),
        };
        let Some(principal) = principal else {
            return bad(400, "invalid_request", "Identity not found");
        };
        let (token, claims) = self.mint(principal, resource);
        // IMDS sends numbers as strings; App Service (2019-08-01) sends expires_on as a number.
        let expires_on = if app_service_header.is_some() { json!(claims.exp) } else { json!(claims.exp.to_string()) };
        Resp::json(
            200,
            json!({"access_token": token, "client_id": principal.client_id, "expires_in": self.lifetime_secs.to_string(),
                   "expires_on": expires_on, "not_before": claims.nbf.to_string(), "resource": resource, "token_type": "Bearer"}),
        )
    }

    /// Checks the `Authorization` header of an ARM call; the principal it names on success.
    pub(crate) fn authenticate(&self, authorization: Option<&str>) -> Result<&ServicePrincipal, ArmError> {
        let challenge = |error: &str, description: &str| {
            format!(
                "Bearer authorization_uri=\"{}/common\", error=\"{error}\", error_description=\"{description}\"",
                self.base_url
            )
        };
        let unauthorized = |code: &str, message: String, error: &str| {
            let mut e = ArmError::new(401, code, message.clone());
            e.headers.push(("WWW-Authenticate".into(), challenge(error, &message)));
            e
        };
        let Some(header) = authorization else {
            return Err(unauthorized(
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing.".into(),
                "invalid_token",
            ));
        };
        let Some(token) = header.strip_prefix("Bearer ").or_else(|| header.strip_prefix("bearer ")) else {
            return Err(unauthorized(
                "AuthenticationFailedInvalidHeader",
                "Authentication failed. The 'Authorization' header is provided in an invalid format.".into(),
                "invalid_token",
            ));
        };
        let Some(claims) = verify(self.key, token.trim()) else {
            return Err(unauthorized(
                "InvalidAuthenticationToken",
                "The access token is invalid.".into(),
                "invalid_token",
            ));
        };
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        if claims.exp <= now {
            let at = |t: i64| time::OffsetDateTime::from_unix_timestamp(t).map(crate::rfc3339).unwrap_or_default();
            return Err(unauthorized(
                "ExpiredAuthenticationToken",
                format!(
                    "The access token expiry UTC time '{}' is earlier than current UTC time '{}'.",
                    at(claims.exp),
                    at(now)
                ),
                "invalid_token",
            ));
        }
        if !self.audiences().contains(&claims.aud) {
            return Err(unauthorized(
                "InvalidAuthenticationTokenAudience",
                format!(
                    "The access token has been obtained for wrong audience or resource '{}'. It should exactly match with one of the allowed audiences '{}'.",
                    claims.aud,
                    self.audiences().join("','")
                ),
                "invalid_token",
            ));
        }
        self.principals.iter().find(|p| p.client_id == claims.appid && p.tenant_id == claims.tid).ok_or_else(|| {
            unauthorized(
                "InvalidAuthenticationToken",
                "The access token is from an unknown application.".into(),
                "invalid_token",
            )
        })
    }
}

/// Checks a certificate-signed client assertion as Entra does: RS256 with `x5t` (SHA-1
/// thumbprint) or PS256 with `x5t#S256`, signed by a certificate registered for the principal,
/// for this token endpoint, issued by and about the client, and within its validity window.
fn check_assertion(principal: &ServicePrincipal, assertion: &str, endpoint: &str) -> Result<(), Resp> {
    let invalid = |code: u32, message: &str| entra_error(401, "invalid_client", code, message);
    let mut parts = assertion.split('.');
    let (Some(head), Some(body), Some(sig), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(entra_error(
            400,
            "invalid_request",
            50027,
            "Invalid JWT token. The token is not in JWS compact format.",
        ));
    };
    let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).ok().and_then(|b| serde_json::from_slice::<Value>(&b).ok());
    let (Some(header), Some(claims), Ok(signature)) = (decode(head), decode(body), URL_SAFE_NO_PAD.decode(sig)) else {
        return Err(entra_error(
            400,
            "invalid_request",
            50027,
            "Invalid JWT token. The token is not valid base64url JSON.",
        ));
    };
    let (algorithm, thumb_field): (&'static dyn ring::signature::VerificationAlgorithm, &str) =
        match header["alg"].as_str() {
            Some("RS256") => (&ring::signature::RSA_PKCS1_2048_8192_SHA256, "x5t"),
            Some("PS256") => (&ring::signature::RSA_PSS_2048_8192_SHA256, "x5t#S256"),
            other => {
                return Err(invalid(
                    5_002_730,
                    &format!(
                        "Invalid JWT token. Unsupported signing algorithm {}; use RS256 or PS256.",
                        other.unwrap_or("none")
                    ),
                ));
            }
        };
    // A token from another issuer: a federated credential must name its issuer and subject.
    if claims["iss"].as_str() != Some(principal.client_id.as_str()) && claims["iss"].is_string() {
        return check_federated(principal, &claims, algorithm, &format!("{head}.{body}"), &signature);
    }
    let wanted = header[thumb_field]
        .as_str()
        .or_else(|| header["x5t#S256"].as_str())
        .or_else(|| header["x5t"].as_str())
        .unwrap_or_default();
    let key = principal.certificates.iter().find_map(|pem| {
        let (_, parsed) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).ok()?;
        let sha1 =
            URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &parsed.contents));
        let sha256 = URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, &parsed.contents));
        if wanted != sha1 && wanted != sha256 {
            return None;
        }
        public_key(pem)
    });
    let Some(key) = key else {
        return Err(invalid(
            700_027,
            &format!(
                "Client assertion failed signature validation. (Reason - The key was not found., Thumbprint of key used by client: '{wanted}'). Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '{}'.",
                principal.client_id
            ),
        ));
    };
    let signing_input = format!("{head}.{body}");
    if ring::signature::UnparsedPublicKey::new(algorithm, &key).verify(signing_input.as_bytes(), &signature).is_err() {
        return Err(invalid(
            700_027,
            "Client assertion failed signature validation. (Reason - The provided signature value did not match the expected signature value.)",
        ));
    }
    if claims["aud"].as_str() != Some(endpoint) {
        return Err(invalid(
            700_021,
            &format!(
                "Client assertion audience claim does not match Realm issuer. Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials. Expected audience: {endpoint}."
            ),
        ));
    }
    if claims["iss"].as_str() != Some(principal.client_id.as_str())
        || claims["sub"].as_str() != Some(principal.client_id.as_str())
    {
        return Err(invalid(700_023, "Client assertion issuer and subject must both be the client id."));
    }
    within_time(&claims).map_err(|()| invalid(700_024, "Client assertion is not within its valid time range."))
}

/// A client assertion issued by someone else (workload identity federation): a federated
/// credential of the principal must name its issuer and subject and accept its audience, and the
/// issuer's registered key must have signed it.
fn check_federated(
    principal: &ServicePrincipal,
    claims: &Value,
    algorithm: &'static dyn ring::signature::VerificationAlgorithm,
    signing_input: &str,
    signature: &[u8],
) -> Result<(), Resp> {
    let invalid = |code: u32, message: &str| entra_error(401, "invalid_client", code, message);
    let issuer = claims["iss"].as_str().unwrap_or_default();
    let subject = claims["sub"].as_str().unwrap_or_default();
    let Some(fic) = principal.federated.iter().find(|f| f.issuer == issuer && f.subject == subject) else {
        return Err(invalid(
            70_021,
            &format!(
                "No matching federated identity record found for presented assertion. Assertion Issuer: '{issuer}'. Assertion Subject: '{subject}'."
            ),
        ));
    };
    let key = public_key(&fic.certificate).unwrap_or_default();
    if ring::signature::UnparsedPublicKey::new(algorithm, &key).verify(signing_input.as_bytes(), signature).is_err() {
        return Err(invalid(
            50_013,
            "Assertion failed signature validation. (Reason - The key was not found or the signature did not match.)",
        ));
    }
    let audience_ok = match &claims["aud"] {
        Value::String(a) => fic.audiences.contains(a),
        Value::Array(list) => list.iter().any(|a| a.as_str().is_some_and(|a| fic.audiences.iter().any(|f| f == a))),
        _ => false,
    };
    if !audience_ok {
        return Err(invalid(
            700_212,
            &format!(
                "No matching federated identity record found for presented assertion audience '{}'.",
                claims["aud"]
            ),
        ));
    }
    within_time(claims).map_err(|()| invalid(700_024, "Client assertion is not within its valid time range."))
}

/// The public key of a PEM certificate, as ring verifies with it.
fn public_key(pem: &str) -> Option<Vec<u8>> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).ok()?;
    let cert = pem.parse_x509().ok()?;
    Some(cert.public_key().subject_public_key.data.to_vec())
}

/// An assertion's `nbf`..`exp` covers now (with Entra's five minutes of clock skew).
fn within_time(claims: &Value) -> Result<(), ()> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let (nbf, exp) = (claims["nbf"].as_i64().unwrap_or(0), claims["exp"].as_i64().unwrap_or(0));
    if exp <= now || nbf > now + 300 { Err(()) } else { Ok(()) }
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `403 AuthorizationFailed`, as ARM answers a principal without a role on the scope.
pub(crate) fn authorization_failed(principal: &ServicePrincipal, action: &str, scope: &str) -> ArmError {
    ArmError::new(
        403,
        "AuthorizationFailed",
        format!(
            "The client '{}' with object id '{}' does not have authorization to perform action '{action}' over scope '{scope}' or the scope is invalid. If access was recently granted, please refresh your credentials.",
            principal.client_id, principal.object_id
        ),
    )
}

/// Entra's OpenID configuration document for a tenant (v2).
pub(crate) fn openid_configuration(base_url: &str, tenant: &str) -> Value {
    json!({
        "token_endpoint": format!("{base_url}/{tenant}/oauth2/v2.0/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": format!("{base_url}/{tenant}/discovery/v2.0/keys"),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": format!("{base_url}/{tenant}/v2.0"),
        "request_uri_parameter_supported": false,
        "userinfo_endpoint": format!("{base_url}/oidc/userinfo"),
        "authorization_endpoint": format!("{base_url}/{tenant}/oauth2/v2.0/authorize"),
        "device_authorization_endpoint": format!("{base_url}/{tenant}/oauth2/v2.0/devicecode"),
        "http_logout_supported": true,
        "frontchannel_logout_supported": true,
        "end_session_endpoint": format!("{base_url}/{tenant}/oauth2/v2.0/logout"),
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "tid", "oid"],
        "tenant_region_scope": "WW",
        "cloud_instance_name": "azdock.local",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_tampering_is_caught() {
        let claims = Claims {
            aud: "https://127.0.0.1:1/".into(),
            iss: "i".into(),
            iat: 1,
            nbf: 1,
            exp: 2,
            appid: "a".into(),
            oid: "o".into(),
            tid: "t".into(),
            sub: "o".into(),
        };
        let token = sign(b"key", &claims);
        assert_eq!(verify(b"key", &token).unwrap().appid, "a");
        assert!(verify(b"other", &token).is_none());
        let (head, _) = token.rsplit_once('.').unwrap();
        assert!(verify(b"key", &format!("{head}.AAAA")).is_none());
    }
}
