//! One simulated agent: its own key and certificate (enrolled with a
//! token), its own TLS connection from its own loopback address, and a
//! Session like a real agent's — hello, heartbeats, inventory — that runs
//! the typed steps it is sent: it waits the step's duration, fails at the
//! configured rate, and reports the new version as a real agent would.

use crate::stats::Stats;
use rustls::pki_types::pem::PemObject;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tierwise_common::action::{StepAction, StepOutcome};
use tierwise_common::backoff::Backoff;
use tierwise_common::{
    Check, ClientFacts, Component, Database, Facts, Inventory, ProbedVersion, Role, ServerFacts,
    Version, WebFacts, WebServerKind,
};
use tierwise_proto::convert::command_from_wire;
use tierwise_proto::v1::{
    agent_message, agent_service_client::AgentServiceClient, controller_message, AgentMessage,
    EnrollRequest, Heartbeat, Hello, StepResult,
};
use tierwise_transport::client::{client_config, ControllerAddress, Identity, Trust};
use tokio::sync::mpsc;

/// What one simulated agent plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plays {
    Server,
    Web,
    Client,
}

/// How simulated agents behave.
#[derive(Clone, Debug)]
pub struct Behaviour {
    pub heartbeat: Duration,
    pub step: Duration,
    /// Share of client steps that fail (0.0–1.0).
    pub failure_rate: f64,
    pub installation: String,
    /// Each change asks every agent for `reports` inventory reports at once
    /// (the ingest scenario).
    pub ingest: tokio::sync::watch::Receiver<u64>,
    pub reports: u32,
}

/// An enrolled simulated agent.
#[derive(Clone, Debug)]
pub struct Enrolled {
    pub host_id: String,
    pub plays: Plays,
    pub local: IpAddr,
    pub config: Arc<rustls::ClientConfig>,
}

/// Enrolls one agent: a key, a certificate request, `Enroll` with the token.
pub async fn enroll(
    channel: tonic::transport::Channel,
    ca: &[rustls::pki_types::CertificateDer<'static>],
    token: &str,
    host_id: String,
    plays: Plays,
    local: IpAddr,
    installation: &str,
) -> anyhow::Result<Enrolled> {
    let (key_pem, csr) = tierwise_transport::key_and_request(&host_id)?;
    let answer = AgentServiceClient::new(channel)
        .enroll(EnrollRequest {
            token: token.to_owned(),
            host_id: host_id.clone(),
            installation: installation.to_owned(),
            csr_der: csr,
        })
        .await?
        .into_inner();
    let chain = tierwise_transport::files::certificates_from_pem(answer.certificate_pem.as_bytes())
        .map_err(|e| {
            anyhow::anyhow!(
                "the certificate from the controller: {}",
                e.unwrap_or_default()
            )
        })?;
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key_pem.as_bytes())?;
    let config = client_config(&Trust::Ca(ca.to_vec()), Some(Identity { chain, key }))?;
    Ok(Enrolled {
        host_id,
        plays,
        local,
        config,
    })
}

/// The inventory a simulated host reports at `version`; `variant` changes a
/// client's facts (the ingest scenario's reports are real changes).
fn inventory(plays: Plays, version: Version, databases_at: Version, variant: bool) -> Inventory {
    let component = match plays {
        Plays::Server => Component {
            role: Role::Server,
            version: ProbedVersion::Installed(version),
            facts: Facts::Server(ServerFacts {
                databases: vec![Database {
                    name: "PSDB".into(),
                    active: true,
                    patch_level: Some(databases_at),
                }],
                databases_error: None,
                backup_location: None,
                commands: None,
                web_app_output: None,
                missing_services: Vec::new(),
            }),
        },
        Plays::Web => Component {
            role: Role::Web,
            version: ProbedVersion::Installed(version),
            facts: Facts::Web(WebFacts {
                server_kind: WebServerKind::Apache,
                docroot: "/var/www/passwordsecure".into(),
                websocket: Check::Yes,
                // The site keeps the Web Application of the rollout's target
                // at the host's `web_app` path, so no generation waits.
                packages: Some(crate::TARGET.parse().into_iter().collect()),
            }),
        },
        Plays::Client => Component {
            role: Role::Client,
            version: ProbedVersion::Installed(version),
            facts: Facts::Client(ClientFacts {
                update_check_enabled: if variant { Check::Yes } else { Check::No },
                profiles: Vec::new(),
            }),
        },
    };
    Inventory::new(vec![component]).unwrap_or_default()
}

/// Runs the agent until the process ends: connects (again, after any
/// failure, with backoff and jitter), says hello, heartbeats, runs steps.
pub async fn run(
    agent: Enrolled,
    address: ControllerAddress,
    at: usize,
    behaviour: Arc<Behaviour>,
    start: Version,
    stats: Arc<Stats>,
) {
    let target: Option<Version> = crate::TARGET.parse().ok();
    let mut version = start;
    let mut databases_at = start;
    // Reconnect delays as a real agent's: 0.5–1 s first, doubling, at most a
    // minute, with jitter.
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
    let mut ingest = behaviour.ingest.clone();
    ingest.borrow_and_update();
    let mut variant = false;
    loop {
        stats.attempt();
        let connected = address
            .connect_from(agent.config.clone(), agent.local, |e| {
                e.connect_timeout(Duration::from_secs(10))
                    .http2_keep_alive_interval(Duration::from_secs(30))
            })
            .await;
        let channel = match connected {
            Ok(channel) => channel,
            Err(_) => {
                stats.handshake_failed();
                tokio::time::sleep(backoff.next_delay(fastrand::f64())).await;
                continue;
            }
        };
        let (tx, rx) = mpsc::channel::<AgentMessage>(64);
        let hello = AgentMessage {
            body: Some(agent_message::Body::Hello(Hello {
                host_id: agent.host_id.clone(),
                installation: behaviour.installation.clone(),
                hostname: agent.host_id.clone(),
                os: "swarm".into(),
                agent_version: "swarm".into(),
                heartbeat_seconds: u32::try_from(behaviour.heartbeat.as_secs()).unwrap_or(60),
                inventory: Some((&inventory(agent.plays, version, databases_at, variant)).into()),
                boot_ms: 1,
            })),
        };
        if tx.send(hello).await.is_err() {
            continue;
        }
        let session = AgentServiceClient::new(channel)
            .session(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await;
        let mut inbound = match session {
            Ok(response) => response.into_inner(),
            Err(_) => {
                stats.handshake_failed();
                tokio::time::sleep(backoff.next_delay(fastrand::f64())).await;
                continue;
            }
        };
        // Connected: the first message is the Welcome.
        if !matches!(inbound.message().await, Ok(Some(_))) {
            stats.handshake_failed();
            tokio::time::sleep(backoff.next_delay(fastrand::f64())).await;
            continue;
        }
        backoff.reset();
        stats.connected(at);
        let mut heartbeat = tokio::time::interval_at(
            tokio::time::Instant::now() + behaviour.heartbeat,
            behaviour.heartbeat,
        );
        let (done_tx, mut done_rx) = mpsc::channel::<(String, StepAction, bool)>(16);
        loop {
            tokio::select! {
                _ = heartbeat.tick() => {
                    let beat = AgentMessage { body: Some(agent_message::Body::Heartbeat(Heartbeat {})) };
                    if tx.send(beat).await.is_err() { break; }
                }
                finished = done_rx.recv() => {
                    let Some((id, action, ok)) = finished else { break };
                    if ok {
                        match action {
                            StepAction::InstallComponent { version: to, .. }
                            | StepAction::DeployWebApp { version: to, .. } => {
                                if Some(to) == target && version != to {
                                    stats.updated();
                                }
                                version = to;
                            }
                            StepAction::ReactivateDatabases { version: to } => databases_at = to,
                            _ => {}
                        }
                    }
                    let result = AgentMessage { body: Some(agent_message::Body::StepResult(StepResult {
                        step_id: id,
                        outcome: if ok { StepOutcome::Succeeded } else { StepOutcome::Failed }.into_wire(),
                        has_exit_code: true,
                        exit_code: if ok { 0 } else { 1 },
                        output_tail: String::new(),
                        reason: if ok { String::new() } else { "simulated failure".into() },
                        started_ms: 0,
                        finished_ms: 0,
                        backup: None,
                        backups: Vec::new(),
                    })) };
                    let report = AgentMessage { body: Some(agent_message::Body::Inventory(
                        (&inventory(agent.plays, version, databases_at, variant)).into(),
                    )) };
                    stats.result_sent();
                    if tx.send(report).await.is_err() || tx.send(result).await.is_err() { break; }
                }
                Ok(()) = ingest.changed() => {
                    ingest.borrow_and_update();
                    let mut sent = true;
                    for _ in 0..behaviour.reports {
                        variant = !variant;
                        let report = AgentMessage { body: Some(agent_message::Body::Inventory(
                            (&inventory(agent.plays, version, databases_at, variant)).into(),
                        )) };
                        if tx.send(report).await.is_err() { sent = false; break; }
                    }
                    if !sent { break; }
                }
                message = inbound.message() => {
                    let Ok(Some(message)) = message else { break };
                    if let Some(controller_message::Body::Command(command)) = message.body {
                        stats.command_received(command.dispatched_ms);
                        let Ok((id, action)) = command_from_wire(&command) else { continue };
                        // Only clients fail: a failed server step halts
                        // the rollout by design.
                        let fail = agent.plays == Plays::Client && fastrand::f64() < behaviour.failure_rate;
                        let (done, step) = (done_tx.clone(), behaviour.step);
                        tokio::spawn(async move {
                            tokio::time::sleep(step).await;
                            let _ = done.send((id, action, !fail)).await;
                        });
                    }
                }
            }
        }
        stats.disconnected(at);
        tokio::time::sleep(backoff.next_delay(fastrand::f64())).await;
    }
}

/// The wire form of an outcome.
trait IntoWire {
    fn into_wire(self) -> i32;
}

impl IntoWire for StepOutcome {
    fn into_wire(self) -> i32 {
        tierwise_proto::v1::StepOutcome::from(self).into()
    }
}
