//! The agent streams connected to this controller process, so commands
//! (today: "report your inventory now") reach the right stream.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use tierwise_proto::v1::ControllerMessage;
use tokio::sync::{mpsc, oneshot};
use tonic::Status;

pub type Outbound = mpsc::Sender<Result<ControllerMessage, Status>>;

#[derive(Debug)]
struct Entry {
    session_id: String,
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
}

/// Connected sessions by host id. At most one per host: a reconnecting agent
/// replaces its old stream, which is then closed.
#[derive(Clone, Debug, Default)]
pub struct Sessions {
    inner: Arc<Mutex<HashMap<String, Entry>>>,
}

impl Sessions {
    /// Registers a stream; returns the receiver that says when and why the
    /// controller wants it closed.
    pub fn register(
        &self,
        host_id: &str,
        installation: &str,
        session_id: &str,
        outbound: Outbound,
    ) -> oneshot::Receiver<CloseReason> {
        let (tx, rx) = oneshot::channel();
        let entry = Entry {
            session_id: session_id.into(),
            installation: installation.into(),
            outbound,
            close: Some(tx),
        };
        let previous = self.lock().insert(host_id.into(), entry);
        if let Some(mut previous) = previous {
            if let Some(close) = previous.close.take() {
                let _ = close.send(CloseReason::Superseded);
            }
        }
        rx
    }

    /// Removes the stream if it is still the host's current one.
    pub fn unregister(&self, host_id: &str, session_id: &str) {
        let mut map = self.lock();
        if map.get(host_id).is_some_and(|e| e.session_id == session_id) {
            map.remove(host_id);
        }
    }

    /// Streams of the hosts that match: one host, one installation, or all.
    pub fn select(
        &self,
        host_id: Option<&str>,
        installation: Option<&str>,
    ) -> Vec<(String, Outbound)> {
        self.lock()
            .iter()
            .filter(|(id, _)| host_id.is_none_or(|wanted| wanted == id.as_str()))
            .filter(|(_, e)| installation.is_none_or(|wanted| wanted == e.installation))
            .map(|(id, e)| (id.clone(), e.outbound.clone()))
            .collect()
    }

    /// Ends every session, for a shutdown: agents see their stream close and
    /// reconnect to whichever controller is up next.
    pub fn close_all(&self) {
        for entry in self.lock().values_mut() {
            if let Some(close) = entry.close.take() {
                let _ = close.send(CloseReason::ShuttingDown);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // The map stays consistent even if a holder panicked mid-way: every
        // operation is a single insert or remove.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
