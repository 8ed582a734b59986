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

/// Whether the peer has already closed its side of `tcp` (the kernel saw
/// its FIN): a connection that waited in the listen queue past its
/// client's timeout. Its ClientHello is still in the buffer, and a
/// handshake with it would be a key exchange and a signature for nobody.
/// Known on Linux only (elsewhere: false, and the handshake finds out).
pub fn peer_has_closed(tcp: &TcpStream) -> bool {
    tcp_state::close_wait(tcp)
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
mod tcp_state {
    use std::os::fd::AsRawFd;
    use tokio::net::TcpStream;

    /// `TCP_CLOSE_WAIT` in Linux's `tcp_states.h`: the peer's FIN came.
    const TCP_CLOSE_WAIT: u8 = 8;

    pub fn close_wait(tcp: &TcpStream) -> bool {
        // `struct tcp_info` begins with `tcpi_state`; the kernel copies as
        // much of the struct as the buffer holds.
        let mut info = [0u8; 8];
        let mut len = libc::socklen_t::try_from(info.len()).unwrap_or(0);
        // SAFETY: getsockopt writes at most `len` bytes into `info`, which
        // we own, and the descriptor is open for the borrow's duration.
        let done = unsafe {
            libc::getsockopt(
                tcp.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_INFO,
                info.as_mut_ptr().cast(),
                &mut len,
            )
        };
        done == 0 && len >= 1 && info[0] == TCP_CLOSE_WAIT
    }
}

#[cfg(not(target_os = "linux"))]
mod tcp_state {
    pub fn close_wait(_: &tokio::net::TcpStream) -> bool {
        false
    }
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

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// A peer that sent its first bytes and closed is seen as gone before
    /// anything is read; one still there is not.
    #[tokio::test]
    async fn a_peer_that_closed_while_queued_is_seen_as_gone() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut staying = TcpStream::connect(addr).await.unwrap();
        staying.write_all(b"hello").await.unwrap();
        let (kept, _) = listener.accept().await.unwrap();
        let mut leaving = TcpStream::connect(addr).await.unwrap();
        leaving.write_all(b"hello").await.unwrap();
        drop(leaving);
        let (gone, _) = listener.accept().await.unwrap();
        // The FIN arrives with or just after the bytes.
        for _ in 0..100 {
            if peer_has_closed(&gone) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(peer_has_closed(&gone));
        assert!(!peer_has_closed(&kept));
        drop(staying);
    }
}
