//! A person's sign-in against azdock's local cloud over HTTPS: the device-code flow as the
//! client runs it (waiting, slowing down when told, an expired or declined code), then access
//! tokens from the refresh token, each renewal kept, and a revoked sign-in refused with what to do.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use azdock_azure_sm::credential::{PUBLIC_CLIENT_ID, RefreshTokenCredential, start_device_code, wait_for_person};
use azdock_azure_sm::{Arm, AzureError, Cloud, Credential as _, RetryPolicy};
use azdock_core::Secret;
use azdock_emulator::{Config, Emulator, LOCAL_SUBSCRIPTION};

async fn start(tweak: impl FnOnce(&mut Config)) -> (Emulator, Cloud, reqwest::Client, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::for_tests(dir.path());
    tweak(&mut config);
    let emulator = Emulator::start(config).await.unwrap();
    let cloud = Cloud::local(emulator.base_url(), emulator.ca_pem());
    let http = cloud.http_client(Duration::from_secs(10)).unwrap();
    (emulator, cloud, http, dir)
}

/// The owner's approval (or decline), as `azdock local approve` sends it.
async fn decide(emulator: &Emulator, http: &reqwest::Client, code: &str, verb: &str) -> u16 {
    http.post(format!("{}/_emulator/device-codes/{code}/{verb}", emulator.base_url()))
        .header(azdock_emulator::ADMIN_KEY_HEADER, emulator.admin_key())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The owner's approval after `delay`, while the client waits.
async fn approve_after(emulator: &Emulator, http: &reqwest::Client, code: &str, delay: Duration) -> u16 {
    tokio::time::sleep(delay).await;
    decide(emulator, http, code, "approve").await
}

#[tokio::test]
async fn a_person_waits_for_approval_then_stays_signed_in_until_revoked() {
    let (emulator, cloud, http, _dir) = start(|_| {}).await;
    let code = start_device_code(&http, &cloud.authority_host, "organizations", PUBLIC_CLIENT_ID, &cloud.scope())
        .await
        .unwrap();
    assert!(code.message.contains(&code.user_code), "{}", code.message);
    // The person approves a little later; the client waits (pending) and then signs in.
    let started = Instant::now();
    let (approved, tokens) = tokio::join!(
        approve_after(&emulator, &http, &code.user_code, Duration::from_millis(2500)),
        wait_for_person(&http, &cloud.authority_host, "organizations", PUBLIC_CLIENT_ID, &code)
    );
    let tokens = tokens.unwrap();
    assert_eq!(approved, 204);
    assert!(started.elapsed() >= Duration::from_millis(2500), "it waited for the person");

    // Access tokens from the refresh token; each renewal is handed to the keeper.
    let kept: Arc<Mutex<Vec<String>>> = Arc::default();
    let keeper = Arc::clone(&kept);
    let credential = RefreshTokenCredential::new(
        &cloud.authority_host,
        "organizations",
        PUBLIC_CLIENT_ID,
        Arc::new(tokens.refresh),
        Box::new(move |t: &Arc<Secret<String>>| keeper.lock().unwrap().push(t.expose().clone())),
    );
    let arm = Arm::new(cloud.clone(), Arc::new(credential), RetryPolicy::default()).unwrap();
    let subs = arm.get("/subscriptions?api-version=2022-12-01").await.unwrap();
    assert_eq!(subs["value"][0]["subscriptionId"], LOCAL_SUBSCRIPTION);
    assert_eq!(kept.lock().unwrap().len(), 1, "the renewed refresh token was handed over to be kept");
    arm.get("/subscriptions?api-version=2022-12-01").await.unwrap();
    assert_eq!(kept.lock().unwrap().len(), 1, "a fresh access token is used again, not renewed");

    // A refusal that is not about the sign-in (a scope the cloud does not serve) says so, and
    // does not send the person to sign in again.
    let other = RefreshTokenCredential::new(
        &cloud.authority_host,
        "organizations",
        PUBLIC_CLIENT_ID,
        Arc::new(Secret::new(kept.lock().unwrap()[0].clone())),
        Box::new(|_| {}),
    );
    let e = other.token(&http, "https://graph.microsoft.com/.default").await.unwrap_err();
    assert!(e.to_string().contains("invalid_scope") && !e.to_string().contains("sign in again"), "{e}");

    // Revoked: a fresh client with the kept token is refused with what to do.
    let status = http
        .post(format!("{}/_emulator/people/revoke-sessions", emulator.base_url()))
        .header(azdock_emulator::ADMIN_KEY_HEADER, emulator.admin_key())
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 204);
    let revoked = RefreshTokenCredential::new(
        &cloud.authority_host,
        "organizations",
        PUBLIC_CLIENT_ID,
        Arc::new(Secret::new(kept.lock().unwrap()[0].clone())),
        Box::new(|_| {}),
    );
    let arm = Arm::new(cloud, Arc::new(revoked), RetryPolicy::default()).unwrap();
    let e = arm.get("/subscriptions?api-version=2022-12-01").await.unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, AzureError::Auth { .. }), "{e:?}");
    assert!(text.contains("invalid_grant") && text.contains("sign in again with `azdock login`"), "{text}");
}

#[tokio::test]
async fn an_expired_or_declined_code_ends_the_wait_with_its_reason() {
    let (emulator, cloud, http, _dir) = start(|c| c.device_code_lifetime_secs = 2).await;
    let code = start_device_code(&http, &cloud.authority_host, "organizations", PUBLIC_CLIENT_ID, &cloud.scope())
        .await
        .unwrap();
    let e = wait_for_person(&http, &cloud.authority_host, "organizations", PUBLIC_CLIENT_ID, &code).await.unwrap_err();
    assert!(e.to_string().contains("expired before it was entered; run `azdock login` again"), "{e}");

    let code = start_device_code(&http, &cloud.authority_host, "organizations", PUBLIC_CLIENT_ID, &cloud.scope())
        .await
        .unwrap();
    assert_eq!(decide(&emulator, &http, &code.user_code, "decline").await, 204);
    let e = wait_for_person(&http, &cloud.authority_host, "organizations", PUBLIC_CLIENT_ID, &code).await.unwrap_err();
    assert!(e.to_string().contains("authorization_declined: the sign-in was declined"), "{e}");

    let e = start_device_code(&http, &cloud.authority_host, "organizations", "not-our-client", &cloud.scope())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("unauthorized_client"), "{e}");
}

/// Told to slow down (another poll came within the interval), the client waits five seconds
/// more between polls, as RFC 8628 asks; any other refusal keeps its own words.
#[tokio::test]
async fn a_client_told_to_slow_down_waits_longer_and_other_refusals_keep_their_words() {
    let (emulator, cloud, http, _dir) = start(|_| {}).await;
    let code = start_device_code(&http, &cloud.authority_host, "organizations", PUBLIC_CLIENT_ID, &cloud.scope())
        .await
        .unwrap();
    // Half-way through the client's first interval, another poll of the same code (as a second
    // copy of the client would make): the client's own first poll then comes too soon.
    let (base, device) = (emulator.base_url().to_owned(), code_secret(&code));
    let early = http.clone();
    let poller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        early
            .post(format!("{base}/organizations/oauth2/v2.0/token"))
            .form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("client_id", PUBLIC_CLIENT_ID),
                ("device_code", device.as_str()),
            ])
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    });
    let started = Instant::now();
    let (approved, signed_in) = tokio::join!(
        approve_after(&emulator, &http, &code.user_code, Duration::from_secs(2)),
        wait_for_person(&http, &cloud.authority_host, "organizations", PUBLIC_CLIENT_ID, &code)
    );
    signed_in.unwrap();
    assert_eq!((poller.await.unwrap(), approved), (400, 204));
    assert!(
        started.elapsed() >= Duration::from_secs(6),
        "after slow_down the client waited 1 + 5 s: {:?}",
        started.elapsed()
    );

    // A code Entra does not know: its own error, not taken for a decline.
    let bogus: azdock_azure_sm::credential::DeviceCode = serde_json::from_value(serde_json::json!({
        "user_code": "NOPE-NOPE", "verification_uri": "x", "device_code": "not-a-code", "interval": 1, "expires_in": 30
    }))
    .unwrap();
    let e = wait_for_person(&http, &cloud.authority_host, "organizations", PUBLIC_CLIENT_ID, &bogus).await.unwrap_err();
    assert!(e.to_string().contains("bad_verification_code") && !e.to_string().contains("declined"), "{e}");
}

/// The code's secret as the client polls with it (what Entra's `device_code` holds).
fn code_secret(code: &azdock_azure_sm::credential::DeviceCode) -> String {
    code.secret().expose().clone()
}
