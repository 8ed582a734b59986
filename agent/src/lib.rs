//! The Tierwise agent: reports what Password Secure components a host runs
//! and executes the typed update steps the controller sends.
//!
//! The agent must never run text received from the controller as a command:
//! everything it executes is defined in its own local configuration. It must
//! also never change anything while probing: probes only read.

#[cfg(windows)]
pub mod acl;
pub mod app;
pub use tierwise_common::backoff;
pub mod config;
#[cfg(windows)]
pub mod eventlog;
pub mod health;
pub mod host;
pub mod identity;
pub mod logs;
pub mod policy;
pub mod probe;
pub mod service;
pub mod session;
pub mod steps;
pub mod watcher;
pub mod web_output;
