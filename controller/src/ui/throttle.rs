//! Failed logins, counted per source address: each request carries its
//! connection's peer address (`Peer`); the login takes one from that
//! address's bucket before it checks a token (`grpc::limits`, a burst of
//! ten, then `--ui-login-rate-per-address`) and gives it back when the
//! token was right, so only failures use it up. Over the limit the token
//! is not even checked: the answer is 429 with `Retry-After` and a page
//! saying when to try again.
//!
//! Failures and throttled logins are audited as refused gRPC calls are:
//! the first of each kind from an address in a window
//! (`--audit-refusal-window`) at once, the rest counted in one entry at
//! the window's end. The audit names the address and why, never the text
//! that was sent as a token.

use super::Ui;
use crate::grpc::limits::{address_key, audit_refusals, OverLimit, UI_LOGIN_BURST};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use std::net::{IpAddr, Ipv4Addr};
use tierwise_runtime::clock::{now_ms, rfc3339};

/// The address a request came from (its TCP peer), put on every request
/// by `WithPeer`.
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub IpAddr);

impl Peer {
    /// The peer of a request; one served without its connection's
    /// address (not the case on the dashboard's listener) counts as
    /// 0.0.0.0, all such together.
    pub fn of(peer: Option<axum::Extension<Peer>>) -> IpAddr {
        peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |p| p.0 .0)
    }
}

/// A connection's service that puts the peer's address on each request.
#[derive(Clone, Debug)]
pub struct WithPeer<S> {
    pub inner: S,
    pub peer: Peer,
}

impl<S, B> hyper::service::Service<hyper::Request<B>> for WithPeer<S>
where
    S: hyper::service::Service<hyper::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn call(&self, mut request: hyper::Request<B>) -> Self::Future {
        request.extensions_mut().insert(self.peer);
        self.inner.call(request)
    }
}

/// The audit's target for logins whose token was checked and wrong.
const FAILED: &str = "dashboard login";
/// The audit's target for logins refused unchecked.
const THROTTLED: &str = "dashboard login, throttled";

/// Audits a login from `address` whose token was wrong (`reason` is the
/// controller's, never the token).
pub async fn failed(ui: &Ui, address: IpAddr, reason: &str) {
    let refusals = ui.auth.limits().refused(
        &format!("address {}", address_key(address)),
        "ui login failed",
        FAILED,
        reason,
        now_ms(),
    );
    audit_refusals(&ui.store, refusals).await;
}

/// Audits a login from `address` refused unchecked, and answers it: 429
/// with when to try again.
pub async fn throttled(ui: &Ui, address: IpAddr, over: &OverLimit) -> Response {
    let refusals = ui.auth.limits().refused(
        &format!("address {}", address_key(address)),
        "ui login throttled",
        THROTTLED,
        &format!(
            "{}; the token was not checked (after {UI_LOGIN_BURST} failed logins, one more \
             is let through as the rate refills)",
            over.what
        ),
        now_ms(),
    );
    audit_refusals(&ui.store, refusals).await;
    let seconds = over.retry_ms.div_ceil(1000).max(1);
    let at = rfc3339(
        now_ms().saturating_add(i64::try_from(seconds.saturating_mul(1000)).unwrap_or(i64::MAX)),
    );
    let mut response = super::session::login_form(
        StatusCode::TOO_MANY_REQUESTS,
        &format!(
            "Too many failed logins from {}: this token was not checked. \
             Try again in {seconds} s (after {at}).",
            address_key(address)
        ),
    );
    if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}
