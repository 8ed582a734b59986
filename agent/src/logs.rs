//! The agent's logging: stderr in console mode; as a service, a size-rolled
//! file under `%ProgramData%\Tierwise\Agent\logs` (a service has no
//! console), and on Windows warnings and errors also in the Event Log. The
//! level can change while the agent runs (policy `LogLevel`); `RUST_LOG`,
//! when set, wins.
//!
//! `RUST_LOG` takes a level and `target=level` pairs (`debug`,
//! `warn,tierwise_agent=debug`), read by `tracing_subscriber`'s `Targets`
//! filter: span and field filters (`[span{field=value}]`) and regular
//! expressions are not supported, which keeps a regex engine out of the
//! agent (docs/agent-size.md).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tierwise_runtime::logging::LogFormat;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, Layer, Registry};

/// A log file is rolled when it passes this size.
pub const ROLL_BYTES: u64 = 10 * 1024 * 1024;
/// Rolled files kept beside the current one (`agent.log.1` … `.5`).
pub const KEEP_ROLLED: usize = 5;

/// Where the logs go.
#[derive(Clone, Debug)]
pub enum Sink {
    Stderr,
    /// Files in this directory, and the Event Log on Windows.
    Service(PathBuf),
}

/// Changes the level of a running agent.
#[derive(Clone)]
pub struct LogControl {
    set: Arc<dyn Fn(&str) + Send + Sync>,
    from_env: bool,
}

impl std::fmt::Debug for LogControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogControl")
            .field("from_env", &self.from_env)
            .finish_non_exhaustive()
    }
}

impl LogControl {
    /// Applies `level` (`None`: `info`) unless a readable `RUST_LOG` is set.
    pub fn set_level(&self, level: Option<&str>) {
        if !self.from_env {
            (self.set)(level.unwrap_or("info"));
        }
    }
}

/// Installs the subscriber. A second call keeps the first (tests).
pub fn init(sink: &Sink, format: LogFormat, level: Option<&str>) -> LogControl {
    let rust_log = std::env::var("RUST_LOG").ok();
    let from_env = rust_log.as_deref().and_then(parse_filter);
    let unreadable = rust_log.is_some() && from_env.is_none();
    let filter = from_env
        .clone()
        .unwrap_or_else(|| level_filter(level.unwrap_or("info")));
    let output: Box<dyn Layer<Registry> + Send + Sync> = match sink {
        Sink::Stderr => {
            let layer = tracing_subscriber::fmt::layer()
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_writer(std::io::stderr);
            match format {
                LogFormat::Pretty => layer.with_target(false).boxed(),
                LogFormat::Json => layer.json().flatten_event(true).boxed(),
            }
        }
        Sink::Service(dir) => {
            let file = RollingFile::open(dir, "agent.log");
            let layer = tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(move || file.clone());
            match format {
                LogFormat::Pretty => layer.with_target(false).boxed(),
                LogFormat::Json => layer.json().flatten_event(true).boxed(),
            }
        }
    };
    #[cfg(windows)]
    let event_log = matches!(sink, Sink::Service(_)).then(crate::eventlog::EventLogLayer::open);
    #[cfg(not(windows))]
    let event_log: Option<tracing_subscriber::layer::Identity> = None;
    let subscriber = Registry::default().with(output).with(event_log);
    let (filter, handle) = reload::Layer::new(filter);
    let _ = subscriber.with(filter).try_init();
    if unreadable {
        tracing::warn!(
            rust_log = rust_log.as_deref().unwrap_or_default(),
            "RUST_LOG is not a level or a list of target=level pairs; the configured level applies"
        );
    }
    LogControl {
        set: Arc::new(move |level: &str| {
            let _ = handle.modify(|filter| *filter = level_filter(level));
        }),
        from_env: from_env.is_some(),
    }
}

/// The filter for `RUST_LOG`-style directives, or `None` when one of them is
/// malformed (the configured level then applies).
fn parse_filter(directives: &str) -> Option<Targets> {
    directives.trim().parse().ok()
}

/// The filter for a level name (validated by the configuration); `info` for
/// anything else.
fn level_filter(level: &str) -> Targets {
    Targets::new().with_default(level.parse().unwrap_or(LevelFilter::INFO))
}

/// An append-only log file that is renamed to `NAME.1` (and older ones one
/// further) when it passes `ROLL_BYTES`. Writing never fails the agent: a
/// log that cannot be written is dropped.
#[derive(Clone, Debug)]
pub struct RollingFile {
    inner: Arc<Mutex<Rolling>>,
}

#[derive(Debug)]
struct Rolling {
    path: PathBuf,
    file: Option<std::fs::File>,
    size: u64,
    limit: u64,
}

impl RollingFile {
    pub fn open(dir: &Path, name: &str) -> Self {
        Self::with_limit(dir, name, ROLL_BYTES)
    }

    pub fn with_limit(dir: &Path, name: &str, limit: u64) -> Self {
        let _ = std::fs::create_dir_all(dir);
        let path = dir.join(name);
        let (file, size) = open_append(&path);
        Self {
            inner: Arc::new(Mutex::new(Rolling {
                path,
                file,
                size,
                limit,
            })),
        }
    }
}

fn open_append(path: &Path) -> (Option<std::fs::File>, u64) {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .ok();
    let size = file
        .as_ref()
        .and_then(|f| f.metadata().ok())
        .map_or(0, |m| m.len());
    (file, size)
}

impl Rolling {
    fn roll(&mut self) {
        self.file = None;
        let numbered = |n: usize| {
            let mut name = self.path.clone().into_os_string();
            name.push(format!(".{n}"));
            PathBuf::from(name)
        };
        let _ = std::fs::remove_file(numbered(KEEP_ROLLED));
        for n in (1..KEEP_ROLLED).rev() {
            let _ = std::fs::rename(numbered(n), numbered(n + 1));
        }
        let _ = std::fs::rename(&self.path, numbered(1));
        let (file, size) = open_append(&self.path);
        self.file = file;
        self.size = size;
    }
}

impl Write for RollingFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut rolling = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if rolling.size >= rolling.limit {
            rolling.roll();
        }
        if let Some(file) = rolling.file.as_mut() {
            if file.write_all(buf).is_ok() {
                rolling.size += buf.len() as u64;
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let mut rolling = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match rolling.file.as_mut() {
            Some(file) => file.flush(),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_roll_at_the_limit_and_old_ones_are_dropped() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut log = RollingFile::with_limit(dir.path(), "agent.log", 100);
        for round in 0..(KEEP_ROLLED + 3) {
            log.write_all(format!("{round:03}{}\n", "x".repeat(96)).as_bytes())
                .expect("write");
        }
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let mut expected = vec!["agent.log".to_owned()];
        expected.extend((1..=KEEP_ROLLED).map(|n| format!("agent.log.{n}")));
        assert_eq!(names, expected);
        let newest = std::fs::read_to_string(dir.path().join("agent.log")).expect("read");
        assert!(
            newest.starts_with(&format!("{:03}", KEEP_ROLLED + 2)),
            "{newest}"
        );
        let previous = std::fs::read_to_string(dir.path().join("agent.log.1")).expect("read");
        assert!(
            previous.starts_with(&format!("{:03}", KEEP_ROLLED + 1)),
            "{previous}"
        );
    }

    #[test]
    fn rust_log_directives_set_levels_per_target() {
        use tracing::Level;
        let filter = parse_filter("warn,tierwise_agent::session=debug").expect("valid");
        assert!(filter.would_enable("tierwise_agent::session", &Level::DEBUG));
        assert!(!filter.would_enable("tierwise_agent::session", &Level::TRACE));
        assert!(filter.would_enable("hyper", &Level::WARN));
        assert!(!filter.would_enable("hyper", &Level::INFO));
        assert!(parse_filter("off")
            .expect("valid")
            .would_enable("x", &Level::ERROR)
            .eq(&false));
    }

    #[test]
    fn a_malformed_rust_log_is_refused_and_levels_fall_back_to_info() {
        use tracing::Level;
        assert!(parse_filter("[span{field=1}]=debug").is_none());
        assert!(parse_filter("tierwise_agent=loud").is_none());
        let debug = level_filter("debug");
        assert!(debug.would_enable("tierwise_agent", &Level::DEBUG));
        assert!(!debug.would_enable("tierwise_agent", &Level::TRACE));
        let fallback = level_filter("loud");
        assert!(fallback.would_enable("tierwise_agent", &Level::INFO));
        assert!(!fallback.would_enable("tierwise_agent", &Level::DEBUG));
    }
}
