//! Logging setup: human-readable text on a terminal, one JSON object per line
//! for log collectors. Verbosity comes from `RUST_LOG` (default `info`).
//!
//! Logs go to stderr; stdout belongs to command output (tables, JSON).

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Readable text for people.
    #[default]
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Installs the global subscriber. `default_directive` applies when `RUST_LOG`
/// is unset (e.g. `"info"`, or `"warn"` for CLI commands).
pub fn init(format: LogFormat, default_directive: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_directive));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    // A second call (tests, the demo starting an embedded controller) keeps
    // the first subscriber; that is not an error.
    let _ = match format {
        LogFormat::Pretty => builder.with_target(false).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
