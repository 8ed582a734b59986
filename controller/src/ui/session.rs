//! Logging in to the dashboard: an operator's token, checked as every gRPC
//! call checks it, is traded for a session cookie. The cookie holds only a
//! random session id (HttpOnly, Secure, SameSite=Strict); the database keeps
//! the digests of that id and of the token (`store::sessions`), so any
//! replica serves the session and a restart ends none. Every page checks the
//! token again, so a removed, rotated or expired token ends its sessions at
//! once.
//!
//! Forms that change something carry a per-session token: the HMAC of a
//! fixed purpose keyed with the session id, so only a page this session
//! loaded knows it, any replica checks it without storing anything, and
//! the check (`hmac::verify`) takes the same time whatever the guess.
//!
//! Failed logins are limited and audited per source address
//! (`throttle.rs`). Sessions are capped per operator: a login beyond
//! `max_per_operator` ends that operator's own oldest session, never
//! another's; when the global bound is held by others' sessions the login
//! is refused instead.

use super::pages::{render, Page};
use super::throttle::{self, Peer};
use super::Ui;
use crate::grpc::auth::{token_digest, Principal, Role};
use crate::grpc::error::ApiError;
use crate::grpc::limits::address_key;
use crate::store::sessions::{SessionOpened, SessionTerms};
use askama::Template;
use axum::extract::{Form, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use tierwise_runtime::clock::now_ms;

/// The cookie's name: `__Host-` makes browsers accept it only as set here
/// (secure, for this host, path `/`), never from a sibling domain.
const COOKIE: &str = "__Host-tierwise_session";
/// A session ends 30 minutes after its last page, or 12 hours after its
/// login; an operator holds 10 at once (their oldest going first), and
/// everyone together 10,000 (a login beyond that is refused).
pub(super) const TERMS: SessionTerms = SessionTerms {
    idle_ms: 30 * 60 * 1000,
    lifetime_ms: 12 * 60 * 60 * 1000,
    max_per_operator: 10,
    max_sessions: 10_000,
};

fn new_session_id() -> String {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 32];
    // The system's generator does not fail on supported platforms; a
    // failure would leave zeros, so it ends the process instead.
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        panic!("the system's random generator failed");
    }
    tierwise_common::hex(&bytes)
}

fn unavailable(error: &dyn std::fmt::Display) -> Response {
    super::pages::problem(
        StatusCode::SERVICE_UNAVAILABLE,
        "The controller cannot answer",
        &error.to_string(),
    )
}

/// The session id a request carries in its cookie.
fn session_id(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Who is looking at a page: the operator, and the token that proves it
/// (the data calls carry it).
pub struct Viewer {
    pub name: String,
    pub role: Role,
    /// The token this session's forms carry (`form_token`).
    pub csrf: String,
    /// What the last change said, once (`flash`).
    pub flash: Option<super::flash::Flash>,
}

impl Viewer {
    /// Whether the role may make the admin API call `method`: the rule
    /// gRPC applies, so a page shows only the buttons that would work.
    pub fn may(&self, method: &str) -> bool {
        crate::grpc::auth::admin_role(method).is_some_and(|least| self.role >= least)
    }
}

/// What a form token signs: the session id is the key.
const FORM_PURPOSE: &[u8] = b"tierwise dashboard form v1";

fn form_key(session_id: &str) -> ring::hmac::Key {
    ring::hmac::Key::new(ring::hmac::HMAC_SHA256, session_id.as_bytes())
}

/// The token the forms of session `session_id` carry.
fn form_token(session_id: &str) -> String {
    tierwise_common::hex(ring::hmac::sign(&form_key(session_id), FORM_PURPOSE).as_ref())
}

/// Whether `given` is the form token of the request's session, compared in
/// constant time.
fn form_token_ok(headers: &HeaderMap, given: &str) -> bool {
    let Some(id) = session_id(headers) else {
        return false;
    };
    let given = given.trim();
    let Some(bytes) = unhex(given).filter(|_| given.len() == 64) else {
        return false;
    };
    ring::hmac::verify(&form_key(id), FORM_PURPOSE, &bytes).is_ok()
}

/// The bytes of hex `text` (either case); `None` if it is not hex.
pub(super) fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

/// A form that changes something: sent from the dashboard's own pages, by
/// a session whose role may make `method`, with the session's form token.
/// Otherwise refused (403) before anything is read or changed.
pub async fn authorize_form(
    ui: &Ui,
    headers: &HeaderMap,
    method: &str,
    token: &str,
) -> Result<Viewer, Response> {
    if !same_origin(headers) {
        return Err(cross_site());
    }
    let viewer = authorize(ui, headers, method).await?;
    if !form_token_ok(headers, token) {
        return Err(super::pages::problem(
            StatusCode::FORBIDDEN,
            "Refused",
            "This form's token is missing or not this session's; nothing changed. \
             Open the page again and use its buttons.",
        ));
    }
    Ok(viewer)
}

/// Lets the request through when its session's token may make `method`
/// (an admin API method); otherwise the login page, or a refusal.
pub async fn authorize(ui: &Ui, headers: &HeaderMap, method: &str) -> Result<Viewer, Response> {
    let Some(session) = session_id(headers) else {
        return Err(Redirect::to("/login").into_response());
    };
    let id = token_digest(session);
    let token = match ui.store.dashboard_session(&id, TERMS, now_ms()).await {
        Ok(Some(token)) => token,
        Ok(None) => return Err(login_again("Your session ended; log in again.")),
        Err(error) => return Err(unavailable(&error)),
    };
    let path = format!("/tierwise.v1.AdminService/{method}");
    match ui.auth.authorize_digest(&path, &token).await {
        Ok(Principal::Operator { name, role }) => Ok(Viewer {
            name,
            role,
            csrf: form_token(session),
            flash: super::flash::read(headers),
        }),
        Ok(_) => Err(login_again("Log in with an operator token.")),
        Err(ApiError::Unauthenticated(reason)) => {
            if let Err(error) = ui.store.close_dashboard_session(&id).await {
                return Err(unavailable(&error));
            }
            Err(login_again(&reason))
        }
        Err(ApiError::PermissionDenied(reason)) => Err(super::pages::problem(
            StatusCode::FORBIDDEN,
            "Not allowed",
            &reason,
        )),
        Err(error) => Err(unavailable(&error)),
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    page: Page,
    message: String,
}

pub(super) fn login_form(status: StatusCode, message: &str) -> Response {
    let page = LoginPage {
        page: Page::anonymous("Log in"),
        message: message.to_owned(),
    };
    (status, render(&page)).into_response()
}

fn login_again(message: &str) -> Response {
    let mut response = login_form(StatusCode::UNAUTHORIZED, message);
    response
        .headers_mut()
        .insert(header::SET_COOKIE, clear_cookie());
    response
}

pub async fn login_page() -> Response {
    login_form(StatusCode::OK, "")
}

#[derive(serde::Deserialize)]
pub struct LoginForm {
    token: String,
}

/// Whether a form was posted from the dashboard's own pages: browsers say
/// where a request comes from (`Sec-Fetch-Site`, `Origin`); another site's
/// form is refused.
fn same_origin(headers: &HeaderMap) -> bool {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = text("sec-fetch-site") {
        return matches!(site, "same-origin" | "none");
    }
    match (text("origin"), text("host")) {
        (Some(origin), Some(host)) => origin == format!("https://{host}"),
        // Neither header: not a browser's cross-site form.
        (None, _) => true,
        (Some(_), None) => false,
    }
}

fn cross_site() -> Response {
    super::pages::problem(
        StatusCode::FORBIDDEN,
        "Refused",
        "This form was sent from another site; use the dashboard's own pages.",
    )
}

/// Checks the token as `WhoAmI` would and opens a session; refused
/// unchecked (429) when the address has failed too often.
pub async fn login(
    State(ui): State<Ui>,
    peer: Option<axum::Extension<Peer>>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    if !same_origin(&headers) {
        return cross_site();
    }
    let token = form.token.trim().to_owned();
    if token.is_empty() {
        return login_form(
            StatusCode::UNAUTHORIZED,
            "Paste your operator token (tierwise operators add NAME --role viewer gives one).",
        );
    }
    let address = Peer::of(peer);
    if let Err(over) = ui.auth.limits().ui_login(address, now_ms()) {
        return throttle::throttled(&ui, address, &over).await;
    }
    let checked = ui
        .auth
        .authorize("/tierwise.v1.AdminService/WhoAmI", None, Some(&token))
        .await;
    // Only a wrong token counts against the address: a login that
    // succeeded, or that the controller could not answer, is given back.
    let wrong = matches!(
        checked,
        Ok(Principal::Anonymous | Principal::Agent(_))
            | Err(ApiError::Unauthenticated(_) | ApiError::PermissionDenied(_))
    );
    if !wrong {
        ui.auth.limits().ui_login_succeeded(address);
    }
    match checked {
        Ok(Principal::Operator { name, role }) => {
            // A login in a browser that still holds a session ends that one.
            if let Some(old) = session_id(&headers) {
                if let Err(error) = ui.store.close_dashboard_session(&token_digest(old)).await {
                    return unavailable(&error);
                }
            }
            let id = new_session_id();
            let id_digest = token_digest(&id);
            match ui
                .store
                .open_dashboard_session(&id_digest, &token_digest(&token), TERMS, now_ms())
                .await
            {
                Ok(SessionOpened::Opened) => {}
                Ok(SessionOpened::Full) => return sessions_full(),
                Err(error) => return unavailable(&error),
            }
            // Audited once the session exists; a session whose login cannot
            // be audited is closed again.
            if let Err(error) = ui
                .store
                .audit(
                    &name,
                    "ui login",
                    &name,
                    &format!("role {role}, from {}", address_key(address)),
                    now_ms(),
                )
                .await
            {
                let _ = ui.store.close_dashboard_session(&id_digest).await;
                return unavailable(&error);
            }
            let mut response = Redirect::to("/").into_response();
            if let Ok(cookie) =
                format!("{COOKIE}={id}; Path=/; Secure; HttpOnly; SameSite=Strict").parse()
            {
                response.headers_mut().insert(header::SET_COOKIE, cookie);
            }
            response
        }
        Ok(_) => {
            throttle::failed(&ui, address, "not an operator token").await;
            login_form(StatusCode::UNAUTHORIZED, "That is not an operator token.")
        }
        Err(ApiError::Unauthenticated(reason) | ApiError::PermissionDenied(reason)) => {
            throttle::failed(&ui, address, &reason).await;
            login_form(StatusCode::UNAUTHORIZED, &reason)
        }
        Err(error) => unavailable(&error),
    }
}

/// The sessions of other operators fill the dashboard's bound: this login
/// opens none, and ends none of theirs.
fn sessions_full() -> Response {
    let mut response = login_form(
        StatusCode::SERVICE_UNAVAILABLE,
        &format!(
            "The dashboard holds as many sessions as it may ({}), all of other operators; \
             no session was opened and none was ended. Try again in a minute: a session \
             ends after {} minutes unused.",
            TERMS.max_sessions,
            TERMS.idle_ms / 60_000
        ),
    );
    response.headers_mut().insert(
        header::RETRY_AFTER,
        axum::http::HeaderValue::from_static("60"),
    );
    response
}

pub async fn logout(State(ui): State<Ui>, headers: HeaderMap) -> Response {
    if !same_origin(&headers) {
        return cross_site();
    }
    if let Some(id) = session_id(&headers) {
        if let Err(error) = ui.store.close_dashboard_session(&token_digest(id)).await {
            return unavailable(&error);
        }
    }
    let mut response = Redirect::to("/login").into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, clear_cookie());
    response
}

fn clear_cookie() -> axum::http::HeaderValue {
    axum::http::HeaderValue::from_static(
        "__Host-tierwise_session=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_well_formed_session_cookie_is_read() {
        let mut headers = HeaderMap::new();
        let id = "ab".repeat(32);
        headers.insert(
            header::COOKIE,
            format!("other=1; {COOKIE}={id}").parse().expect("header"),
        );
        assert_eq!(session_id(&headers), Some(id.as_str()));
        headers.insert(
            header::COOKIE,
            format!("{COOKIE}=../../etc").parse().expect("header"),
        );
        assert_eq!(session_id(&headers), None);
    }

    #[test]
    fn a_form_token_belongs_to_its_session_alone() {
        let session = "ab".repeat(32);
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            format!("{COOKIE}={session}").parse().expect("header"),
        );
        let token = form_token(&session);
        assert_eq!(token.len(), 64);
        assert!(form_token_ok(&headers, &token));
        assert!(!form_token_ok(&headers, ""));
        assert!(!form_token_ok(&headers, &form_token(&"cd".repeat(32))));
        let mut wrong = token.clone();
        let last = if wrong.ends_with('0') { '1' } else { '0' };
        wrong.pop();
        wrong.push(last);
        assert!(!form_token_ok(&headers, &wrong));
        assert!(!form_token_ok(&headers, "zz"));
        // `from_str_radix` alone would take a sign.
        assert!(!form_token_ok(&headers, &format!("+{}", &token[1..])));
        // Without a session no token is right.
        assert!(!form_token_ok(&HeaderMap::new(), &token));
        // The token does not give the session id away.
        assert_ne!(token, session);
        assert_ne!(token, token_digest(&session));
    }

    #[test]
    fn forms_from_other_sites_are_told_apart() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.insert(*name, value.parse().expect("value"));
            }
            map
        };
        assert!(same_origin(&headers(&[("sec-fetch-site", "same-origin")])));
        assert!(!same_origin(&headers(&[("sec-fetch-site", "cross-site")])));
        assert!(!same_origin(&headers(&[("sec-fetch-site", "same-site")])));
        assert!(same_origin(&headers(&[
            ("origin", "https://ctl:7443"),
            ("host", "ctl:7443")
        ])));
        assert!(!same_origin(&headers(&[
            ("origin", "https://evil.example"),
            ("host", "ctl:7443")
        ])));
        assert!(same_origin(&headers(&[])));
    }
}
