//! The agent streams connected to this controller process, so commands
//! (today: "report your inventory now") reach the right stream.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use tierwise_proto::v1::ControllerMessage;
use tokio::sync::{mpsc, oneshot, OwnedMutexGuard};
use tonic::Status;

/// One message for an agent's stream, boxed: a channel allocates its
/// slots 32 at a time, so every session's queue costs 32 pointers instead
/// of 32 messages while it is almost always empty.
pub type Outgoing = Box<Result<ControllerMessage, Status>>;

pub type Outbound = mpsc::Sender<Outgoing>;

#[derive(Debug)]
struct Entry {
    session_id: String,
    /// The peer's IP address, to notice two machines sharing a host id.
    peer_ip: String,
    installation: String,
    outbound: Outbound,
    /// Tells the session task to end, and why.
    close: Option<oneshot::Sender<CloseReason>>,
}

/// Why the controller ends a session from its side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// A newer stream of the same host took over.
    Superseded,
    /// The controller is shutting down.
    ShuttingDown,
    /// An administrator revoked the host's certificate.
    Revoked,
}

#[derive(Debug, Default)]
struct Inner {
    entries: Mutex<HashMap<String, Entry>>,
    /// One lock per host id, held while a hello is recorded and registered,
    /// so two streams of one host cannot interleave those two steps.
    hello_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    closing: AtomicBool,
}

/// Connected sessions by host id. At most one per host: a reconnecting agent
/// replaces its old stream, which is then closed.
#[derive(Clone, Debug, Default)]
pub struct Sessions {
    inner: Arc<Inner>,
}

impl Sessions {
    /// Serialises the hellos of one host (store write + registration).
    pub async fn hello_lock(&self, host_id: &str) -> OwnedMutexGuard<()> {
        let lock = self
            .inner
            .hello_locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(host_id.to_owned())
            .or_default()
            .clone();
        lock.lock_owned().await
    }

    /// Registers a stream; returns the receiver that says when and why the
    /// controller wants it closed (during shutdown it fires at once), and the
    /// IP address of the stream it replaced when that came from another
    /// machine.
    pub fn register(
        &self,
        host_id: &str,
        installation: &str,
        session_id: &str,
        peer_ip: &str,
        outbound: Outbound,
    ) -> (oneshot::Receiver<CloseReason>, Option<String>) {
        let (tx, rx) = oneshot::channel();
        let mut entries = self.entries();
        if self.inner.closing.load(Ordering::SeqCst) {
            let _ = tx.send(CloseReason::ShuttingDown);
            return (rx, None);
        }
        let entry = Entry {
            session_id: session_id.into(),
            peer_ip: peer_ip.into(),
            installation: installation.into(),
            outbound,
            close: Some(tx),
        };
        let mut other_machine = None;
        if let Some(mut previous) = entries.insert(host_id.into(), entry) {
            if let Some(close) = previous.close.take() {
                let _ = close.send(CloseReason::Superseded);
            }
            if previous.peer_ip != peer_ip {
                other_machine = Some(previous.peer_ip);
            }
        }
        (rx, other_machine)
    }

    /// Removes the stream if it is still the host's current one.
    pub fn unregister(&self, host_id: &str, session_id: &str) {
        let mut entries = self.entries();
        if entries
            .get(host_id)
            .is_some_and(|e| e.session_id == session_id)
        {
            entries.remove(host_id);
        }
    }

    /// The stream of one host, if it is connected here.
    pub fn outbound(&self, host_id: &str) -> Option<Outbound> {
        self.entries().get(host_id).map(|e| e.outbound.clone())
    }

    /// Streams of the hosts that match: one host, one installation, or all.
    pub fn select(
        &self,
        host_id: Option<&str>,
        installation: Option<&str>,
    ) -> Vec<(String, Outbound)> {
        self.entries()
            .iter()
            .filter(|(id, _)| host_id.is_none_or(|wanted| wanted == id.as_str()))
            .filter(|(_, e)| installation.is_none_or(|wanted| wanted == e.installation))
            .map(|(id, e)| (id.clone(), e.outbound.clone()))
            .collect()
    }

    /// Ends the host's session, if it has one; returns whether it had.
    pub fn close_host(&self, host_id: &str, reason: CloseReason) -> bool {
        let mut entries = self.entries();
        match entries.get_mut(host_id).and_then(|e| e.close.take()) {
            Some(close) => close.send(reason).is_ok(),
            None => false,
        }
    }

    /// Ends the host's session if it is still `session_id` (a newer one of
    /// the same host is left alone); returns whether it was.
    pub fn close_session(&self, host_id: &str, session_id: &str, reason: CloseReason) -> bool {
        let mut entries = self.entries();
        match entries
            .get_mut(host_id)
            .filter(|e| e.session_id == session_id)
            .and_then(|e| e.close.take())
        {
            Some(close) => close.send(reason).is_ok(),
            None => false,
        }
    }

    /// Ends every session and refuses new ones, for a shutdown: agents see
    /// their stream close and reconnect to whichever controller is up next.
    pub fn close_all(&self) {
        let mut entries = self.entries();
        self.inner.closing.store(true, Ordering::SeqCst);
        for entry in entries.values_mut() {
            if let Some(close) = entry.close.take() {
                let _ = close.send(CloseReason::ShuttingDown);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.entries().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // The map stays consistent even if a holder panicked mid-way: every
        // operation is a single insert or remove.
        self.inner
            .entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl crate::delivery::Deliver for Sessions {
    fn deliver(&self, delivery: &tierwise_common::rollout::Delivery) -> bool {
        let Some(outbound) = self.outbound(&delivery.host_id) else {
            return false;
        };
        let mut command =
            tierwise_proto::convert::command_to_wire(&delivery.dispatch_id, &delivery.action);
        command.dispatched_ms = delivery.dispatched_ms;
        let message = ControllerMessage {
            body: Some(tierwise_proto::v1::controller_message::Body::Command(
                command,
            )),
        };
        let sent = outbound.try_send(Box::new(Ok(message)));
        if sent.is_ok() {
            crate::metrics::metrics()
                .dispatched(tierwise_runtime::clock::now_ms() - delivery.dispatched_ms);
        }
        if sent.is_err() {
            tracing::warn!(host_id = %delivery.host_id, dispatch_id = %delivery.dispatch_id,
                "the agent's queue is full; the step goes out when it reconnects");
            return false;
        }
        tracing::debug!(host_id = %delivery.host_id, dispatch_id = %delivery.dispatch_id, "delivered");
        true
    }

    fn refresh(&self, host_id: &str) -> bool {
        let Some(outbound) = self.outbound(host_id) else {
            return false;
        };
        let message = ControllerMessage {
            body: Some(
                tierwise_proto::v1::controller_message::Body::ReportInventory(
                    tierwise_proto::v1::ReportInventory {},
                ),
            ),
        };
        // A full queue means the agent is not reading; it reports on its own
        // schedule anyway.
        outbound.try_send(Box::new(Ok(message))).is_ok()
    }

    fn queued(&self) -> usize {
        self.entries()
            .values()
            .map(|e| e.outbound.max_capacity() - e.outbound.capacity())
            .sum()
    }

    fn close(&self, host_id: &str) -> bool {
        self.close_host(host_id, CloseReason::Revoked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::Deliver;
    use tierwise_common::action::StepAction;
    use tierwise_common::rollout::Delivery;

    fn stream() -> (Outbound, mpsc::Receiver<Outgoing>) {
        mpsc::channel(4)
    }

    #[test]
    fn one_session_per_host_and_a_newer_one_wins() {
        let sessions = Sessions::default();
        let (first, _first_rx) = stream();
        let (mut closed, other) = sessions.register("cl-1", "prod", "s1", "10.0.0.5", first);
        assert_eq!(other, None);
        let (second, mut second_rx) = stream();
        let (_open, other) = sessions.register("cl-1", "prod", "s2", "10.0.0.9", second);
        assert_eq!(closed.try_recv(), Ok(CloseReason::Superseded));
        assert_eq!(
            other.as_deref(),
            Some("10.0.0.5"),
            "two machines share a host id"
        );
        // The old stream ending does not remove the new one.
        sessions.unregister("cl-1", "s1");
        assert_eq!(sessions.len(), 1);
        // Deliveries reach the current stream as typed commands.
        let delivery = Delivery {
            host_id: "cl-1".into(),
            dispatch_id: "r1-4.1.ab12".into(),
            action: StepAction::Reprobe,
            dispatched_ms: 1_800_000_000_000,
        };
        assert!(sessions.deliver(&delivery));
        let sent = (*second_rx.try_recv().unwrap()).unwrap();
        assert!(matches!(
            sent.body,
            Some(tierwise_proto::v1::controller_message::Body::Command(ref c))
                if c.step_id == "r1-4.1.ab12" && c.dispatched_ms == 1_800_000_000_000
        ));
        assert!(!sessions.deliver(&Delivery {
            host_id: "cl-2".into(),
            ..delivery
        }));
        sessions.unregister("cl-1", "s2");
        assert!(sessions.is_empty());
    }

    #[test]
    fn revocation_and_shutdown_close_sessions() {
        let sessions = Sessions::default();
        let (a, _a_rx) = stream();
        let (mut a_closed, _) = sessions.register("cl-1", "prod", "s1", "10.0.0.5", a);
        let (b, _b_rx) = stream();
        let (mut b_closed, _) = sessions.register("cl-2", "test", "s2", "10.0.0.6", b);
        assert_eq!(sessions.select(None, Some("test")).len(), 1);
        assert!(sessions.close_host("cl-1", CloseReason::Revoked));
        assert_eq!(a_closed.try_recv(), Ok(CloseReason::Revoked));
        assert!(
            !sessions.close_host("cl-1", CloseReason::Revoked),
            "closed once"
        );
        sessions.close_all();
        assert_eq!(b_closed.try_recv(), Ok(CloseReason::ShuttingDown));
        // A stream that arrives during shutdown is closed at once.
        let (c, _c_rx) = stream();
        let (mut c_closed, _) = sessions.register("cl-3", "prod", "s3", "10.0.0.7", c);
        assert_eq!(c_closed.try_recv(), Ok(CloseReason::ShuttingDown));
    }
}
