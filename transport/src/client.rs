//! The client side: how an agent or the CLI trusts the controller, and a
//! tonic channel that speaks TLS through our own rustls configuration.

use crate::{provider, Fingerprint};
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::net::TcpStream;
use tonic::codegen::http::Uri;
use tonic::codegen::Service;
use tonic::transport::Endpoint;

/// How a client decides that it talks to the real controller.
#[derive(Clone, Debug)]
pub enum Trust {
    /// The controller's certificate must chain to one of these CA
    /// certificates (what an enrolled agent and the CLI use).
    Ca(Vec<CertificateDer<'static>>),
    /// The controller must present, in its chain, the CA certificate with
    /// this fingerprint, and its certificate must be issued by that CA
    /// (what an agent uses once, to enroll).
    Pinned(Fingerprint),
}

/// A client certificate chain with its private key.
#[derive(Debug)]
pub struct Identity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientTlsError {
    #[error("the CA certificate cannot be used: {0}")]
    Ca(String),
    #[error("the client certificate and key cannot be used together: {0}")]
    Identity(rustls::Error),
    #[error("TLS configuration: {0}")]
    Config(rustls::Error),
}

/// A TLS 1.3 client configuration that trusts as `trust` says and, given an
/// identity, presents it.
pub fn client_config(
    trust: &Trust,
    identity: Option<Identity>,
) -> Result<Arc<ClientConfig>, ClientTlsError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(ClientTlsError::Config)?;
    let builder = match trust {
        Trust::Ca(certificates) => {
            let mut roots = RootCertStore::empty();
            for certificate in certificates {
                roots
                    .add(certificate.clone())
                    .map_err(|e| ClientTlsError::Ca(e.to_string()))?;
            }
            builder.with_root_certificates(roots)
        }
        Trust::Pinned(pin) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedCa {
                pin: *pin,
                provider,
            })),
    };
    let mut config = match identity {
        Some(identity) => builder
            .with_client_auth_cert(identity.chain, identity.key)
            .map_err(ClientTlsError::Identity)?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// Verifies the controller against the CA whose fingerprint was pinned: the
/// CA certificate must be in the chain the controller sends, and the
/// controller's certificate must be valid for the name and issued by it.
#[derive(Debug)]
struct PinnedCa {
    pin: Fingerprint,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedCa {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let ca = intermediates
            .iter()
            .find(|c| Fingerprint::of(c) == self.pin)
            .ok_or_else(|| {
                rustls::Error::General(format!(
                    "the controller's certificate chain holds no CA with the pinned fingerprint {}; \
                     compare ca_fingerprint with what `tierwise pki show` prints on the controller",
                    self.pin
                ))
            })?;
        let mut roots = RootCertStore::empty();
        roots.add(ca.clone().into_owned())?;
        let verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
                .build()
                .map_err(|e| rustls::Error::General(e.to_string()))?;
        let others: Vec<CertificateDer<'_>> =
            intermediates.iter().filter(|c| *c != ca).cloned().collect();
        verifier.verify_server_cert(end_entity, &others, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Where the controller is: `https://HOST[:PORT]` (default port 7700).
#[derive(Clone, PartialEq, Eq)]
pub struct ControllerAddress {
    /// As written in a URI: an IPv6 address keeps its brackets.
    host: String,
    port: u16,
    /// The name the controller's certificate must be valid for.
    name: ServerName<'static>,
}

pub const DEFAULT_PORT: u16 = 7700;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error(
        "`{0}` is not a controller address; write it like https://controller.example.com:7700"
    )]
    Malformed(String),
    #[error("`{0}` asks for plaintext: Tierwise speaks only TLS; write https://{1}")]
    Plaintext(String, String),
}

impl FromStr for ControllerAddress {
    type Err = AddressError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let malformed = || AddressError::Malformed(text.chars().take(200).collect());
        let with_scheme = if text.contains("://") {
            text.to_owned()
        } else {
            format!("https://{text}")
        };
        let uri: Uri = with_scheme.parse().map_err(|_| malformed())?;
        let host = uri.host().filter(|h| !h.is_empty()).ok_or_else(malformed)?;
        let authority = uri.authority().map(|a| a.as_str()).unwrap_or_default();
        let port = match authority.rsplit_once(':') {
            Some((_, port)) if !port.ends_with(']') => port.parse().map_err(|_| malformed())?,
            _ => DEFAULT_PORT,
        };
        match uri.scheme_str() {
            Some("https") => {}
            Some("http") => {
                let rest = text.trim_start_matches("http://").trim_end_matches('/');
                return Err(AddressError::Plaintext(text.to_owned(), rest.to_owned()));
            }
            _ => return Err(malformed()),
        }
        if uri.path() != "/" && !uri.path().is_empty() || uri.query().is_some() {
            return Err(malformed());
        }
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(bare.to_owned()).map_err(|_| malformed())?;
        Ok(Self {
            host: host.to_owned(),
            port,
            name,
        })
    }
}

impl fmt::Display for ControllerAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "https://{}:{}", self.host, self.port)
    }
}

impl fmt::Debug for ControllerAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ControllerAddress({self})")
    }
}

impl ControllerAddress {
    /// The name the controller's certificate must be valid for.
    pub fn server_name(&self) -> ServerName<'static> {
        self.name.clone()
    }

    /// A tonic endpoint for this address. Its scheme says `http` because the
    /// TLS is done by [`ControllerAddress::connector`], below tonic.
    pub fn endpoint(&self) -> Endpoint {
        Endpoint::from_shared(format!("http://{}:{}", self.host, self.port))
            .unwrap_or_else(|_| Endpoint::from_static("http://invalid.invalid"))
    }

    /// A channel to the controller over TLS with `config`; `configure` sets
    /// the caller's timeouts and keep-alives.
    pub async fn connect(
        &self,
        config: Arc<ClientConfig>,
        configure: impl FnOnce(Endpoint) -> Endpoint,
    ) -> Result<tonic::transport::Channel, tonic::transport::Error> {
        configure(self.endpoint())
            .connect_with_connector(self.connector(config))
            .await
    }

    /// The connector that dials this address and does the TLS handshake.
    pub fn connector(&self, config: Arc<ClientConfig>) -> TlsConnector {
        TlsConnector {
            host: self
                .host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port: self.port,
            name: self.name.clone(),
            tls: tokio_rustls::TlsConnector::from(config),
            local: None,
        }
    }

    /// As `connect`, dialling from the local address `local` (a load tool
    /// spreads its simulated agents over loopback addresses this way).
    pub async fn connect_from(
        &self,
        config: Arc<ClientConfig>,
        local: std::net::IpAddr,
        configure: impl FnOnce(Endpoint) -> Endpoint,
    ) -> Result<tonic::transport::Channel, tonic::transport::Error> {
        let mut connector = self.connector(config);
        connector.local = Some(local);
        configure(self.endpoint())
            .connect_with_connector(connector)
            .await
    }
}

/// Dials TCP and runs the TLS handshake; handed to
/// [`Endpoint::connect_with_connector`].
#[derive(Clone)]
pub struct TlsConnector {
    host: String,
    port: u16,
    name: ServerName<'static>,
    tls: tokio_rustls::TlsConnector,
    /// The local address to dial from, if not the system's choice.
    local: Option<std::net::IpAddr>,
}

impl fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TlsConnector({}:{})", self.host, self.port)
    }
}

type Connecting = Pin<
    Box<
        dyn Future<
                Output = Result<
                    TokioIo<tokio_rustls::client::TlsStream<TcpStream>>,
                    std::io::Error,
                >,
            > + Send,
    >,
>;

impl Service<Uri> for TlsConnector {
    type Response = TokioIo<tokio_rustls::client::TlsStream<TcpStream>>;
    type Error = std::io::Error;
    type Future = Connecting;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let tcp = match this.local {
                None => TcpStream::connect((this.host.as_str(), this.port)).await?,
                Some(local) => {
                    let remote = tokio::net::lookup_host((this.host.as_str(), this.port))
                        .await?
                        .find(|a| a.is_ipv4() == local.is_ipv4())
                        .ok_or_else(|| {
                            std::io::Error::new(
                                std::io::ErrorKind::AddrNotAvailable,
                                "no controller address of the local address's family",
                            )
                        })?;
                    let socket = if local.is_ipv4() {
                        tokio::net::TcpSocket::new_v4()?
                    } else {
                        tokio::net::TcpSocket::new_v6()?
                    };
                    socket.bind(std::net::SocketAddr::new(local, 0))?;
                    socket.connect(remote).await?
                }
            };
            tcp.set_nodelay(true)?;
            let stream = this.tls.connect(this.name.clone(), tcp).await?;
            Ok(TokioIo::new(stream))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_https_with_a_default_port() {
        let a: ControllerAddress = "https://ctl.example.com:7701".parse().unwrap();
        assert_eq!(a.to_string(), "https://ctl.example.com:7701");
        let b: ControllerAddress = "ctl.example.com".parse().unwrap();
        assert_eq!(b.to_string(), "https://ctl.example.com:7700");
        let c: ControllerAddress = "https://[::1]:7700/".parse().unwrap();
        assert_eq!(c.to_string(), "https://[::1]:7700");
        assert_eq!(c.server_name().to_str(), "::1");
    }

    #[test]
    fn plaintext_and_garbage_are_refused_with_what_to_write() {
        let error = "http://10.0.0.1:7700"
            .parse::<ControllerAddress>()
            .unwrap_err();
        assert!(
            error.to_string().contains("https://10.0.0.1:7700"),
            "{error}"
        );
        for bad in [
            "",
            "https://",
            "ftp://x",
            "https://x:99999",
            "https://x/path",
            "a b",
        ] {
            assert!(bad.parse::<ControllerAddress>().is_err(), "{bad}");
        }
    }
}
