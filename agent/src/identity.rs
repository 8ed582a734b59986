//! The agent's TLS identity: its private key and certificate, and the
//! controller's CA, kept in `state_dir/identity/`.
//!
//! - Enrollment: with no valid certificate, the agent makes a key pair
//!   (kept in `pending.key` until the certificate arrives, so a retry after a
//!   lost answer uses the same key), connects pinning the controller's CA by
//!   its fingerprint, and trades its enrollment token and a certificate
//!   request for a certificate. The CA the controller returns must have the
//!   pinned fingerprint.
//! - From then on every connection is mutual TLS: the agent trusts only that
//!   CA and presents its certificate.
//! - Renewal: after half of the certificate's life the agent makes a new key,
//!   asks for a new certificate over mutual TLS with the current one, and
//!   switches to it; sessions reconnect with it.
//!
//! `agent.pem` holds the certificate and its key together (written
//! atomically, owner-only), so the two always match.

use crate::config::{EnrollmentSettings, Settings};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tierwise_proto::v1::{agent_service_client::AgentServiceClient, EnrollRequest, RenewRequest};
use tierwise_runtime::clock::{now_ms, unix_ms};
use tierwise_transport::client::{
    client_config, ControllerAddress, Identity as TlsIdentity, Trust,
};
use tierwise_transport::{files, Fingerprint};
use tokio::sync::watch;
use tonic::transport::{Channel, Endpoint};
use tracing::{info, warn};

/// A usable identity: the TLS configuration and the certificate's validity.
#[derive(Debug)]
pub struct Credentials {
    /// One configuration per certificate, kept across reconnects: its
    /// session cache holds the controller's tickets, so a reconnect resumes
    /// the TLS session instead of a full handshake.
    pub config: Arc<rustls::ClientConfig>,
    pub host_id: String,
    /// When the certificate was received (the file's time).
    pub received_ms: i64,
    pub not_after_ms: i64,
}

impl Credentials {
    /// Renewal starts after half of the certificate's life.
    pub fn renew_at_ms(&self) -> i64 {
        self.received_ms + (self.not_after_ms - self.received_ms) / 2
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("this agent is not enrolled and its configuration has no enrollment_token and ca_fingerprint; add them (`tierwise tokens create`, `tierwise pki show --fingerprint`)")]
    NotEnrolled,
    #[error("the controller refused the enrollment: {}", .0.message())]
    Refused(tonic::Status),
    #[error("cannot reach the controller to enroll: {0}")]
    Unreachable(String),
    #[error("the controller's answer cannot be used: {0}")]
    BadAnswer(String),
    #[error(transparent)]
    Files(#[from] files::FileError),
    #[error("making a key pair failed: {0}")]
    Key(String),
}

impl IdentityError {
    /// Whether trying again later may succeed without anyone changing
    /// anything (the controller was down, or over its rate limit).
    pub fn is_transient(&self) -> bool {
        matches!(self, IdentityError::Unreachable(_))
            || matches!(self, IdentityError::Refused(s)
                if matches!(s.code(), tonic::Code::Unavailable | tonic::Code::ResourceExhausted))
    }
}

/// Where the identity files live.
#[derive(Clone, Debug)]
pub struct IdentityFiles {
    dir: PathBuf,
}

impl IdentityFiles {
    pub fn new(state_dir: &Path) -> Self {
        Self {
            dir: state_dir.join("identity"),
        }
    }

    fn agent(&self) -> PathBuf {
        self.dir.join("agent.pem")
    }

    fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    fn pending_key(&self) -> PathBuf {
        self.dir.join("pending.key")
    }

    /// The stored identity, if there is one whose certificate is still valid.
    pub fn load(&self) -> Result<Option<Credentials>, IdentityError> {
        let agent = self.agent();
        if !agent.exists() || !self.ca().exists() {
            return Ok(None);
        }
        let chain = files::read_certificates(&agent)?;
        let key = files::read_key(&agent)?;
        let ca = files::read_certificates(&self.ca())?;
        let facts = tierwise_transport::certificate_facts(&chain[0]).ok_or_else(|| {
            IdentityError::BadAnswer(format!("{} cannot be read", agent.display()))
        })?;
        let (host_id, not_after_ms) = (facts.common_name, facts.not_after_ms);
        if not_after_ms <= now_ms() {
            warn!(file = %agent.display(), "the agent's certificate has expired; it must enroll again");
            return Ok(None);
        }
        let received_ms = std::fs::metadata(&agent)
            .and_then(|m| m.modified())
            .map(unix_ms)
            .unwrap_or_else(|_| now_ms());
        let config = client_config(&Trust::Ca(ca), Some(TlsIdentity { chain, key }))
            .map_err(|e| IdentityError::BadAnswer(e.to_string()))?;
        Ok(Some(Credentials {
            config,
            host_id,
            received_ms: received_ms.min(now_ms()),
            not_after_ms,
        }))
    }

    /// Stores a certificate with its key and the CA, then loads them.
    fn store(
        &self,
        certificate_pem: &str,
        key_pem: &str,
        ca_pem: &str,
    ) -> Result<Credentials, IdentityError> {
        files::private_dir(&self.dir)?;
        // Public, but like everything in the agent's state: its own.
        files::write_private(&self.ca(), ca_pem.as_bytes())?;
        let combined = format!("{}\n{}", certificate_pem.trim_end(), key_pem);
        files::write_private(&self.agent(), combined.as_bytes())?;
        self.load()?.ok_or_else(|| {
            IdentityError::BadAnswer("the new certificate is already expired".into())
        })
    }
}

/// A channel to the controller with the given TLS configuration, with the
/// agent's connect timeout.
pub async fn connect(
    controller: &ControllerAddress,
    config: Arc<rustls::ClientConfig>,
    configure: impl FnOnce(Endpoint) -> Endpoint,
) -> Result<Channel, tonic::transport::Error> {
    controller
        .connect(config, |e| {
            configure(e.connect_timeout(Duration::from_secs(10)))
        })
        .await
}

/// Enrolls: token and certificate request for a certificate.
pub async fn enroll(
    settings: &Settings,
    enrollment: &EnrollmentSettings,
) -> Result<Credentials, IdentityError> {
    let identity = IdentityFiles::new(&settings.state_dir);
    let pending = identity.pending_key();
    let (key_pem, request) = if pending.exists() {
        let key_pem = files::read(&pending)?;
        let request = tierwise_transport::request_for_pem(&key_pem, &settings.host_id)
            .map_err(|e| IdentityError::Key(format!("{}: {e}", pending.display())))?;
        (key_pem, request)
    } else {
        let (key_pem, request) = tierwise_transport::key_and_request(&settings.host_id)
            .map_err(|e| IdentityError::Key(e.to_string()))?;
        files::private_dir(&identity.dir)?;
        files::write_private(&pending, key_pem.as_bytes())?;
        (key_pem, request)
    };
    let config = client_config(&Trust::Pinned(enrollment.ca_fingerprint), None)
        .map_err(|e| IdentityError::Unreachable(e.to_string()))?;
    let channel = connect(&settings.controller, config, |e| {
        e.timeout(Duration::from_secs(30))
    })
    .await
    .map_err(|e| IdentityError::Unreachable(tierwise_runtime::report::error_chain(&e)))?;
    let answer = AgentServiceClient::new(channel)
        .enroll(EnrollRequest {
            token: enrollment.token.clone(),
            host_id: settings.host_id.clone(),
            installation: settings.installation.clone(),
            csr_der: request,
        })
        .await
        .map_err(IdentityError::Refused)?
        .into_inner();
    check_ca(&answer.ca_pem, enrollment.ca_fingerprint)?;
    let credentials = identity.store(&answer.certificate_pem, &key_pem, &answer.ca_pem)?;
    let _ = std::fs::remove_file(&pending);
    info!(host_id = %credentials.host_id, not_after_ms = credentials.not_after_ms, "enrolled: the agent has its certificate");
    Ok(credentials)
}

/// The CA in an answer must be the pinned one.
fn check_ca(ca_pem: &str, pinned: Fingerprint) -> Result<(), IdentityError> {
    let ca = files::certificates_from_pem(ca_pem.as_bytes())
        .map_err(|_| IdentityError::BadAnswer("no CA certificate in the answer".into()))?;
    let fingerprint = Fingerprint::of(&ca[0]);
    if fingerprint != pinned {
        return Err(IdentityError::BadAnswer(format!(
            "the controller sent a CA with fingerprint {fingerprint}, not the pinned {pinned}"
        )));
    }
    Ok(())
}

/// A new certificate (and key) for the agent, over mutual TLS with the
/// current one.
pub async fn renew(
    settings: &Settings,
    current: &Credentials,
) -> Result<Credentials, IdentityError> {
    let identity = IdentityFiles::new(&settings.state_dir);
    let (key_pem, request) = tierwise_transport::key_and_request(&settings.host_id)
        .map_err(|e| IdentityError::Key(e.to_string()))?;
    let channel = connect(&settings.controller, current.config.clone(), |e| {
        e.timeout(Duration::from_secs(30))
    })
    .await
    .map_err(|e| IdentityError::Unreachable(tierwise_runtime::report::error_chain(&e)))?;
    let answer = AgentServiceClient::new(channel)
        .renew(RenewRequest { csr_der: request })
        .await
        .map_err(IdentityError::Refused)?
        .into_inner();
    // The CA must not change under a running agent.
    let stored_ca = files::read_certificates(&identity.ca())?;
    check_ca(&answer.ca_pem, Fingerprint::of(&stored_ca[0]))?;
    let credentials = identity.store(&answer.certificate_pem, &key_pem, &answer.ca_pem)?;
    info!(
        not_after_ms = credentials.not_after_ms,
        "certificate renewed"
    );
    Ok(credentials)
}

/// The agent's current credentials; they change when the certificate is
/// renewed.
#[derive(Clone, Debug)]
pub struct Identity {
    current: watch::Receiver<Arc<Credentials>>,
}

impl Identity {
    pub fn current(&self) -> Arc<Credentials> {
        self.current.borrow().clone()
    }

    /// Resolves when the credentials have been renewed since last seen.
    pub async fn changed(&mut self) {
        if self.current.changed().await.is_err() {
            // The renewer stopped: nothing will change any more.
            std::future::pending::<()>().await;
        }
        self.current.borrow_and_update();
    }

    /// Marks the current credentials as seen.
    pub fn mark_seen(&mut self) {
        self.current.borrow_and_update();
    }
}

/// Loads the stored identity or enrolls, trying again with `backoff` while
/// the controller cannot be reached or refuses; errors that only a person
/// can fix are logged each time with what to do.
pub async fn obtain(settings: &Settings) -> Result<Credentials, IdentityError> {
    let files = IdentityFiles::new(&settings.state_dir);
    if let Some(credentials) = files.load()? {
        if credentials.host_id != settings.host_id {
            warn!(certificate = %credentials.host_id, configured = %settings.host_id,
                  "the certificate is for another host id than the configuration says; the controller will refuse the session");
        }
        return Ok(credentials);
    }
    let enrollment = settings
        .enrollment
        .as_ref()
        .ok_or(IdentityError::NotEnrolled)?;
    enroll(settings, enrollment).await
}

/// Starts the renewer: it renews after half of each certificate's life and
/// publishes the new credentials.
pub fn start_renewer(settings: Settings, credentials: Credentials) -> Identity {
    let (tx, rx) = watch::channel(Arc::new(credentials));
    tokio::spawn(async move {
        let mut failures = 0u32;
        loop {
            let current = tx.borrow().clone();
            let wait_ms = (current.renew_at_ms() - now_ms()).max(0);
            tokio::time::sleep(Duration::from_millis(u64::try_from(wait_ms).unwrap_or(0))).await;
            // A certificate that expired (the agent or the controller was
            // down through its second half) cannot renew itself: enroll
            // again when the configuration allows it.
            let result = if now_ms() >= current.not_after_ms {
                match &settings.enrollment {
                    Some(enrollment) => enroll(&settings, enrollment).await,
                    None => Err(IdentityError::NotEnrolled),
                }
            } else {
                renew(&settings, &current).await
            };
            match result {
                Ok(renewed) => {
                    failures = 0;
                    if tx.send(Arc::new(renewed)).is_err() {
                        return;
                    }
                }
                Err(error) => {
                    failures += 1;
                    // Retry soon, but never past the certificate's end; once
                    // it has expired, at the reconnect pace.
                    let left_ms = (current.not_after_ms - now_ms()).max(0);
                    let retry = if left_ms == 0 {
                        settings.reconnect_max
                    } else {
                        Duration::from_millis(
                            u64::try_from((left_ms / 10).clamp(1000, 300_000)).unwrap_or(1000),
                        )
                    };
                    warn!(%error, failures, retry_in_ms = retry.as_millis() as u64, "certificate renewal failed; retrying");
                    tokio::time::sleep(retry).await;
                }
            }
        }
    });
    Identity { current: rx }
}
