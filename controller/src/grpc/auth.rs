//! Who is calling, and may they: runs in front of every handler.
//!
//! Each gRPC method has one access rule (`access`): `Enroll` is open (the
//! token in the request decides), the agent's other calls need a client
//! certificate this controller issued and has not revoked, and every
//! `AdminService` call needs an operator token whose role is at least the
//! method's. A method without a rule is refused. The caller's identity goes
//! into the request's extensions as a [`Principal`] for the handler.

use super::limits::{audit_refusals, Limits};
use super::ApiError;
use crate::store::Store;
use sha2::{Digest, Sha256};
use std::convert::Infallible;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use tierwise_runtime::clock::{now_ms, rfc3339};
use tierwise_transport::server::PeerInfo;
use tonic::body::Body;
use tonic::codegen::http;
use tonic::codegen::{BoxFuture, Service};
use tonic::server::NamedService;
use tonic::{Request, Status};
use tracing::warn;

/// What an operator may do; each role includes the ones before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads: hosts, releases, licences, plans, rollouts, the audit log.
    Viewer,
    /// Also plans and runs rollouts and asks agents to refresh.
    Operator,
    /// Also manages enrollment tokens, operators, hosts' certificates, the
    /// catalogue, licences and artifacts.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "viewer" => Ok(Role::Viewer),
            "operator" => Ok(Role::Operator),
            "admin" => Ok(Role::Admin),
            other => Err(format!(
                "`{other}` is not a role; use viewer, operator or admin"
            )),
        }
    }
}

/// An agent, as its certificate says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentIdentity {
    pub host_id: String,
    pub installation: String,
    pub serial: String,
    pub not_after_ms: i64,
}

/// The authenticated caller of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    Agent(AgentIdentity),
    Operator {
        name: String,
        role: Role,
    },
    /// `Enroll`: the token in the request decides.
    Anonymous,
}

/// Who may call a method.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Anyone,
    Agent,
    Operator(Role),
}

/// The response header of a refused call naming its gRPC method, for the
/// CLI's `--json` errors.
pub const METHOD_HEADER: &str = "tierwise-method";

pub const AGENT_SERVICE: &str = "tierwise.v1.AgentService";
pub const ADMIN_SERVICE: &str = "tierwise.v1.AdminService";

/// The access rule of a gRPC path (`/package.Service/Method`); `None` for a
/// method without one, which is refused.
pub fn access(path: &str) -> Option<Access> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    match service {
        AGENT_SERVICE => match method {
            "Enroll" => Some(Access::Anyone),
            "Session" | "DownloadArtifact" | "Renew" | "ReleaseMetadata" | "UploadWebPackage" => {
                Some(Access::Agent)
            }
            _ => None,
        },
        ADMIN_SERVICE => admin_role(method).map(Access::Operator),
        // What the protocol looks like: for operators, like the admin API.
        s if crate::grpc::health::REFLECTION_SERVICES.contains(&s) => {
            Some(Access::Operator(Role::Viewer))
        }
        _ => None,
    }
}

/// The least role an `AdminService` method needs.
pub fn admin_role(method: &str) -> Option<Role> {
    Some(match method {
        "ListHosts"
        | "GetHost"
        | "GetCatalogue"
        | "GetReleaseMetadata"
        | "ListWindows"
        | "GetInstallation"
        | "ListLicences"
        | "PlanRollout"
        | "ListRollouts"
        | "GetRollout"
        | "ListAudit"
        | "WhoAmI"
        | "ListAddressMappings"
        | "GetHostHistory"
        | "ListArtifacts"
        | "VerifyAudit"
        // For themselves; the handler asks admin for anyone else.
        | "RotateOperator" => Role::Viewer,
        "RefreshInventory" | "StartRollout" | "ChangeRollout" => Role::Operator,
        "ImportCatalogue" | "ImportReleaseMetadata" | "SetWindow" | "RemoveWindow" | "SetInstallation" | "SetLicence" | "UploadArtifact" | "CreateToken" | "ListTokens"
        | "RevokeToken" | "AddOperator" | "ListOperators" | "RemoveOperator" | "RevokeHost"
        | "MapAddress" | "UnmapAddress" | "RemoveArtifacts" => Role::Admin,
        // Notifications (their secrets and where events go).
        "AddNotification" | "ListNotifications" | "RemoveNotification" | "TestNotification" => {
            Role::Admin
        }
        _ => return None,
    })
}

const ENROLLMENT_PREFIX: &str = "twe_";
const OPERATOR_PREFIX: &str = "two_";

/// A new enrollment token: (id, secret, the token as handed out). The id is
/// public (lists, audit); the secret is 192 random bits.
pub fn new_enrollment_token() -> (String, String, String) {
    let id = tierwise_common::hex(&crate::pki::random_bytes::<8>());
    let secret = tierwise_common::hex(&crate::pki::random_bytes::<24>());
    let token = format!("{ENROLLMENT_PREFIX}{id}_{secret}");
    (id, secret, token)
}

/// The id and secret of an enrollment token, if it is shaped like one.
pub fn parse_enrollment_token(token: &str) -> Option<(String, String)> {
    let (id, secret) = token
        .trim()
        .strip_prefix(ENROLLMENT_PREFIX)?
        .split_once('_')?;
    let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex(id, 16) && hex(secret, 48)).then(|| (id.to_ascii_lowercase(), secret.to_ascii_lowercase()))
}

/// A new operator token (256 random bits).
pub fn new_operator_token() -> String {
    format!(
        "{OPERATOR_PREFIX}{}",
        tierwise_common::hex(&crate::pki::random_bytes::<32>())
    )
}

/// SHA-256 (hex) of a token, as the store keeps it.
pub fn token_digest(token: &str) -> String {
    tierwise_common::hex(&Sha256::digest(token.as_bytes()))
}

#[derive(Clone, Debug)]
pub struct Authenticator {
    store: Store,
    limits: Arc<Limits>,
    /// When each operator's last call was written (at most once a minute).
    used: Arc<std::sync::Mutex<std::collections::HashMap<String, i64>>>,
}

/// An operator's last call is written at most this often.
const LAST_USED_EVERY_MS: i64 = 60_000;

impl Authenticator {
    pub fn new(store: Store, limits: Arc<Limits>) -> Self {
        Self {
            store,
            limits,
            used: Arc::default(),
        }
    }

    /// The controller's rate limits and refusal windows (the dashboard's
    /// login counts its failures with them).
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Notes an operator's call; written in the background, to the minute.
    fn used(&self, name: &str, now: i64) {
        let mut used = self
            .used
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if used
            .get(name)
            .is_some_and(|at| now - at < LAST_USED_EVERY_MS)
        {
            return;
        }
        used.insert(name.to_owned(), now);
        let (store, name) = (self.store.clone(), name.to_owned());
        tokio::spawn(async move {
            if let Err(error) = store.touch_operator(&name, now).await {
                warn!(%error, operator = %name, "could not record the operator's last call");
            }
        });
    }

    /// Writes the counts of refused calls whose window has ended, every few
    /// seconds (the first refusal of a window is written at once).
    pub async fn run_refusal_audit(self) {
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            audit_refusals(&self.store, self.limits.ended_refusals(now_ms())).await;
        }
    }

    pub async fn authorize(
        &self,
        path: &str,
        peer: Option<&PeerInfo>,
        bearer: Option<&str>,
    ) -> Result<Principal, ApiError> {
        let method = path.rsplit('/').next().unwrap_or(path);
        match access(path) {
            None => Err(ApiError::PermissionDenied(format!(
                "no access rule for {path}; refused"
            ))),
            Some(Access::Anyone) => Ok(Principal::Anonymous),
            Some(Access::Agent) => self.agent(peer).await.map(Principal::Agent),
            Some(Access::Operator(needed)) => {
                let token = bearer.ok_or_else(|| {
                    ApiError::Unauthenticated(
                        "this call needs an operator token: pass --token-file or set TIERWISE_TOKEN \
                         (an administrator issues one with `tierwise operators add NAME --role ROLE`)"
                            .into(),
                    )
                })?;
                self.operator(&token_digest(token), needed, method).await
            }
        }
    }

    /// Who may make the operator call `path` with the token of SHA-256
    /// `digest` (the dashboard keeps only the digest of a session's token).
    pub async fn authorize_digest(&self, path: &str, digest: &str) -> Result<Principal, ApiError> {
        let method = path.rsplit('/').next().unwrap_or(path);
        match access(path) {
            Some(Access::Operator(needed)) => self.operator(digest, needed, method).await,
            _ => Err(ApiError::PermissionDenied(format!(
                "{path} is not an operator call; refused"
            ))),
        }
    }

    /// The operator whose token has SHA-256 `digest`, if their role is at
    /// least `needed` for `method`.
    async fn operator(
        &self,
        digest: &str,
        needed: Role,
        method: &str,
    ) -> Result<Principal, ApiError> {
        let operator = self
            .store
            .operator_by_token(digest)
            .await?
            .ok_or_else(|| {
                ApiError::Unauthenticated(
                    "the operator token is not valid (unknown, removed or replaced by a rotation); ask an administrator for a new one".into(),
                )
            })?;
        let now = now_ms();
        if let Some(at) = operator.expires_ms.filter(|at| *at <= now) {
            return Err(ApiError::Unauthenticated(format!(
                "the token of operator `{}` expired at {}; an administrator gives them a new one (`tierwise operators rotate {}`)",
                operator.name,
                rfc3339(at),
                operator.name
            )));
        }
        self.used(&operator.name, now);
        let (name, role) = (operator.name, operator.role);
        let role: Role = role.parse().map_err(|e: String| {
            ApiError::Store(crate::store::StoreError::Corrupt(format!(
                "operator {name}: {e}"
            )))
        })?;
        if role < needed {
            // Said as the command the person typed; the method stays in
            // the log line and the audit entry (and `--json` errors).
            let reason = format!(
                "{} needs the {needed} role; operator `{name}` has the role {role}",
                super::commands::command_of(method)
            );
            warn!(operator = %name, %method, "call refused: role too low");
            // A refused attempt by a known operator is worth keeping;
            // a flood of them is one entry and a count per window.
            let refusals = self
                .limits
                .refused(&name, "denied", method, &reason, now_ms());
            audit_refusals(&self.store, refusals).await;
            return Err(ApiError::PermissionDenied(reason));
        }
        Ok(Principal::Operator { name, role })
    }

    async fn agent(&self, peer: Option<&PeerInfo>) -> Result<AgentIdentity, ApiError> {
        let certificate = peer.and_then(|p| p.certificate.as_ref()).ok_or_else(|| {
            ApiError::Unauthenticated(
                "this call needs the agent's client certificate; the agent enrolls with a token first".into(),
            )
        })?;
        let facts = tierwise_transport::certificate_facts(certificate).ok_or_else(|| {
            ApiError::Unauthenticated("the client certificate cannot be read".into())
        })?;
        let (serial, name) = (facts.serial, facts.common_name);
        let record = self
            .store
            .certificate_status(&serial)
            .await?
            .ok_or_else(|| {
                ApiError::Unauthenticated(format!(
                    "certificate {serial} is not one this controller issued to an agent"
                ))
            })?;
        let now = now_ms();
        if let Some(refusal) = record.refusal(&serial, now) {
            return Err(if refusal.revoked {
                ApiError::PermissionDenied(refusal.reason)
            } else {
                ApiError::Unauthenticated(refusal.reason)
            });
        }
        if record.host_id != name {
            return Err(ApiError::Unauthenticated(format!(
                "certificate {serial} is expired or does not match its record"
            )));
        }
        // A renewed certificate's first use retires the one it replaced.
        if record.first_used_ms.is_none() {
            self.store.first_use(&serial, now).await?;
        }
        Ok(AgentIdentity {
            host_id: record.host_id,
            installation: record.installation,
            serial,
            not_after_ms: record.not_after_ms,
        })
    }
}

/// The caller of a request the guard let through.
pub fn principal<T>(request: &Request<T>) -> Result<&Principal, Status> {
    request
        .extensions()
        .get::<Principal>()
        .ok_or_else(|| Status::internal("the request bypassed authorisation"))
}

/// The operator behind an admin request: their name for the audit log.
pub fn operator_name<T>(request: &Request<T>) -> Result<String, Status> {
    match principal(request)? {
        Principal::Operator { name, .. } => Ok(name.clone()),
        _ => Err(Status::permission_denied("this call is for operators")),
    }
}

/// The agent behind an agent request.
pub fn agent<T>(request: &Request<T>) -> Result<AgentIdentity, Status> {
    match principal(request)? {
        Principal::Agent(identity) => Ok(identity.clone()),
        _ => Err(Status::unauthenticated("this call is for enrolled agents")),
    }
}

/// The peer's address, for logs.
pub fn peer_addr<T>(request: &Request<T>) -> Option<std::net::SocketAddr> {
    request.extensions().get::<PeerInfo>().map(|p| p.addr)
}

/// Wraps a generated service: authorises every call before the service sees it.
#[derive(Clone, Debug)]
pub struct Guard<S> {
    inner: S,
    auth: Authenticator,
}

impl<S> Guard<S> {
    pub fn new(inner: S, auth: Authenticator) -> Self {
        Self { inner, auth }
    }
}

impl<S> NamedService for Guard<S>
where
    S: NamedService,
{
    const NAME: &'static str = S::NAME;
}

impl<S> Service<http::Request<Body>> for Guard<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        // The clone that was made ready is the one to call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let auth = self.auth.clone();
        Box::pin(async move {
            let peer = request.extensions().get::<PeerInfo>().cloned();
            let bearer = request
                .headers()
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(|v| v.trim().to_owned());
            let path = request.uri().path().to_owned();
            match auth
                .authorize(&path, peer.as_ref(), bearer.as_deref())
                .await
            {
                Ok(principal) => {
                    request.extensions_mut().insert(principal);
                    inner.call(request).await
                }
                Err(error) => {
                    let addr = peer.map(|p| p.addr.to_string()).unwrap_or_default();
                    warn!(peer = %addr, %path, kind = error.kind(), reason = %error, "call refused");
                    let mut status = Status::from(error);
                    let method = path.rsplit('/').next().unwrap_or_default();
                    if let Ok(value) = method.parse() {
                        status.metadata_mut().insert(METHOD_HEADER, value);
                    }
                    Ok(status.into_http())
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every method in the protocol has a rule, so nothing is open by accident.
    #[test]
    fn every_method_of_the_protocol_has_an_access_rule() {
        let proto = include_str!("../../../proto/proto/tierwise.proto");
        let mut service = "";
        let mut count = 0;
        for line in proto.lines().map(str::trim) {
            if let Some(rest) = line.strip_prefix("service ") {
                service = rest.split_whitespace().next().unwrap_or_default();
            }
            if let Some(rest) = line.strip_prefix("rpc ") {
                let method = rest.split('(').next().unwrap_or_default().trim();
                let path = format!("/tierwise.v1.{service}/{method}");
                assert!(access(&path).is_some(), "{path} has no access rule");
                count += 1;
            }
        }
        assert!(count > 20, "found only {count} methods");
        assert_eq!(access("/tierwise.v1.AdminService/Nope"), None);
        assert_eq!(access("garbage"), None);
    }

    #[test]
    fn enrollment_tokens_read_back_and_malformed_ones_do_not() {
        let (id, secret, token) = new_enrollment_token();
        assert_eq!(parse_enrollment_token(&token), Some((id, secret)));
        for bad in [
            "",
            "twe_",
            "twe_abc_def",
            "two_x",
            &token[..token.len() - 1],
            &token.replace("twe_", "twx_"),
        ] {
            assert_eq!(parse_enrollment_token(bad), None, "{bad}");
        }
        assert_ne!(new_operator_token(), new_operator_token());
    }

    #[test]
    fn roles_are_ordered_and_tokens_and_rollouts_need_the_right_one() {
        assert!(Role::Viewer < Role::Operator && Role::Operator < Role::Admin);
        assert_eq!(admin_role("StartRollout"), Some(Role::Operator));
        assert_eq!(admin_role("ChangeRollout"), Some(Role::Operator));
        assert_eq!(admin_role("CreateToken"), Some(Role::Admin));
        assert_eq!(admin_role("ListHosts"), Some(Role::Viewer));
        assert_eq!(
            access("/tierwise.v1.AgentService/Enroll"),
            Some(Access::Anyone)
        );
        assert_eq!(
            access("/tierwise.v1.AgentService/Session"),
            Some(Access::Agent)
        );
        assert!("root"
            .parse::<Role>()
            .unwrap_err()
            .contains("viewer, operator or admin"));
    }
}
