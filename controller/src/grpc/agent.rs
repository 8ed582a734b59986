//! `AgentService`: one bidirectional session stream per agent.
//!
//! A session starts with `Hello` (refused unless valid), then carries
//! heartbeats and inventory changes up and commands down. A message that is
//! malformed or too large ends that one session with a status the agent can
//! log; no other session notices.

use super::{printable, ApiError};
use crate::artifacts::ArtifactStore;
use crate::engine::Engine;
use crate::grpc::auth;
use crate::grpc::limits::{audit_refusals, LimitSettings, Limits};
use crate::grpc::sessions::{CloseReason, Sessions};
use crate::pki::Pki;
use crate::store::rollouts::StepResultRecord;
use crate::store::security::{EnrollError, Enrollment, EnrollmentAsk, RenewError};
use crate::store::{HostReport, Store};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tierwise_common::liveness::MISSED_HEARTBEATS_BEFORE_OFFLINE;
use tierwise_common::rollout::may_download;
use tierwise_common::trust::Envelope;
use tierwise_common::{validate_name, Inventory};
use tierwise_proto::convert::step_outcome_from_wire;
use tierwise_proto::v1::{
    agent_message, agent_service_server::AgentService, controller_message, AgentMessage,
    Certificate, ControllerMessage, EnrollRequest, Hello, RenewRequest, StepResult, Welcome,
};
use tierwise_proto::v1::{
    ArtifactChunk, DownloadArtifactRequest, ReleaseMetadataRequest, SignedMetadata,
};
use tierwise_runtime::clock::now_ms;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};
use tracing::{info, warn};

/// How long a new stream may take to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(30);

/// Hellos one controller checks and records at once. Their writes go in
/// one transaction (`store/ingest.rs`), so more at once make larger
/// batches, not more pool connections; what each holds a connection for
/// alone is three short reads (its certificate twice, its outstanding
/// steps), which leaves the store's PostgreSQL pool (16) room for
/// heartbeats, results and the engine.
const HELLOS_AT_ONCE: usize = 32;
/// Heartbeat intervals the controller accepts from an agent's configuration.
pub const HEARTBEAT_RANGE: std::ops::RangeInclusive<u32> = 1..=3600;

#[derive(Clone, Debug)]
pub struct AgentGateway {
    store: Store,
    sessions: Sessions,
    engine: Engine,
    artifacts: ArtifactStore,
    pki: Arc<Pki>,
    /// How long an agent's certificate is valid.
    certificate_lifetime: Duration,
    /// Every session task holds a clone; shutdown waits until all are gone,
    /// so each has recorded its disconnect before the store closes.
    drain: mpsc::Sender<()>,
    /// Sessions close after about this long (see `session_age_limit`).
    max_session_age: Option<Duration>,
    /// Enrollment and renewal rate limits.
    limits: Arc<Limits>,
    /// Hellos past their first message being checked and recorded at once
    /// (`HELLOS_AT_ONCE`).
    hellos: Arc<tokio::sync::Semaphore>,
}

impl AgentGateway {
    pub fn new(
        store: Store,
        sessions: Sessions,
        engine: Engine,
        artifacts: ArtifactStore,
        pki: Arc<Pki>,
        certificate_lifetime: Duration,
        drain: mpsc::Sender<()>,
    ) -> Self {
        Self {
            store,
            sessions,
            engine,
            artifacts,
            pki,
            certificate_lifetime,
            drain,
            max_session_age: None,
            limits: Arc::new(Limits::new(&LimitSettings::default())),
            hellos: Arc::new(tokio::sync::Semaphore::new(HELLOS_AT_ONCE)),
        }
    }

    /// Enrollment and renewal limits other than the defaults.
    #[must_use]
    pub fn with_limits(mut self, limits: Arc<Limits>) -> Self {
        self.limits = limits;
        self
    }

    /// Closes each session after about `age` (±10 %), so that agents behind
    /// a load balancer reconnect and spread over the replicas there are.
    #[must_use]
    pub fn with_max_session_age(mut self, age: Option<Duration>) -> Self {
        self.max_session_age = age;
        self
    }

    fn answer(&self, certificate: &crate::store::security::AgentCertificate) -> Certificate {
        Certificate {
            certificate_pem: certificate.certificate_pem.clone(),
            ca_pem: self.pki.ca_pem().to_owned(),
            not_after_ms: certificate.not_after_ms,
        }
    }
}

type SessionStream = Pin<Box<dyn Stream<Item = Result<ControllerMessage, Status>> + Send>>;

type ChunkStream = Pin<Box<dyn Stream<Item = Result<ArtifactChunk, Status>> + Send>>;

impl AgentGateway {
    /// Enroll as the protocol defines it; `enroll` counts the outcome.
    async fn enroll_checked(
        &self,
        request: Request<EnrollRequest>,
    ) -> Result<Response<Certificate>, Status> {
        let from = auth::peer_addr(&request);
        let peer = from.map_or_else(|| "unknown".to_owned(), |a| a.to_string());
        let ip = from.map(|a| a.ip());
        let address = ip.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
        let request = request.into_inner();
        let invalid = |e: tierwise_common::NameError| {
            refuse(&peer, ApiError::InvalidArgument(format!("Enroll: {e}")))
        };
        validate_name("host id", &request.host_id).map_err(invalid)?;
        validate_name("installation", &request.installation).map_err(invalid)?;
        let (token_id, secret) = auth::parse_enrollment_token(&request.token).ok_or_else(|| {
            refuse(
                &peer,
                ApiError::Unauthenticated(crate::store::security::EnrollError::Invalid.to_string()),
            )
        })?;
        let now = now_ms();
        if let Some(ip) = ip {
            self.limits
                .enroll_address(ip, now)
                .map_err(|over| refuse(&peer, over.into()))?;
        }
        // Everything is checked before a certificate is signed: a refused
        // attempt costs reads, not a signature and a write.
        let public_key_sha256 = crate::pki::Pki::request_key_sha256(&request.csr_der)
            .map_err(|e| refuse(&peer, ApiError::InvalidArgument(e.to_string())))?;
        let ask = EnrollmentAsk {
            token_id: &token_id,
            secret_sha256: &auth::token_digest(&secret),
            host_id: &request.host_id,
            installation: &request.installation,
            public_key_sha256: &public_key_sha256,
        };
        let checked = self.store.check_enrollment(&ask, now).await;
        // The token's own rate counts only attempts that knew its secret.
        if !matches!(checked, Err(EnrollError::Invalid)) {
            self.limits
                .enroll_token(&token_id, now)
                .map_err(|over| refuse(&peer, over.into()))?;
        }
        let checked = match checked {
            Ok(checked) => checked,
            Err(e) => {
                return Err(self
                    .enroll_refused(&peer, &address, &request.host_id, e)
                    .await)
            }
        };
        if let Some(issued) = checked {
            return Ok(Response::new(self.answer(&issued)));
        }
        let certificate = self
            .pki
            .issue(
                &request.csr_der,
                &request.host_id,
                &request.installation,
                now,
                self.certificate_lifetime,
            )
            .map_err(|e| refuse(&peer, ApiError::InvalidArgument(e.to_string())))?;
        let enrollment = Enrollment {
            token_id: ask.token_id,
            secret_sha256: ask.secret_sha256,
            host_id: ask.host_id,
            installation: ask.installation,
            certificate,
        };
        let issued = match self.store.enroll(&enrollment, now).await {
            Ok(issued) => issued,
            Err(e) => {
                return Err(self
                    .enroll_refused(&peer, &address, &request.host_id, e)
                    .await)
            }
        };
        info!(host_id = %request.host_id, installation = %request.installation, token = %token_id, serial = %issued.serial, %peer, "agent enrolled");
        Ok(Response::new(self.answer(&issued)))
    }
}

#[tonic::async_trait]
impl AgentService for AgentGateway {
    type SessionStream = SessionStream;
    type DownloadArtifactStream = ChunkStream;

    async fn enroll(
        &self,
        request: Request<EnrollRequest>,
    ) -> Result<Response<Certificate>, Status> {
        let answer = self.enroll_checked(request).await;
        crate::metrics::metrics().enrollment(match &answer {
            Ok(_) => "enrolled",
            Err(status) if status.code() == tonic::Code::ResourceExhausted => "rate_limited",
            Err(_) => "refused",
        });
        answer
    }

    async fn renew(&self, request: Request<RenewRequest>) -> Result<Response<Certificate>, Status> {
        let identity = auth::agent(&request)?;
        let peer =
            auth::peer_addr(&request).map_or_else(|| "unknown".to_owned(), |a| a.to_string());
        let request = request.into_inner();
        let now = now_ms();
        self.limits
            .renew(&identity.host_id, now)
            .map_err(|over| refuse(&peer, over.into()))?;
        let renew_error = |e: RenewError| {
            let error = match e {
                RenewError::Store(store) => ApiError::Store(store),
                RenewError::TooEarly { .. } => ApiError::FailedPrecondition(e.to_string()),
                RenewError::Conflict(_) => ApiError::Unavailable(e.to_string()),
                _ => ApiError::PermissionDenied(e.to_string()),
            };
            refuse(&peer, error)
        };
        // Checked before signing, and again where the renewal is recorded:
        // a revocation between the call's arrival and its end wins.
        self.store
            .check_renewal(&identity.serial, now)
            .await
            .map_err(renew_error)?;
        let certificate = self
            .pki
            .issue(
                &request.csr_der,
                &identity.host_id,
                &identity.installation,
                now,
                self.certificate_lifetime,
            )
            .map_err(|e| refuse(&peer, ApiError::InvalidArgument(e.to_string())))?;
        self.store
            .renew(&identity.serial, &certificate, now)
            .await
            .map_err(renew_error)?;
        info!(host_id = %identity.host_id, old = %identity.serial, new = %certificate.serial, "agent certificate renewed");
        Ok(Response::new(self.answer(&certificate)))
    }

    async fn upload_web_package(
        &self,
        request: Request<tonic::Streaming<tierwise_proto::v1::WebPackageChunk>>,
    ) -> Result<Response<tierwise_proto::v1::WebPackageReceipt>, Status> {
        let answer =
            super::web_upload::upload_web_package(&self.store, &self.artifacts, request).await;
        if answer.is_ok() {
            self.engine.wake();
        }
        answer
    }

    async fn release_metadata(
        &self,
        request: Request<ReleaseMetadataRequest>,
    ) -> Result<Response<SignedMetadata>, Status> {
        let identity = auth::agent(&request)?;
        let stored = self
            .store
            .release_metadata()
            .await
            .map_err(ApiError::from)?;
        let catalogue = self
            .store
            .current_catalogue()
            .await
            .map_err(ApiError::from)?;
        let mut answer = SignedMetadata {
            catalogue: catalogue.map(|c| c.document).unwrap_or_default(),
            ..Default::default()
        };
        if let Some(stored) = stored {
            answer.roots = stored.roots.iter().map(Envelope::to_json).collect();
            answer.release = stored.release.to_json();
        }
        info!(host_id = %identity.host_id, "release metadata fetched");
        Ok(Response::new(answer))
    }

    async fn download_artifact(
        &self,
        request: Request<DownloadArtifactRequest>,
    ) -> Result<Response<ChunkStream>, Status> {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        let identity = auth::agent(&request)?;
        let peer =
            auth::peer_addr(&request).map_or_else(|| "unknown".to_owned(), |a| a.to_string());
        let request = request.into_inner();
        // One answer for a file that does not exist and for one this host
        // may not have: a refusal says nothing about what is stored.
        let not_found = || {
            ApiError::NotFound(format!(
                "no artifact {} in the controller's store",
                printable(&request.sha256, 80)
            ))
        };
        let steps = self
            .store
            .download_steps(&identity.host_id, &request.sha256)
            .await
            .map_err(ApiError::from)?;
        let grant = match may_download(&request.sha256, &steps, now_ms()) {
            Ok(grant) => grant,
            Err(why) => {
                self.download_refused(&identity.host_id, &peer, &request.sha256, &why)
                    .await;
                return Err(not_found().into());
            }
        };
        let path = self.artifacts.path(&request.sha256).ok_or_else(not_found)?;
        let mut file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| ApiError::Unavailable(format!("the artifact store: {e}")))?;
        // A resumed download starts within the file: an offset past its
        // end (a made-up number, or a partial file of something else) is
        // refused, and the agent starts again from the beginning.
        let size = file
            .metadata()
            .await
            .map_err(|e| ApiError::Unavailable(format!("the artifact store: {e}")))?
            .len();
        if request.offset > size {
            return Err(ApiError::InvalidArgument(format!(
                "offset {} is past the end of {} ({size} bytes); download it from the start",
                request.offset, request.sha256
            ))
            .into());
        }
        file.seek(std::io::SeekFrom::Start(request.offset))
            .await
            .map_err(|e| ApiError::InvalidArgument(format!("offset {}: {e}", request.offset)))?;
        info!(host_id = %identity.host_id, sha256 = %request.sha256, offset = request.offset, step = %grant.step_id, rollout = %grant.rollout_id, "artifact download");
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            let mut buffer = vec![0u8; crate::artifacts::CHUNK_BYTES];
            loop {
                match file.read(&mut buffer).await {
                    Ok(0) => return,
                    Ok(n) => {
                        if tx
                            .send(Ok(ArtifactChunk {
                                data: buffer[..n].to_vec(),
                            }))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = tx
                            .send(Err(Status::unavailable(format!(
                                "reading the artifact: {e}"
                            ))))
                            .await;
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn session(
        &self,
        request: Request<Streaming<AgentMessage>>,
    ) -> Result<Response<SessionStream>, Status> {
        let identity = auth::agent(&request)?;
        let remote = auth::peer_addr(&request);
        let peer = remote.map_or_else(|| "unknown".to_owned(), |a| a.to_string());
        let peer_ip = remote.map_or_else(|| "unknown".to_owned(), |a| a.ip().to_string());
        let mut inbound = request.into_inner();
        let first = match tokio::time::timeout(HELLO_TIMEOUT, inbound.message()).await {
            Err(_) => {
                return Err(refuse(
                    &peer,
                    ApiError::Protocol("no Hello within 30 s".into()),
                ))
            }
            Ok(Err(status)) => {
                warn!(%peer, code = ?status.code(), message = status.message(), "session refused before hello");
                return Err(status);
            }
            Ok(Ok(None)) => {
                return Err(refuse(
                    &peer,
                    ApiError::Protocol("stream closed before Hello".into()),
                ))
            }
            Ok(Ok(Some(message))) => message,
        };
        let hello = match first.body {
            Some(agent_message::Body::Hello(hello)) => hello,
            _ => {
                return Err(refuse(
                    &peer,
                    ApiError::Protocol("the first message of a session must be Hello".into()),
                ))
            }
        };
        let report = host_report(&hello, now_ms()).map_err(|e| refuse(&peer, e))?;
        // The certificate says who this is; the hello may only agree.
        if report.host_id != identity.host_id || report.installation != identity.installation {
            return Err(refuse(
                &peer,
                ApiError::PermissionDenied(format!(
                    "this agent's certificate is for host {} of installation {}, but its hello says host {} of installation {}; \
                     fix host_id/installation in its configuration or enroll it under the new name",
                    identity.host_id, identity.installation, report.host_id, report.installation
                )),
            ));
        }
        // A reconnect storm queues here, in memory and without a deadline,
        // instead of at the store's pool, whose wait times out: hellos that
        // failed there were retried by their agents and crowded out the
        // rest, and 100,000 agents on seven replicas never all came back.
        let admitted = self.hellos.acquire().await.map_err(|_| {
            refuse(
                &peer,
                ApiError::Unavailable("the controller is shutting down".into()),
            )
        })?;
        // The stream was authorised when it opened; the host may have been
        // revoked since (a hello can come up to HELLO_TIMEOUT later).
        self.still_valid(&identity.serial)
            .await
            .map_err(|e| refuse(&peer, e))?;
        let session_id = format!("{:016x}", fastrand::u64(..));
        // Store and registry change together per host, so two streams of one
        // host cannot leave the store naming one and the registry the other.
        let hello_guard = self.sessions.hello_lock(&report.host_id).await;
        let started = std::time::Instant::now();
        let recorded = self
            .store
            .record_hello(&report, &session_id, now_ms())
            .await;
        crate::metrics::metrics().store_operation("hello", started.elapsed());
        recorded.map_err(ApiError::from)?;

        let (outbound, receiver) = mpsc::channel(32);
        let welcome = ControllerMessage {
            body: Some(controller_message::Body::Welcome(Welcome {
                session_id: session_id.clone(),
            })),
        };
        // The channel is new and empty: this cannot fail for lack of room.
        let _ = outbound.try_send(Box::new(Ok(welcome)));
        let (close, other_machine) = self.sessions.register(
            &report.host_id,
            &report.installation,
            &session_id,
            &peer_ip,
            outbound.clone(),
        );
        drop(hello_guard);
        // Registered: a revocation from now on reaches this session through
        // the outbox. One that committed in between is caught here, and the
        // session ends at once, with nothing handed to it.
        let revoked = self.still_valid(&identity.serial).await.err();
        if let Some(error) = &revoked {
            warn!(host_id = %report.host_id, %peer, %error, "session closed: its certificate was revoked or replaced while it said hello");
            self.sessions
                .close_session(&report.host_id, &session_id, CloseReason::Revoked);
        }
        if let Some(other) = other_machine {
            warn!(
                host_id = %report.host_id,
                %peer,
                previous = %other,
                "host id is used by two machines; they replace each other's sessions. Give each its own host_id"
            );
        }
        info!(
            host_id = %report.host_id,
            installation = %report.installation,
            %peer,
            session = %session_id,
            components = report.inventory.components().len(),
            "agent connected"
        );
        // Level-triggered: everything outstanding for this host goes out
        // on every hello; its journal answers what it already ran.
        if revoked.is_none() {
            if let Err(error) = self.engine.hello(&report.host_id, report.boot_ms).await {
                warn!(host_id = %report.host_id, %error, "could not deliver outstanding steps");
            }
            self.engine.wake();
        }
        drop(admitted);
        let session = Session {
            engine: self.engine.clone(),
            store: self.store.clone(),
            sessions: self.sessions.clone(),
            host_id: report.host_id,
            session_id,
            peer,
            certificate_expires_ms: identity.not_after_ms,
            age_limit: self.max_session_age.map(session_age_limit),
            _drain: self.drain.clone(),
            silence_limit: Duration::from_secs(
                u64::from(report.heartbeat_seconds)
                    * MISSED_HEARTBEATS_BEFORE_OFFLINE.unsigned_abs(),
            ),
        };
        tokio::spawn(session.run(inbound, outbound, close));
        Ok(Response::new(Box::pin(timed(ReceiverStream::new(
            receiver,
        )))))
    }
}

/// The session's outgoing messages as the connection takes them to encode
/// and write: each command's time since the commit that dispatched it is
/// the controller's whole part of its delivery.
fn timed(
    messages: impl Stream<Item = crate::grpc::sessions::Outgoing>,
) -> impl Stream<Item = Result<ControllerMessage, Status>> {
    use tokio_stream::StreamExt;
    messages.map(|message| {
        let message = *message;
        if let Ok(ControllerMessage {
            body: Some(controller_message::Body::Command(command)),
        }) = &message
        {
            crate::metrics::metrics().command_taken(now_ms() - command.dispatched_ms);
        }
        message
    })
}

impl AgentGateway {
    /// Logs a download the host may not have, and audits it once per host
    /// and window (with the count of the rest at its end): a flood of
    /// requests is one entry.
    async fn download_refused(&self, host_id: &str, peer: &str, sha256: &str, why: &str) {
        let named = if tierwise_common::is_sha256(sha256) {
            sha256.to_owned()
        } else {
            format!("`{}` (no SHA-256)", printable(sha256, 80))
        };
        let reason = format!("{named}: {why}");
        warn!(%host_id, %peer, %reason, "download refused: the host may fetch only what a step dispatched to it names");
        let refusals = self.limits.refused(
            &format!("agent {host_id}"),
            "download refused",
            "DownloadArtifact",
            &reason,
            now_ms(),
        );
        audit_refusals(&self.store, refusals).await;
    }

    /// The answer to a refused enrollment. One with a valid token is
    /// audited (once per address and window, with a count of the rest).
    async fn enroll_refused(
        &self,
        peer: &str,
        address: &str,
        host_id: &str,
        e: EnrollError,
    ) -> Status {
        let error = match e {
            EnrollError::Store(store) => return refuse(peer, ApiError::Store(store)),
            // Without a valid token the attempt is logged, not audited: a
            // flood of made-up tokens cannot fill the log.
            EnrollError::Invalid => return refuse(peer, ApiError::Unauthenticated(e.to_string())),
            EnrollError::AlreadyEnrolled(_) => ApiError::AlreadyExists(e.to_string()),
            _ => ApiError::PermissionDenied(e.to_string()),
        };
        let refusals = self.limits.refused(
            &format!("address {address}"),
            "enroll refused",
            "Enroll",
            &format!("host {host_id}: {error}"),
            now_ms(),
        );
        audit_refusals(&self.store, refusals).await;
        refuse(peer, error)
    }

    /// Refuses when the certificate a stream was opened with has been
    /// revoked, renewed or has expired since.
    async fn still_valid(&self, serial: &str) -> Result<(), ApiError> {
        match self.store.certificate_refusal(serial, now_ms()).await? {
            Some(reason) => Err(ApiError::PermissionDenied(reason)),
            None => Ok(()),
        }
    }
}

fn refuse(peer: &str, error: ApiError) -> Status {
    warn!(%peer, kind = error.kind(), error = %error, "session refused");
    error.into()
}

/// Checks a hello and turns it into the domain's host report. A boot time
/// outside a sane range (`reported::wall_time`) counts as not known: a boot
/// "in the future" would end every wait for a restart at once.
fn host_report(hello: &Hello, now_ms: i64) -> Result<HostReport, ApiError> {
    let invalid = |what: String| ApiError::InvalidArgument(format!("Hello: {what}"));
    validate_name("host id", &hello.host_id).map_err(|e| invalid(e.to_string()))?;
    validate_name("installation", &hello.installation).map_err(|e| invalid(e.to_string()))?;
    // The host name is information, not identity: shown, never refused.
    let hostname = if hello.hostname.trim().is_empty() {
        hello.host_id.clone()
    } else {
        printable(&hello.hostname, 253)
    };
    if !HEARTBEAT_RANGE.contains(&hello.heartbeat_seconds) {
        return Err(invalid(format!(
            "heartbeat_seconds {} is outside {}..={}",
            hello.heartbeat_seconds,
            HEARTBEAT_RANGE.start(),
            HEARTBEAT_RANGE.end()
        )));
    }
    let inventory = hello
        .inventory
        .as_ref()
        .map(Inventory::try_from)
        .transpose()
        .map_err(|e| invalid(e.to_string()))?
        .unwrap_or_default();
    Ok(HostReport {
        host_id: hello.host_id.clone(),
        hostname,
        installation: hello.installation.clone(),
        os: printable(&hello.os, 200),
        agent_version: printable(&hello.agent_version, 64),
        heartbeat_seconds: hello.heartbeat_seconds,
        inventory,
        boot_ms: tierwise_common::reported::wall_time(hello.boot_ms, now_ms),
    })
}

/// A step result as the store records it: a known outcome, printable text.
fn step_result_record(result: &StepResult) -> Result<StepResultRecord, ApiError> {
    let outcome = step_outcome_from_wire(result.outcome).ok_or_else(|| {
        ApiError::InvalidArgument(format!(
            "StepResult {}: unknown outcome {}",
            result.step_id, result.outcome
        ))
    })?;
    Ok(StepResultRecord {
        step_id: result.step_id.clone(),
        outcome,
        exit_code: result.has_exit_code.then_some(result.exit_code),
        output_tail: printable_tail(&result.output_tail),
        reason: printable(&result.reason, 1000),
    })
}

/// The end of a command's output: at most 4 KiB, line breaks and tabs kept
/// (Windows line ends become plain ones), other control and format
/// characters shown as a placeholder.
fn printable_tail(text: &str) -> String {
    let kept = tierwise_common::text::neutralise_lines(&text.replace("\r\n", "\n"));
    let start = kept.len().saturating_sub(4096);
    let start = (start..=kept.len())
        .find(|i| kept.is_char_boundary(*i))
        .unwrap_or(kept.len());
    kept[start..].to_owned()
}

struct Session {
    engine: Engine,
    store: Store,
    sessions: Sessions,
    host_id: String,
    session_id: String,
    peer: String,
    /// The session ends when the certificate it was opened with expires;
    /// the agent reconnects with its renewed one.
    certificate_expires_ms: i64,
    /// This session's share of `--max-session-age`.
    age_limit: Option<Duration>,
    _drain: mpsc::Sender<()>,
    silence_limit: Duration,
}

impl Session {
    #[tracing::instrument(name = "session", skip_all, fields(session = %self.session_id))]
    async fn run(
        self,
        mut inbound: Streaming<AgentMessage>,
        outbound: crate::grpc::sessions::Outbound,
        mut close: tokio::sync::oneshot::Receiver<CloseReason>,
    ) {
        let host_id = self.host_id.as_str();
        let peer = self.peer.as_str();
        let expires_in = Duration::from_millis(
            u64::try_from(self.certificate_expires_ms - now_ms()).unwrap_or(0),
        );
        let certificate_expiry = tokio::time::sleep(expires_in);
        tokio::pin!(certificate_expiry);
        let age_limit = self.age_limit;
        let aged = async move {
            match age_limit {
                Some(limit) => tokio::time::sleep(limit).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(aged);
        loop {
            tokio::select! {
                () = &mut aged => {
                    info!(%host_id, %peer, "the session reached its age limit; closing it so the agent reconnects");
                    let _ = outbound.try_send(Box::new(Err(ApiError::Unavailable("the session reached the controller's --max-session-age; reconnect".into()).into())));
                    break;
                }
                () = &mut certificate_expiry => {
                    info!(%host_id, %peer, "the session's certificate expired; closing it");
                    let _ = outbound.try_send(Box::new(Err(ApiError::Unauthenticated("the agent's certificate expired; reconnect with the renewed one".into()).into())));
                    break;
                }
                reason = &mut close => {
                    match reason {
                        Ok(CloseReason::Superseded) => info!(%host_id, %peer, "session replaced by a newer one from the same host"),
                        Ok(CloseReason::Revoked) => {
                            info!(%host_id, %peer, "host revoked; closing its session");
                            let _ = outbound.try_send(Box::new(Err(ApiError::PermissionDenied("this host's certificate was revoked".into()).into())));
                        }
                        Ok(CloseReason::ShuttingDown) | Err(_) => {
                            let _ = outbound.try_send(Box::new(Err(ApiError::Unavailable("the controller is shutting down".into()).into())));
                        }
                    }
                    break;
                }
                _ = outbound.closed() => {
                    info!(%host_id, %peer, "agent went away");
                    break;
                }
                next = tokio::time::timeout(self.silence_limit, inbound.message()) => match next {
                    Err(_) => {
                        warn!(%host_id, %peer, seconds = self.silence_limit.as_secs(), "no heartbeat for three intervals; closing the session");
                        let _ = outbound.try_send(Box::new(Err(ApiError::DeadlineExceeded("no heartbeat for three intervals".into()).into())));
                        break;
                    }
                    Ok(Ok(None)) => {
                        info!(%host_id, %peer, "agent closed the session");
                        break;
                    }
                    Ok(Err(status)) => {
                        warn!(%host_id, %peer, code = ?status.code(), message = status.message(), "session stream failed; closing it");
                        let _ = outbound.try_send(Box::new(Err(status)));
                        break;
                    }
                    Ok(Ok(Some(message))) => match self.handle(message).await {
                        Ok(true) => {}
                        Ok(false) => {
                            info!(%host_id, %peer, "session is no longer the host's current one; closing it");
                            break;
                        }
                        Err(error) => {
                            warn!(%host_id, %peer, kind = error.kind(), error = %error, "message rejected; closing the session");
                            let _ = outbound.try_send(Box::new(Err(error.into())));
                            break;
                        }
                    },
                }
            }
        }
        self.sessions.unregister(host_id, &self.session_id);
        match self
            .store
            .record_disconnect(host_id, &self.session_id)
            .await
        {
            Ok(true) => info!(%host_id, %peer, "host offline: session ended"),
            Ok(false) => {}
            Err(error) => warn!(%host_id, %error, "could not record the disconnect"),
        }
    }

    /// Ok(false): this session was replaced and should end.
    async fn handle(&self, message: AgentMessage) -> Result<bool, ApiError> {
        match message.body {
            // Liveness in memory; the store gets it coalesced, once a
            // second (a store hiccup drops nobody).
            Some(agent_message::Body::Heartbeat(_)) => {
                self.store
                    .note_heartbeat(&self.host_id, &self.session_id, now_ms());
                Ok(true)
            }
            Some(agent_message::Body::Inventory(wire)) => {
                let inventory = Inventory::try_from(&wire)
                    .map_err(|e| ApiError::InvalidArgument(format!("Inventory: {e}")))?;
                let started = std::time::Instant::now();
                let current = self
                    .store
                    .record_inventory(&self.host_id, &self.session_id, inventory, now_ms())
                    .await?;
                crate::metrics::metrics().store_operation("inventory_report", started.elapsed());
                if current {
                    info!(host_id = %self.host_id, "inventory updated");
                    self.engine.wake();
                }
                Ok(current)
            }
            Some(agent_message::Body::StepProgress(progress)) => {
                let message = printable(&progress.message, 300);
                if let Err(error) = self
                    .store
                    .record_progress(&self.host_id, &progress.step_id, &message, now_ms())
                    .await
                {
                    warn!(host_id = %self.host_id, %error, "could not record step progress");
                }
                Ok(true)
            }
            Some(agent_message::Body::StepResult(result)) => {
                let record = step_result_record(&result)?;
                let outcome = record.outcome;
                let started = std::time::Instant::now();
                let recorded = self
                    .store
                    .record_step_result(&self.host_id, &record, now_ms())
                    .await?;
                crate::metrics::metrics().store_operation("step_result", started.elapsed());
                if let Some(rollout) = recorded {
                    info!(host_id = %self.host_id, %rollout, step = %record.step_id, ?outcome, "step result");
                    self.engine.wake();
                    let facts = self.store.step_facts(&record.step_id).await.ok().flatten();
                    // Only the backup step of this host's rollout names the
                    // backup that protects it.
                    let is_backup = matches!(
                        &facts,
                        Some((tierwise_common::action::StepAction::Backup, _))
                    );
                    let files = backup_files(&self.host_id, &result, now_ms());
                    if outcome.succeeded() && is_backup && !files.is_empty() {
                        if let Err(error) = self
                            .store
                            .record_backup(&rollout, &self.host_id, &files, now_ms())
                            .await
                        {
                            warn!(%rollout, %error, "could not record the rollout's backup");
                        }
                    }
                    // The agent's times are bounded by the controller's own
                    // measure (dispatch to result) and a ceiling: a made-up
                    // pair must not become a measurement.
                    let dispatched = self.store.step_dispatched_ms(&record.step_id).await;
                    let measured = dispatched
                        .ok()
                        .flatten()
                        .map(|at| now_ms().saturating_sub(at));
                    let ran_ms = tierwise_common::rollout::step_duration_ms(
                        result.started_ms,
                        result.finished_ms,
                        measured,
                    );
                    // What plans and statuses expect: durations of steps that succeeded.
                    if let (Some((action, release)), Some(ms)) =
                        (&facts, ran_ms.filter(|_| outcome.succeeded()))
                    {
                        if let Err(error) = self.store.record_duration(action, release, ms).await {
                            warn!(%error, "could not record the step's duration");
                        }
                    }
                    crate::metrics::metrics().step_result(
                        facts
                            .as_ref()
                            .map_or("unknown", |(action, _)| action.config_key()),
                        &crate::store::rollouts::outcome_text(outcome).unwrap_or_default(),
                        ran_ms,
                    );
                }
                Ok(true)
            }
            Some(agent_message::Body::Hello(_)) => Err(ApiError::Protocol(
                "Hello is only valid as the first message of a session".into(),
            )),
            None => Err(ApiError::Protocol("empty message".into())),
        }
    }
}

/// Most backup files a step result may name: a server with more databases
/// than this is beyond any Password Secure installation, and the rest of
/// the list would only grow the store and the audit entry.
const MAX_BACKUP_FILES: usize = 1000;

/// The backup files a step result names, bounded and printable: what an
/// agent reports is shown to people. A file whose size or time is outside a
/// sane range (`reported`) is left out with a warning: it proves nothing.
fn backup_files(
    host_id: &str,
    result: &tierwise_proto::v1::StepResult,
    now_ms: i64,
) -> Vec<tierwise_common::action::BackupFile> {
    use tierwise_common::reported;
    tierwise_proto::convert::backups_from_wire(result)
        .into_iter()
        .take(MAX_BACKUP_FILES)
        .filter(|file| {
            let plausible = reported::bytes(file.size).is_some()
                && reported::wall_time(file.modified_ms, now_ms).is_some();
            if !plausible {
                warn!(
                    %host_id,
                    size = file.size,
                    modified_ms = file.modified_ms,
                    "a backup file's size or time is not plausible; it is not recorded"
                );
            }
            plausible
        })
        .map(|file| tierwise_common::action::BackupFile {
            database: file
                .database
                .map(|d| printable(&d, 200))
                .filter(|d| !d.is_empty()),
            path: printable(&file.path, 1000),
            ..file
        })
        .collect()
}

/// A session's age limit: `age` ±10 %, so sessions opened together (after a
/// restart) do not all close together.
fn session_age_limit(age: Duration) -> Duration {
    let [a, b] = crate::pki::random_bytes::<2>();
    let unit = f64::from(u16::from_le_bytes([a, b])) / f64::from(u16::MAX);
    age.mul_f64(0.9 + 0.2 * unit)
}

/// What a session does with an agent's messages before the store sees
/// them — the checks and conversions of `Hello`, an inventory report and a
/// step result — for the fuzz targets in `fuzz/`. Not an API.
#[doc(hidden)]
pub mod fuzzing {
    use super::{backup_files, host_report, step_result_record, ApiError};
    use tierwise_common::Inventory;
    use tierwise_proto::v1::{Hello, StepResult};

    /// The controller's clock in these checks: fixed, so a run repeats.
    const NOW_MS: i64 = 1_800_000_000_000;

    /// A hello as a session checks it: the host report, or why it is refused.
    pub fn hello(hello: &Hello) -> Result<String, String> {
        host_report(hello, NOW_MS)
            .map(|report| format!("{report:?}"))
            .map_err(|e| e.to_string())
    }

    /// An inventory report as a session converts it.
    pub fn inventory(wire: &tierwise_proto::v1::Inventory) -> Result<String, String> {
        Inventory::try_from(wire)
            .map(|inventory| format!("{inventory:?}"))
            .map_err(|e| ApiError::InvalidArgument(format!("Inventory: {e}")).to_string())
    }

    /// A step result as a session records it, with the backup files it
    /// names and the duration it would keep (without a dispatch time).
    pub fn step_result(result: &StepResult) -> Result<String, String> {
        let record = step_result_record(result).map_err(|e| e.to_string())?;
        let files = backup_files("fuzz", result, NOW_MS);
        let ran_ms =
            tierwise_common::rollout::step_duration_ms(result.started_ms, result.finished_ms, None);
        Ok(format!("{record:?} {files:?} {ran_ms:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::printable_tail;

    #[test]
    fn output_tails_keep_lines_and_show_control_and_format_characters() {
        let tail = printable_tail("step 1\r\n\tok \u{1b}[2J\u{202e}done\u{200b}\n");
        assert_eq!(tail, "step 1\n\tok \u{fffd}[2J\u{fffd}done\u{fffd}\n");
    }
}
