//! The agent's side of the `Session` stream: connect, say hello with the full
//! inventory, then heartbeats and inventory changes up, commands down.
//! Reconnects with backoff forever; the controller may be down for a while.

use crate::backoff::Backoff;
use crate::config::Settings;
use crate::host;
use crate::identity::Identity;
use crate::steps::journal::StepReport;
use crate::steps::StepRunner;
use crate::watcher::InventoryWatcher;
use std::time::{Duration, Instant};
use tierwise_proto::v1::{
    agent_message, agent_service_client::AgentServiceClient, controller_message, AgentMessage,
    Heartbeat, Hello,
};
use tierwise_proto::{MAX_AGENT_MESSAGE_BYTES, MAX_CONTROLLER_MESSAGE_BYTES};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tracing::{debug, info, warn};

/// A session that lasted this long was healthy: the next reconnect starts
/// from the shortest delay again.
const HEALTHY_SESSION: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("cannot connect to the controller: {}", tierwise_runtime::report::error_chain(.0))]
    Connect(#[source] tonic::transport::Error),
    #[error("the controller refused the session: {}", .0.message())]
    Refused(tonic::Status),
    #[error("the session broke: {} ({:?})", .0.message(), .0.code())]
    Stream(tonic::Status),
    #[error("the controller closed the session")]
    Closed,
}

/// Runs sessions until the process is asked to stop. Before each reconnect
/// it notifies `reconnecting` (the agent re-reads its configuration then).
pub async fn run_forever(
    settings: Settings,
    watcher: InventoryWatcher,
    mut steps: StepRunner,
    mut identity: Identity,
    reconnecting: std::sync::Arc<tokio::sync::Notify>,
) {
    let mut backoff = Backoff::new(Duration::from_secs(1), settings.reconnect_max);
    let mut watcher = watcher;
    loop {
        let started = Instant::now();
        let error = match run_session(&settings, &mut watcher, &mut steps, &mut identity).await {
            Ok(Ended::Renewed) => {
                info!("reconnecting with the renewed certificate");
                backoff.reset();
                continue;
            }
            Err(error) => error,
        };
        if started.elapsed() >= HEALTHY_SESSION {
            backoff.reset();
        }
        let delay = backoff.next_delay(fastrand::f64());
        match error {
            SessionError::Closed => {
                info!(
                    retry_in_ms = delay.as_millis() as u64,
                    "session ended; reconnecting"
                )
            }
            error => {
                warn!(%error, retry_in_ms = delay.as_millis() as u64, "no session with the controller")
            }
        }
        reconnecting.notify_one();
        tokio::time::sleep(delay).await;
    }
}

/// How a session ended without an error.
#[derive(Debug, PartialEq, Eq)]
enum Ended {
    /// The certificate was renewed: reconnect with it at once.
    Renewed,
}

#[tracing::instrument(name = "session", skip_all, fields(controller = %settings.controller))]
async fn run_session(
    settings: &Settings,
    watcher: &mut InventoryWatcher,
    steps: &mut StepRunner,
    identity: &mut Identity,
) -> Result<Ended, SessionError> {
    identity.mark_seen();
    let credentials = identity.current();
    let channel = crate::identity::connect(&settings.controller, credentials.config.clone(), |e| {
        e.tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(10))
            .keep_alive_while_idle(true)
    })
    .await
    .map_err(SessionError::Connect)?;
    let mut client = AgentServiceClient::new(channel)
        .max_decoding_message_size(MAX_CONTROLLER_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_AGENT_MESSAGE_BYTES);

    let (outbound, receiver) = mpsc::channel::<AgentMessage>(16);
    let inventory = watcher.inventory.borrow_and_update().clone();
    let hello = AgentMessage {
        body: Some(agent_message::Body::Hello(Hello {
            host_id: settings.host_id.clone(),
            installation: settings.installation.clone(),
            hostname: host::hostname(),
            os: host::os_description(),
            agent_version: env!("CARGO_PKG_VERSION").to_owned(),
            heartbeat_seconds: u32::try_from(settings.heartbeat.as_secs()).unwrap_or(u32::MAX),
            inventory: Some((&inventory).into()),
            boot_ms: host::boot_ms().unwrap_or(0),
        })),
    };
    // The channel is new and empty: this cannot fail for lack of room.
    let _ = outbound.try_send(hello);
    let mut inbound = client
        .session(ReceiverStream::new(receiver))
        .await
        .map_err(SessionError::Refused)?
        .into_inner();

    let mut heartbeat = tokio::time::interval(settings.heartbeat);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    heartbeat.tick().await;
    loop {
        tokio::select! {
            () = identity.changed() => return Ok(Ended::Renewed),
            _ = heartbeat.tick() => {
                let message = AgentMessage { body: Some(agent_message::Body::Heartbeat(Heartbeat {})) };
                if outbound.send(message).await.is_err() {
                    return Err(SessionError::Closed);
                }
            }
            changed = watcher.inventory.changed() => {
                if changed.is_err() {
                    return Err(SessionError::Closed);
                }
                let inventory = watcher.inventory.borrow_and_update().clone();
                let message = AgentMessage { body: Some(agent_message::Body::Inventory((&inventory).into())) };
                if outbound.send(message).await.is_err() {
                    return Err(SessionError::Closed);
                }
                info!("inventory reported");
            }
            Some((step_id, message)) = steps.progress.recv() => {
                let message = AgentMessage { body: Some(agent_message::Body::StepProgress(tierwise_proto::v1::StepProgress { step_id, message })) };
                if outbound.send(message).await.is_err() {
                    return Err(SessionError::Closed);
                }
            }
            Some(report) = steps.reports.recv() => {
                let message = AgentMessage { body: Some(agent_message::Body::StepResult(step_result(&report))) };
                if outbound.send(message).await.is_err() {
                    return Err(SessionError::Closed);
                }
            }
            message = inbound.message() => {
                let Some(message) = message.map_err(SessionError::Stream)? else {
                    return Err(SessionError::Closed);
                };
                match message.body {
                    Some(controller_message::Body::Welcome(welcome)) => {
                        info!(session = %welcome.session_id, "connected");
                    }
                    Some(controller_message::Body::ReportInventory(_)) => {
                        debug!("the controller asked for the inventory");
                        // A full queue means a probe is already pending.
                        let _ = watcher.refresh.try_send(());
                    }
                    Some(controller_message::Body::Command(command)) => {
                        match tierwise_proto::convert::command_from_wire(&command) {
                            Ok(step) => {
                                debug!(step_id = %command.step_id, dispatched_ms = command.dispatched_ms, "step received");
                                if steps.commands.send(step).await.is_err() {
                                    return Err(SessionError::Closed);
                                }
                            }
                            Err(why) => warn!(step_id = %command.step_id, %why, "ignoring a command this agent cannot read"),
                        }
                    }
                    None => warn!("ignoring a message this agent does not understand; is the controller newer?"),
                }
            }
        }
    }
}

fn step_result(report: &StepReport) -> tierwise_proto::v1::StepResult {
    let (backup, backups) = tierwise_proto::convert::backups_to_wire(&report.backups);
    tierwise_proto::v1::StepResult {
        step_id: report.step_id.clone(),
        outcome: tierwise_proto::v1::StepOutcome::from(report.outcome).into(),
        has_exit_code: report.exit_code.is_some(),
        exit_code: report.exit_code.unwrap_or_default(),
        output_tail: report.output_tail.clone(),
        reason: report.reason.clone(),
        started_ms: report.started_ms,
        finished_ms: report.finished_ms,
        backup,
        backups,
    }
}
