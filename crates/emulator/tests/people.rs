//! A person signs in to the local cloud as to Entra: the device-code flow (pending, slow down,
//! approval by the owner, expiry, decline) and refresh tokens (rotation, revocation), over real
//! HTTPS with a plain client.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use azdock_emulator::{Config, Emulator, LOCAL_SUBSCRIPTION, PUBLIC_CLIENT_ID};
use azdock_tests::arm::Arm;
use reqwest::Method;
use serde_json::Value;

async fn start(tweak: impl FnOnce(&mut Config)) -> (Emulator, Arm, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::for_tests(dir.path());
    tweak(&mut config);
    let emulator = Emulator::start(config).await.unwrap();
    let arm = Arm::anonymous(emulator.base_url(), emulator.ca_pem().as_bytes()).with_admin_key(emulator.admin_key());
    (emulator, arm, dir)
}

async fn post_form(arm: &Arm, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let resp = arm.http.post(arm.url(path)).form(form).send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

async fn device_code(arm: &Arm, tenant: &str, client: &str) -> (u16, Value) {
    let scope = format!("{}/.default offline_access", arm.url(""));
    post_form(arm, &format!("/{tenant}/oauth2/v2.0/devicecode"), &[("client_id", client), ("scope", &scope)]).await
}

async fn poll(arm: &Arm, device_code: &str) -> (u16, Value) {
    let grant = "urn:ietf:params:oauth:grant-type:device_code";
    post_form(
        arm,
        "/organizations/oauth2/v2.0/token",
        &[("grant_type", grant), ("client_id", PUBLIC_CLIENT_ID), ("device_code", device_code)],
    )
    .await
}

async fn refresh(arm: &Arm, token: &str) -> (u16, Value) {
    let scope = format!("{}/.default offline_access", arm.url(""));
    post_form(
        arm,
        "/organizations/oauth2/v2.0/token",
        &[
            ("grant_type", "refresh_token"),
            ("client_id", PUBLIC_CLIENT_ID),
            ("refresh_token", token),
            ("scope", &scope),
        ],
    )
    .await
}

/// The subscriptions ARM shows for a bearer token, or its error code.
async fn subscriptions(arm: &Arm, token: &str) -> Result<Vec<String>, String> {
    let resp = arm.http.get(arm.url("/subscriptions?api-version=2022-12-01")).bearer_auth(token).send().await.unwrap();
    let ok = resp.status().is_success();
    let body: Value = resp.json().await.unwrap();
    if ok {
        Ok(body["value"].as_array().unwrap().iter().map(|s| s["subscriptionId"].as_str().unwrap().to_owned()).collect())
    } else {
        Err(body["error"]["code"].as_str().unwrap().to_owned())
    }
}

#[tokio::test]
async fn a_person_signs_in_with_a_device_code_the_owner_approves_and_stays_signed_in_by_refresh() {
    let (_emulator, arm, _dir) = start(|_| {}).await;
    let (s, code) = device_code(&arm, "organizations", PUBLIC_CLIENT_ID).await;
    assert_eq!(s, 200, "{code}");
    let user_code = code["user_code"].as_str().unwrap();
    assert!(user_code.len() == 9 && user_code.as_bytes()[4] == b'-', "{user_code}");
    assert_eq!(code["interval"], 1);
    assert!(code["message"].as_str().unwrap().contains(&format!("azdock local approve {user_code}")), "{code}");
    let device = code["device_code"].as_str().unwrap();

    // Waiting for the person; polling faster than the interval is told to slow down.
    let (s, body) = poll(&arm, device).await;
    assert_eq!((s, body["error"].as_str()), (400, Some("authorization_pending")), "{body}");
    let (s, body) = poll(&arm, device).await;
    assert_eq!((s, body["error"].as_str()), (400, Some("slow_down")), "{body}");

    // Only the owner approves, through the admin routes.
    let anyone = arm.http.post(arm.url(&format!("/_emulator/device-codes/{user_code}/approve"))).send().await.unwrap();
    assert_eq!(anyone.status().as_u16(), 401);
    let (s, _) = arm.admin(Method::POST, &format!("/device-codes/{user_code}/approve"), None).await;
    assert_eq!(s.as_u16(), 204);
    let (s, tokens) = poll(&arm, device).await;
    assert_eq!(s, 200, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(subscriptions(&arm, access).await, Ok(vec![LOCAL_SUBSCRIPTION.to_owned()]));
    let (s, again) = poll(&arm, device).await;
    assert_eq!((s, again["error"].as_str()), (400, Some("invalid_grant")), "a code is redeemed once");
    let (s, _) = arm.admin(Method::POST, &format!("/device-codes/{user_code}/approve"), None).await;
    assert_eq!(s.as_u16(), 404, "a code is decided once");

    // A refresh token gives new tokens, and is no access token itself; it lasts 90 days.
    let first = tokens["refresh_token"].as_str().unwrap();
    let claims: Value = {
        use base64::Engine as _;
        let payload = first.split('.').nth(1).unwrap();
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
    };
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 90 * 24 * 3600, "{claims}");
    assert_eq!(subscriptions(&arm, first).await, Err("InvalidAuthenticationTokenAudience".into()));
    let (s, renewed) = refresh(&arm, first).await;
    assert_eq!(s, 200, "{renewed}");
    let second = renewed["refresh_token"].as_str().unwrap();
    assert_ne!(second, first);
    assert!(subscriptions(&arm, renewed["access_token"].as_str().unwrap()).await.is_ok());

    // Revoked sessions: every refresh token issued so far is refused.
    let (s, _) = arm.admin(Method::POST, "/people/revoke-sessions", None).await;
    assert_eq!(s.as_u16(), 204);
    for token in [first, second] {
        let (s, body) = refresh(&arm, token).await;
        assert_eq!((s, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
        assert!(body["error_description"].as_str().unwrap().starts_with("AADSTS50173:"), "{body}");
    }
    let (s, body) = refresh(&arm, "not-a-token").await;
    assert_eq!((s, body["error"].as_str()), (400, Some("invalid_grant")));
}

#[tokio::test]
async fn codes_expire_can_be_declined_and_only_the_public_client_signs_a_person_in() {
    let (_emulator, arm, _dir) = start(|c| c.device_code_lifetime_secs = 1).await;
    let (_, code) = device_code(&arm, "organizations", PUBLIC_CLIENT_ID).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (s, body) = poll(&arm, code["device_code"].as_str().unwrap()).await;
    assert_eq!((s, body["error"].as_str()), (400, Some("expired_token")), "{body}");
    let (s, _) =
        arm.admin(Method::POST, &format!("/device-codes/{}/approve", code["user_code"].as_str().unwrap()), None).await;
    assert_eq!(s.as_u16(), 404, "an expired code cannot be approved");

    // Codes live side by side: a second one started does not end the first.
    let (_, first) = device_code(&arm, "organizations", PUBLIC_CLIENT_ID).await;
    let (_, code) = device_code(&arm, azdock_emulator::LOCAL_TENANT, PUBLIC_CLIENT_ID).await;
    let (s, _) =
        arm.admin(Method::POST, &format!("/device-codes/{}/approve", first["user_code"].as_str().unwrap()), None).await;
    assert_eq!(s.as_u16(), 204);
    arm.admin(Method::POST, &format!("/device-codes/{}/decline", code["user_code"].as_str().unwrap()), None).await;
    let (s, body) = poll(&arm, code["device_code"].as_str().unwrap()).await;
    assert_eq!((s, body["error"].as_str()), (400, Some("authorization_declined")), "{body}");

    let (s, body) = device_code(&arm, "organizations", "11111111-1111-4111-8111-111111111111").await;
    assert_eq!((s, body["error"].as_str()), (400, Some("unauthorized_client")), "{body}");
    let (s, body) = post_form(
        &arm,
        "/organizations/oauth2/v2.0/devicecode",
        &[("client_id", PUBLIC_CLIENT_ID), ("scope", "https://graph.microsoft.com/.default offline_access")],
    )
    .await;
    assert_eq!((s, body["error"].as_str()), (400, Some("invalid_scope")), "{body}");
    let (s, body) = device_code(&arm, "nosuchtenant", PUBLIC_CLIENT_ID).await;
    assert_eq!((s, body["error"].as_str()), (400, Some("invalid_request")), "{body}");
    let scope = format!("{}/.default", arm.url(""));
    let (s, body) = post_form(
        &arm,
        &format!("/{}/oauth2/v2.0/token", azdock_emulator::LOCAL_TENANT),
        &[
            ("grant_type", "client_credentials"),
            ("client_id", PUBLIC_CLIENT_ID),
            ("client_secret", ""),
            ("scope", &scope),
        ],
    )
    .await;
    assert_eq!((s, body["error"].as_str()), (401, Some("invalid_client")), "{body}");
    assert!(body["error_description"].as_str().unwrap().starts_with("AADSTS700025:"), "{body}");
}
