//! Notifications: which events a rollout's change of state makes, the
//! versioned JSON payload they carry, how a request is signed, how long a
//! failed delivery is retried, and the chat formats. The controller stores
//! the events in its outbox in the transaction that changes the rollout,
//! and sends them later; everything here is pure.

mod event;
mod format;
mod payload;
mod retry;
mod sign;
mod subscription;

pub use event::{events_for, host_offline_event, EventKind, HostFact, RolloutFacts};
pub use format::{render, Format};
pub use payload::{
    bounded_body, Payload, PayloadHost, PayloadRollout, MAX_BODY_BYTES, PAYLOAD_VERSION,
};
pub use retry::{next_attempt, RetryVerdict, GIVE_UP_AFTER_MS};
pub use sign::{sign, signature_header, SIGNATURE_HEADER, TIMESTAMP_HEADER};
pub use subscription::{parse_events, EventFilter, Subscription, SubscriptionError};
