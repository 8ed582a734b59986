//! The controller's side: its rustls configuration (client certificates
//! optional, verified against its CA when presented) and an accept loop that
//! runs each handshake in its own task, with a time limit and a cap on
//! handshakes in flight, so a peer that opens connections and stalls cannot
//! keep anyone else out.

use crate::provider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;
use tracing::{debug, warn};

/// A TLS 1.3 server configuration: `chain` (leaf first, then the CA) with its
/// key; clients may present a certificate, which must chain to `client_ca`.
/// Which calls need one is decided per call, above TLS.
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
    Ok(Arc::new(config))
}

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

/// Limits of the accept loop.
#[derive(Clone, Copy, Debug)]
pub struct AcceptLimits {
    /// A peer that has not finished its handshake by then is dropped.
    pub handshake_timeout: Duration,
    /// Handshakes in flight at once; further connections wait in the
    /// kernel's backlog.
    pub max_handshakes: usize,
    /// Handshakes in flight from one IP address; a further connection from
    /// it is closed at once, so one peer cannot hold every slot.
    pub max_handshakes_per_ip: usize,
}

impl Default for AcceptLimits {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            max_handshakes: 1024,
            max_handshakes_per_ip: 64,
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
}

/// A connection whose TLS handshake has finished.
#[derive(Debug)]
pub struct TlsConnection {
    stream: tokio_rustls::server::TlsStream<TcpStream>,
    peer: PeerInfo,
}

impl Connected for TlsConnection {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        self.peer.clone()
    }
}

impl AsyncRead for TlsConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConnection {
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
/// succeeded. Failed handshakes (a certificate of another CA, an expired
/// one, a peer that is not speaking TLS) are logged and dropped. The loop
/// ends when the returned stream is dropped.
pub fn incoming(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    limits: AcceptLimits,
) -> ReceiverStream<Result<TlsConnection, io::Error>> {
    let (tx, rx) = mpsc::channel(64);
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let handshakes = Arc::new(Semaphore::new(limits.max_handshakes.max(1)));
    let per_ip: PerIp = Arc::default();
    tokio::spawn(async move {
        loop {
            let permit = tokio::select! {
                _ = tx.closed() => return,
                permit = handshakes.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => return,
                },
            };
            let accepted = tokio::select! {
                _ = tx.closed() => return,
                accepted = listener.accept() => accepted,
            };
            let (tcp, addr) = match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Some(slot) = PerIpSlot::take(&per_ip, addr.ip(), limits.max_handshakes_per_ip)
            else {
                debug!(peer = %addr, "too many handshakes from this address at once; connection closed");
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let _slot = slot;
                let handshake =
                    tokio::time::timeout(limits.handshake_timeout, acceptor.accept(tcp)).await;
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
                let certificate = stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .map(|c| Arc::new(c.clone().into_owned()));
                let peer = PeerInfo { addr, certificate };
                let _ = tx.send(Ok(TlsConnection { stream, peer })).await;
            });
        }
    });
    ReceiverStream::new(rx)
}

static HANDSHAKE_FAILURES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// TLS handshakes refused or timed out in this process so far (for metrics).
pub fn handshake_failures() -> u64 {
    HANDSHAKE_FAILURES.load(std::sync::atomic::Ordering::Relaxed)
}

type PerIp = Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>;

/// One handshake in flight from an address; released when dropped.
struct PerIpSlot {
    map: PerIp,
    ip: std::net::IpAddr,
}

impl PerIpSlot {
    fn take(map: &PerIp, ip: std::net::IpAddr, limit: usize) -> Option<Self> {
        let mut counts = map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = counts.entry(ip).or_insert(0);
        if *count >= limit.max(1) {
            return None;
        }
        *count += 1;
        Some(Self {
            map: map.clone(),
            ip,
        })
    }
}

impl Drop for PerIpSlot {
    fn drop(&mut self) {
        let mut counts = self
            .map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}
