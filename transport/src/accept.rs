//! Accepting connections when the process runs short of open files: the
//! accept loops back off (10 ms doubling to 1 s) instead of spinning, and
//! say so once per burst, not once per attempt. And the open-file limit
//! itself, raised to what the system allows at start.

use crate::slots::{Holder, Slot, Slots};
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, info, warn};

const FIRST_PAUSE: Duration = Duration::from_millis(10);
const LONGEST_PAUSE: Duration = Duration::from_secs(1);

/// An accept loop's failures in a row.
#[derive(Debug)]
pub struct Acceptor {
    listener: TcpListener,
    /// Which listener, for the log.
    name: &'static str,
    failures: u64,
    since: Option<Instant>,
    pause: Duration,
}

impl Acceptor {
    pub fn new(listener: TcpListener, name: &'static str) -> Self {
        Self {
            listener,
            name,
            failures: 0,
            since: None,
            pause: FIRST_PAUSE,
        }
    }

    /// The next connection that gets a slot of `slots` for its source
    /// address: waits while the listener's evicted sockets are still
    /// closing, accepts, and closes at once a connection whose address (or
    /// the listener) is full and has nothing to evict.
    pub async fn admit(&mut self, slots: &Slots) -> (TcpStream, SocketAddr, Slot) {
        loop {
            slots.wait_for_room().await;
            let (tcp, peer) = self.accept().await;
            match slots.take(Holder::address(peer.ip())) {
                Ok(slot) => return (tcp, peer, slot),
                Err(refused) => {
                    debug!(listener = self.name, %peer, %refused, "connection closed");
                }
            }
        }
    }

    /// The next connection. Failures (out of open files, mostly) are
    /// waited out with a growing pause; the first of a burst is logged, and
    /// the end of the burst with how many there were.
    pub async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            match self.listener.accept().await {
                Ok(pair) => {
                    if let Some(since) = self.since.take() {
                        info!(
                            listener = self.name,
                            failures = self.failures,
                            seconds = since.elapsed().as_secs_f64(),
                            "accepting connections works again"
                        );
                    }
                    self.failures = 0;
                    self.pause = FIRST_PAUSE;
                    return pair;
                }
                Err(error) => {
                    if self.since.is_none() {
                        self.since = Some(Instant::now());
                        warn!(
                            listener = self.name,
                            %error,
                            hint = hint(&error),
                            "accepting a connection failed; retrying less often until it works (said once)"
                        );
                    }
                    self.failures += 1;
                    tokio::time::sleep(self.pause).await;
                    self.pause = (self.pause * 2).min(LONGEST_PAUSE);
                }
            }
        }
    }
}

fn hint(error: &io::Error) -> &'static str {
    // EMFILE (24) and ENFILE (23) on Linux and the BSDs.
    match error.raw_os_error() {
        Some(23 | 24) => "out of open files: raise LimitNOFILE (systemd) or `ulimit -n`",
        _ => "",
    }
}

/// The files this process may open (its soft limit), raised first to the
/// hard limit; `None` where there is no such limit (Windows).
pub fn raise_open_files() -> Option<u64> {
    imp::raise()
}

#[cfg(unix)]
#[allow(unsafe_code)]
mod imp {
    use tracing::{info, warn};

    // `rlim_t` is not u64 on every Unix.
    #[allow(clippy::useless_conversion)]
    pub fn raise() -> Option<u64> {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into the struct we own.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
            warn!(error = %std::io::Error::last_os_error(), "cannot read the open-file limit");
            return None;
        }
        let before = limit.rlim_cur;
        if limit.rlim_cur < limit.rlim_max {
            let mut raised = limit;
            raised.rlim_cur = limit.rlim_max;
            // SAFETY: setrlimit only reads the struct.
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
                limit = raised;
            } else {
                warn!(error = %std::io::Error::last_os_error(), soft = before, hard = limit.rlim_max, "cannot raise the open-file limit to the hard limit");
            }
        }
        let soft = u64::try_from(limit.rlim_cur).unwrap_or(u64::MAX);
        info!(
            open_files = soft,
            was = u64::try_from(before).unwrap_or(u64::MAX),
            "open-file limit (soft raised to hard)"
        );
        Some(soft)
    }
}

#[cfg(not(unix))]
mod imp {
    pub fn raise() -> Option<u64> {
        None
    }
}
