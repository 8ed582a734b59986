//! Process plumbing that the controller and the agent share, so both binaries
//! behave alike: one logging setup and one notion of "asked to stop".
//!
//! Nothing here knows about Password Secure or the protocol.

pub mod logging;
pub mod report;
pub mod shutdown;
