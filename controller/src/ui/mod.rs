//! The web dashboard, served over the controller's TLS on `--ui-listen`
//! (off by default). An operator logs in with their token; every page is
//! authorised as the gRPC call that reads the same data, and the data comes
//! from the same handlers the CLI calls — the dashboard and `tierwise …
//! --json` cannot disagree. Operators also act from it (approve, pause,
//! resume, abort, skip, done, start): each behind a confirmation page, each
//! a POST with the session's form token, authorised, applied and audited by
//! the very handler the CLI's command calls.
//!
//! Server-rendered HTML (askama templates, escaped by default) with htmx,
//! vendored, polling a rollout's live part. No request leaves the page's
//! origin: the Content-Security-Policy allows only this server.
//!
//! The files: `session.rs` (login, cookies, form tokens, who may see a
//! page), `data.rs` (the in-process calls to the admin API, the one place
//! here with protobuf types), `chart.rs` (versions per role as bar
//! segments, pure), `pages.rs` (the pages and their templates), `host.rs`
//! (a host's page: its components and its steps across rollouts),
//! `actions.rs` (the confirmations and the forms that change something),
//! `flash.rs` (a change's outcome, shown once on the next page),
//! `throttle.rs` (failed logins limited and audited per source address).

mod actions;
mod chart;
mod data;
mod flash;
mod host;
mod pages;
mod session;
mod throttle;

use crate::grpc::admin::AdminApi;
use crate::grpc::auth::Authenticator;
use crate::store::Store;
use axum::http::{header, HeaderValue};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tracing::debug;

/// A browser that has not finished its TLS handshake by then is dropped
/// (and while it has not, it is the first to go when every slot is taken).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);
/// A request whose headers have not arrived by then is dropped.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// A request (its body read, its page made) that takes longer is answered
/// 408.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// A connection is closed after this long, however busy (a browser opens
/// another); a peer that never reads its answer holds a slot no longer.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(120);
/// Connections from one address at once.
const CONNECTIONS_PER_ADDRESS: usize = 32;
/// The largest request body (the login and action forms are small).
const MAX_BODY: usize = 16 * 1024;

/// What the pages need.
#[derive(Clone)]
pub struct Ui {
    api: AdminApi,
    auth: Authenticator,
    store: Store,
}

impl std::fmt::Debug for Ui {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ui")
    }
}

impl Ui {
    pub fn new(api: AdminApi, auth: Authenticator, store: Store) -> Self {
        Self { api, auth, store }
    }
}

/// The dashboard's routes, with the headers every answer carries.
pub fn router(ui: Ui) -> axum::Router {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/", get(pages::fleet))
        .route("/hosts", get(pages::hosts))
        .route("/hosts/{id}", get(host::host))
        .route("/rollouts", get(pages::rollouts).post(actions::start))
        .route("/rollouts/{id}", get(pages::rollout))
        .route("/rollouts/{id}/live", get(pages::rollout_live))
        .route(
            "/rollouts/{id}/confirm/{command}",
            get(actions::confirm_change),
        )
        .route("/rollouts/{id}/{command}", post(actions::change))
        .route("/plan", get(pages::plan))
        .route("/plan/start", get(actions::confirm_start))
        .route("/login", get(session::login_page).post(session::login))
        .route("/logout", post(session::logout))
        .route("/assets/htmx-2.0.4.min.js", get(pages::htmx))
        .route("/assets/style.css", get(pages::style))
        .fallback(pages::not_found)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn(flash::forget))
        .layer(axum::middleware::from_fn(within_time))
        .layer(axum::middleware::map_response(secure_headers))
        .with_state(ui)
}

/// A request that takes longer than `REQUEST_TIMEOUT` (a body trickling
/// in, say) is answered 408 and its connection freed.
async fn within_time(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => (
            axum::http::StatusCode::REQUEST_TIMEOUT,
            [(header::CONNECTION, "close")],
            "the request took too long\n",
        )
            .into_response(),
    }
}

/// Only this server may supply scripts, styles, images and requests; the
/// pages are never framed, cached, or sniffed as another type.
async fn secure_headers(mut response: axum::response::Response) -> axum::response::Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// Serves the dashboard on `listener` over TLS until the task is aborted,
/// holding at most `max_connections` connections (at most 256; see
/// `tierwise_transport::slots`): a full dashboard evicts connections that
/// have not finished TLS first, so raw TCP connects cannot keep a browser
/// out.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    ui: Ui,
    max_connections: usize,
) {
    use tierwise_transport::slots::{SlotLimits, Slots};
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let service = hyper_util::service::TowerToHyperService::new(router(ui));
    let slots = Slots::new(SlotLimits {
        total: max_connections.min(tierwise_transport::slots::MAX_DASHBOARD_CONNECTIONS),
        per_address: CONNECTIONS_PER_ADDRESS,
        per_certificate: 1,
    });
    let mut accepting = tierwise_transport::accept::Acceptor::new(listener, "web dashboard");
    loop {
        let (tcp, peer, slot) = accepting.admit(&slots).await;
        let acceptor = acceptor.clone();
        let service = service.clone();
        tokio::spawn(async move {
            let handshake = tokio::select! {
                _ = slot.evicted() => {
                    debug!(%peer, "web dashboard: TLS handshake evicted for another connection");
                    return;
                }
                handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)) => handshake,
            };
            let tls = match handshake {
                Ok(Ok(tls)) => tls,
                Ok(Err(error)) => {
                    debug!(%peer, %error, "web dashboard: TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            slot.opened(None);
            let served = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(
                    hyper_util::rt::TokioIo::new(tls),
                    throttle::WithPeer {
                        inner: service,
                        peer: throttle::Peer(peer.ip()),
                    },
                );
            match tokio::time::timeout(CONNECTION_LIFETIME, served).await {
                Ok(Err(error)) => debug!(%peer, %error, "web dashboard: connection ended"),
                Err(_) => debug!(%peer, "web dashboard: connection closed after its lifetime"),
                Ok(Ok(())) => {}
            }
            drop(slot);
        });
    }
}
