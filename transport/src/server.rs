//! The controller's side: its rustls configuration (client certificates
//! optional, verified against its CA when presented) and the accept loops of
//! its gRPC listeners. Each connection holds a slot (per address, per client
//! certificate and in total, see [`crate::slots`]); each handshake runs in
//! its own task with a deadline; a connection without a client certificate
//! is closed once idle — so a peer that opens connections and stalls cannot
//! keep anyone else out, nor use up the process's open files.

use crate::accept::Acceptor;
use crate::activity::Activity;
pub use crate::activity::ActivityLayer;
use crate::provider;
use crate::slots::{Holder, Slot, SlotLimits, Slots};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use sha2::{Digest, Sha256};
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Notify, Semaphore};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;
use tracing::{debug, warn};

/// A TLS 1.3 server configuration: `chain` (leaf first, then the CA) with its
/// key; clients may present a certificate, which must chain to `client_ca`.
/// Which calls need one is decided per call, above TLS.
///
/// Sessions resume with stateless tickets: after each handshake the client
/// gets [`TICKETS_PER_HANDSHAKE`] tickets, sealed with keys of this process
/// alone (rustls' ring ticketer: a new key every 6 hours, a ticket good for
/// up to 12), so no memory is held per agent and no other process (nor this
/// one after a restart) accepts them. A resumed TLS 1.3 session carries the
/// client certificate chain of its first handshake, so the certificate is
/// still known to the calls above TLS, which check revocation and expiry
/// by its serial; what resumption skips is only the signatures and chain
/// checks of a full handshake (a fresh key exchange still happens).
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    client_ca: &[CertificateDer<'static>],
) -> Result<Arc<ServerConfig>, rustls::Error> {
    let provider = provider();
    let mut roots = RootCertStore::empty();
    for certificate in client_ca {
        roots.add(certificate.clone())?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| rustls::Error::General(e.to_string()))?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    config.ticketer = rustls::crypto::ring::Ticketer::new()?;
    config.send_tls13_tickets = TICKETS_PER_HANDSHAKE;
    Ok(Arc::new(config))
}

/// Tickets sent after each handshake: one for the next reconnect, one
/// spare should that one fail halfway (a ticket is used once).
pub const TICKETS_PER_HANDSHAKE: usize = 2;

/// The TLS configuration of the web dashboard: the same certificate, TLS
/// 1.3, no client certificate asked (a browser would offer the user a
/// choice of certificates), HTTP/1.1.
pub fn browser_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, rustls::Error> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Limits of the accept loops of the gRPC listeners.
#[derive(Clone, Copy, Debug)]
pub struct AcceptLimits {
    /// A peer that has not finished its TLS handshake by then is dropped.
    pub handshake_timeout: Duration,
    /// A connection without a client certificate (an operator's CLI, an
    /// enrolling agent, a probe) with no request in flight for this long
    /// is closed — also one that never sends its first request.
    pub idle_timeout: Duration,
    /// Connections held at once (those in their handshake included). A
    /// listener that is full evicts connections still in their handshake,
    /// then idle ones without a client certificate, and closes new ones
    /// when there are none.
    pub max_connections: usize,
    /// Connections from one address without a client certificate (those
    /// in their handshake included); a further one is closed at once.
    pub max_connections_per_address: usize,
    /// Connections with one client certificate.
    pub max_connections_per_certificate: usize,
    /// TLS handshakes worked on at once; further connections wait for a
    /// turn, newest first, for at most `handshake_timeout`. Without it a
    /// reconnect storm starts every handshake at once, each gets a sliver
    /// of the cores, most miss their deadline and all their work is lost.
    pub handshakes_at_once: usize,
}

/// The agent/operator port's handshake deadline.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a connection without a client certificate may sit idle.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections with one client certificate (an agent needs one; a few
/// more while a dead one is noticed).
pub const CONNECTIONS_PER_CERTIFICATE: usize = 8;
/// Handshakes at once per core: a handshake is about a millisecond of one
/// core's work and a round trip of waiting, so this keeps the cores busy
/// over links of a few hundred milliseconds while a turn stays well under
/// the handshake deadline even on a starved machine.
pub const HANDSHAKES_AT_ONCE_PER_CORE: usize = 64;

/// The default for [`AcceptLimits::handshakes_at_once`] on this machine.
pub fn handshakes_at_once() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    HANDSHAKES_AT_ONCE_PER_CORE * cores
}

impl Default for AcceptLimits {
    fn default() -> Self {
        Self {
            handshake_timeout: HANDSHAKE_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
            max_connections: 1024,
            max_connections_per_address: 64,
            max_connections_per_certificate: CONNECTIONS_PER_CERTIFICATE,
            handshakes_at_once: handshakes_at_once(),
        }
    }
}

impl AcceptLimits {
    fn slots(&self) -> SlotLimits {
        SlotLimits {
            total: self.max_connections,
            per_address: self.max_connections_per_address,
            per_certificate: self.max_connections_per_certificate,
        }
    }
}

/// Who is on the other end of a connection, as the request handlers see it
/// (`request.extensions().get::<PeerInfo>()`).
#[derive(Clone, Debug)]
pub struct PeerInfo {
    pub addr: SocketAddr,
    /// The client certificate, verified against the CA during the handshake.
    pub certificate: Option<Arc<CertificateDer<'static>>>,
    /// Requests in flight on the connection (kept by [`ActivityLayer`]).
    pub activity: Arc<Activity>,
}

/// A connection handed to tonic: its stream, who is at the other end, its
/// slot (given back when it closes) and, without a client certificate, an
/// idle deadline: reads fail once it has had no request in flight for
/// `idle_timeout`, or when its slot is taken for another connection, and
/// the server closes it.
pub struct Connection<IO> {
    stream: IO,
    peer: PeerInfo,
    idle_timeout: Option<Duration>,
    timer: Pin<Box<tokio::time::Sleep>>,
    evicted: Pin<Box<tokio::sync::futures::OwnedNotified>>,
    /// Why it is closing, once it is.
    closing: Option<io::ErrorKind>,
    _slot: Slot,
}

/// A connection whose TLS handshake has finished.
pub type TlsConnection = Connection<tokio_rustls::server::TlsStream<TcpStream>>;

impl<IO> std::fmt::Debug for Connection<IO> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl<IO> Connection<IO> {
    fn new(stream: IO, peer: PeerInfo, idle_timeout: Option<Duration>, slot: Slot) -> Self {
        let first = tokio::time::Instant::now() + idle_timeout.unwrap_or(Duration::from_secs(3600));
        Self {
            stream,
            idle_timeout,
            timer: Box::pin(tokio::time::sleep_until(first)),
            evicted: Box::pin(slot.on_eviction()),
            closing: None,
            peer,
            _slot: slot,
        }
    }

    /// `Err` when the connection is to close: evicted, or idle too long.
    fn check(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if let Some(kind) = self.closing {
            return Err(kind.into());
        }
        if self.evicted.as_mut().poll(cx).is_ready() {
            self.closing = Some(io::ErrorKind::ConnectionAborted);
            return Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "connection evicted for another",
            ));
        }
        let Some(limit) = self.idle_timeout else {
            return Ok(());
        };
        while self.timer.as_mut().poll(cx).is_ready() {
            let next = match self.peer.activity.idle_for() {
                Some(idle) if idle >= limit => {
                    self.closing = Some(io::ErrorKind::TimedOut);
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "connection idle too long",
                    ));
                }
                Some(idle) => limit - idle,
                None => limit,
            };
            self.timer
                .as_mut()
                .reset(tokio::time::Instant::now() + next);
        }
        Ok(())
    }
}

impl<IO: Unpin> Connected for Connection<IO> {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        self.peer.clone()
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Connection<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Err(error) = self.check(cx) {
            return Poll::Ready(Err(error));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Connection<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// Accepts connections on `listener` and yields those whose handshake
/// succeeded, each in a slot of `limits` (see [`crate::slots`]). Failed
/// handshakes (a certificate of another CA, an expired one, a peer that is
/// not speaking TLS, one too slow) are logged and dropped. The loop ends
/// when the returned stream is dropped. Serve them with [`ActivityLayer`]
/// so idle ones are noticed.
pub fn incoming(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    limits: AcceptLimits,
) -> ReceiverStream<Result<TlsConnection, io::Error>> {
    let (tx, rx) = mpsc::channel(64);
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let slots = Slots::new(limits.slots());
    let turns = Arc::new(Semaphore::new(limits.handshakes_at_once.max(1)));
    let waiting = Arc::new(Waiting::default());
    let mut accepting = Acceptor::new(listener, "agents and operators");
    tokio::spawn({
        let (waiting, tx) = (waiting.clone(), tx.clone());
        async move {
            loop {
                let (tcp, addr, slot) = tokio::select! {
                    _ = tx.closed() => return,
                    admitted = accepting.admit(&slots) => admitted,
                };
                let _ = tcp.set_nodelay(true);
                waiting.push(
                    Pending {
                        tcp,
                        addr,
                        slot,
                        since: Instant::now(),
                    },
                    limits.handshake_timeout,
                );
            }
        }
    });
    tokio::spawn(async move {
        loop {
            let turn = tokio::select! {
                _ = tx.closed() => return,
                turn = turns.clone().acquire_owned() => turn,
            };
            let Ok(turn) = turn else { return };
            let Pending {
                tcp, addr, slot, ..
            } = tokio::select! {
                _ = tx.closed() => return,
                newest = waiting.newest(limits.handshake_timeout) => newest,
            };
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                if crate::accept::peer_has_closed(&tcp) {
                    HANDSHAKE_FAILURES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    debug!(peer = %addr, "connection closed by its peer while it waited for a turn; no handshake");
                    return;
                }
                let handshake = tokio::select! {
                    _ = slot.evicted() => {
                        debug!(peer = %addr, "TLS handshake evicted for another connection");
                        return;
                    }
                    handshake = tokio::time::timeout(limits.handshake_timeout, acceptor.accept(tcp)) => handshake,
                };
                drop(turn);
                let stream = match handshake {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(error)) => {
                        HANDSHAKE_FAILURES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        warn!(peer = %addr, %error, "TLS handshake refused");
                        return;
                    }
                    Err(_) => {
                        HANDSHAKE_FAILURES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        debug!(peer = %addr, "TLS handshake timed out");
                        return;
                    }
                };
                if stream.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed) {
                    RESUMED_HANDSHAKES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                let certificate = stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .map(|c| Arc::new(c.clone().into_owned()));
                let activity = Arc::new(Activity::default());
                let idle_timeout = match &certificate {
                    Some(certificate) => {
                        let digest: [u8; 32] = Sha256::digest(certificate.as_ref()).into();
                        if let Err(refused) = slot.move_to(Holder::Certificate(digest)) {
                            debug!(peer = %addr, %refused, "connection closed");
                            return;
                        }
                        slot.opened(None);
                        None
                    }
                    None => {
                        slot.opened(Some(activity.clone()));
                        Some(limits.idle_timeout)
                    }
                };
                let peer = PeerInfo {
                    addr,
                    certificate,
                    activity,
                };
                let _ = tx
                    .send(Ok(Connection::new(stream, peer, idle_timeout, slot)))
                    .await;
            });
        }
    });
    ReceiverStream::new(rx)
}

/// A connection accepted and waiting for a handshake turn.
struct Pending {
    tcp: TcpStream,
    addr: SocketAddr,
    slot: Slot,
    since: Instant,
}

/// Connections waiting for a handshake turn, served newest first. In a
/// storm more arrive than the cores can shake hands with, and whoever has
/// waited longest is the likeliest to have given up (an agent waits 10 s
/// for its handshake), so a turn goes to the peer most likely still there;
/// those that have waited past the deadline are closed unanswered, and
/// their agents try again later (their backoff spreads them out). At
/// 100,000 agents on seven replicas the storm took 393 s served in order
/// of arrival and 330 s newest first (other changes came between; most
/// attempts failed both ways: docs/performance.md).
#[derive(Default)]
struct Waiting {
    queue: std::sync::Mutex<VecDeque<Pending>>,
    arrived: Notify,
}

impl Waiting {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Pending>> {
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds a connection, closing those that have waited past `limit`.
    fn push(&self, pending: Pending, limit: Duration) {
        let mut queue = self.lock();
        drop_stale(&mut queue, limit);
        queue.push_back(pending);
        drop(queue);
        self.arrived.notify_one();
    }

    /// The newest connection that has not waited past `limit`.
    async fn newest(&self, limit: Duration) -> Pending {
        loop {
            {
                let mut queue = self.lock();
                drop_stale(&mut queue, limit);
                if let Some(pending) = queue.pop_back() {
                    return pending;
                }
            }
            self.arrived.notified().await;
        }
    }
}

/// Closes the connections at the old end that have waited past `limit`.
fn drop_stale(queue: &mut VecDeque<Pending>, limit: Duration) {
    while queue.front().is_some_and(|p| p.since.elapsed() > limit) {
        if let Some(stale) = queue.pop_front() {
            HANDSHAKE_FAILURES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            debug!(peer = %stale.addr, "connection waited too long for a handshake turn; closed unanswered");
        }
    }
}

/// Limits of a plaintext gRPC listener (the health probes').
#[derive(Clone, Copy, Debug)]
pub struct PlainLimits {
    /// A connection with no request in flight this long is closed (also
    /// one that never sends the HTTP/2 preface or a request).
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_address: usize,
}

/// Accepts plaintext connections on `listener`, each in a slot of
/// `limits`, closed when idle; serve them with [`ActivityLayer`].
pub fn incoming_plain(
    listener: TcpListener,
    limits: PlainLimits,
    name: &'static str,
) -> ReceiverStream<Result<Connection<TcpStream>, io::Error>> {
    let (tx, rx) = mpsc::channel(64);
    let slots = Slots::new(SlotLimits {
        total: limits.max_connections,
        per_address: limits.max_connections_per_address,
        per_certificate: 1,
    });
    let mut accepting = Acceptor::new(listener, name);
    tokio::spawn(async move {
        loop {
            let (tcp, addr, slot) = tokio::select! {
                _ = tx.closed() => return,
                admitted = accepting.admit(&slots) => admitted,
            };
            let _ = tcp.set_nodelay(true);
            let activity = Arc::new(Activity::default());
            slot.opened(Some(activity.clone()));
            let peer = PeerInfo {
                addr,
                certificate: None,
                activity,
            };
            let connection = Connection::new(tcp, peer, Some(limits.idle_timeout), slot);
            if tx.send(Ok(connection)).await.is_err() {
                return;
            }
        }
    });
    ReceiverStream::new(rx)
}

static HANDSHAKE_FAILURES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// TLS handshakes refused or timed out in this process so far (for metrics).
pub fn handshake_failures() -> u64 {
    HANDSHAKE_FAILURES.load(std::sync::atomic::Ordering::Relaxed)
}

static RESUMED_HANDSHAKES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// TLS handshakes on the gRPC listeners that resumed a session with a
/// ticket, in this process so far (for metrics).
pub fn resumed_handshakes() -> u64 {
    RESUMED_HANDSHAKES.load(std::sync::atomic::Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{client_config, Identity, Trust};
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_stream::StreamExt;

    /// A certificate chain (leaf first) and the leaf's key.
    type Certified = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

    /// A CA, a server certificate for `localhost` and a client certificate
    /// for `host-1`, both issued by it.
    fn certificates() -> (CertificateDer<'static>, Certified, Certified) {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "test CA");
        let ca = ca_params.self_signed(&ca_key).unwrap().der().clone();
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf = |name: &str| {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(vec![name.to_owned()]).unwrap();
            params.distinguished_name.push(DnType::CommonName, name);
            let certificate = params.signed_by(&key, &issuer).unwrap().der().clone();
            let key = PrivateKeyDer::try_from(key.serialize_der()).unwrap();
            (vec![certificate, ca.clone()], key)
        };
        let server = leaf("localhost");
        let client = leaf("host-1");
        (ca, server, client)
    }

    #[tokio::test]
    async fn a_reconnect_with_the_same_configuration_resumes_and_keeps_the_client_certificate() {
        let (ca, (server_chain, server_key), (client_chain, client_key)) = certificates();
        let client_leaf = client_chain[0].clone();
        let server = server_config(server_chain, server_key, std::slice::from_ref(&ca)).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut accepted = incoming(listener, server, AcceptLimits::default());
        let client = client_config(
            &Trust::Ca(vec![ca]),
            Some(Identity {
                chain: client_chain,
                key: client_key,
            }),
        )
        .unwrap();
        let connector = tokio_rustls::TlsConnector::from(client);
        let resumed_before = resumed_handshakes();

        let mut kinds = Vec::new();
        for _ in 0..3 {
            let tcp = TcpStream::connect(addr).await.unwrap();
            let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
            let mut tls = connector.connect(name, tcp).await.unwrap();
            kinds.push(tls.get_ref().1.handshake_kind());
            let mut connection = accepted.next().await.unwrap().unwrap();
            // What the request handlers see: the client's certificate, on a
            // resumed session as on a full one (revocation is checked by it).
            let peer = connection.connect_info();
            assert_eq!(peer.certificate.as_deref(), Some(&client_leaf));
            // The tickets come after the handshake; reading past them keeps
            // them for the next connection.
            connection.write_all(b"x").await.unwrap();
            connection.flush().await.unwrap();
            let mut byte = [0u8; 1];
            tls.read_exact(&mut byte).await.unwrap();
        }
        assert_eq!(
            kinds,
            [
                Some(rustls::HandshakeKind::Full),
                Some(rustls::HandshakeKind::Resumed),
                Some(rustls::HandshakeKind::Resumed)
            ]
        );
        assert!(resumed_handshakes() >= resumed_before + 2);
    }

    /// With one handshake at a time and a peer stalled in its handshake,
    /// the others wait for the turn and are all served once it ends:
    /// nobody still waiting is lost.
    #[tokio::test]
    async fn connections_wait_for_a_handshake_turn_and_are_all_served() {
        let (ca, (server_chain, server_key), _) = certificates();
        let server = server_config(server_chain, server_key, std::slice::from_ref(&ca)).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let limits = AcceptLimits {
            handshakes_at_once: 1,
            ..AcceptLimits::default()
        };
        let mut accepted = incoming(listener, server, limits);
        // Connected and silent: a handshake with it waits for a ClientHello
        // that does not come, until it goes.
        let stalled = TcpStream::connect(addr).await.unwrap();
        let connector =
            tokio_rustls::TlsConnector::from(client_config(&Trust::Ca(vec![ca]), None).unwrap());
        let mut clients = tokio::task::JoinSet::new();
        for _ in 0..3 {
            let connector = connector.clone();
            clients.spawn(async move {
                let tcp = TcpStream::connect(addr).await.unwrap();
                let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
                connector.connect(name, tcp).await
            });
        }
        drop(stalled);
        for _ in 0..3 {
            let served = tokio::time::timeout(Duration::from_secs(10), accepted.next())
                .await
                .expect("served")
                .unwrap()
                .unwrap();
            assert!(served.connect_info().certificate.is_none());
        }
        while let Some(client) = clients.join_next().await {
            assert!(client.unwrap().is_ok());
        }
    }

    /// The newest connection gets the next turn; one that has waited past
    /// the deadline is closed instead of served.
    #[tokio::test]
    async fn the_newest_waiting_connection_goes_first_and_stale_ones_are_closed() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let slots = Slots::new(AcceptLimits::default().slots());
        let waiting = Waiting::default();
        let limit = Duration::from_secs(5);
        let mut peers = Vec::new();
        for age in [30, 2, 1] {
            peers.push(TcpStream::connect(addr).await.unwrap());
            let (tcp, from) = listener.accept().await.unwrap();
            let pending = Pending {
                tcp,
                addr: from,
                slot: slots.take(Holder::address(from.ip())).unwrap(),
                since: Instant::now() - Duration::from_secs(age),
            };
            waiting.push(pending, Duration::from_secs(3600));
        }
        let failures = handshake_failures();
        let first = waiting.newest(limit).await;
        assert!(
            first.since.elapsed() < Duration::from_secs(2),
            "the one that came last"
        );
        let second = waiting.newest(limit).await;
        assert!(second.since.elapsed() >= Duration::from_secs(2));
        assert!(second.since.elapsed() < Duration::from_secs(30));
        // The 30-second-old one is closed, not handed out.
        let third = tokio::time::timeout(Duration::from_millis(200), waiting.newest(limit)).await;
        assert!(third.is_err(), "the stale one is not handed out");
        assert!(waiting.lock().is_empty(), "and it is closed");
        assert!(handshake_failures() > failures);
    }
}
