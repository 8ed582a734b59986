//! TLS between Tierwise's processes: the controller, its agents and the
//! operator CLI.
//!
//! - [`fingerprint`]: the SHA-256 fingerprint by which agents pin the
//!   controller's CA before they hold a certificate of their own.
//! - [`files`]: PEM certificates and private keys on disk (keys readable only
//!   by their owner).
//! - [`client`]: the rustls client configurations (CA trust, CA pinned by
//!   fingerprint, with or without a client certificate) and a tonic channel
//!   over them.
//! - [`server`]: the controller's rustls configuration and its accept loops,
//!   which hand tonic only finished handshakes, record the peer's
//!   certificate for the request handlers and close idle connections.
//! - [`slots`]: connections as a bounded resource (per address, per client
//!   certificate, in total; the open files shared out between listeners),
//!   used by every listener of the controller.
//! - [`accept`]: accepting without spinning when out of open files, and
//!   raising the open-file limit.
//! - [`activity`]: requests in flight per connection (a tower layer).
//!
//! Only TLS 1.3 with ring's primitives is offered; there is no plaintext path.

pub mod accept;
pub mod activity;
pub mod client;
pub mod files;
pub mod fingerprint;
pub mod server;
pub mod slots;

pub use fingerprint::Fingerprint;
pub use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use std::sync::Arc;

/// The one cryptographic provider every configuration uses.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// What Tierwise reads from a certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateFacts {
    /// The serial number, lowercase hex.
    pub serial: String,
    /// The subject's common name (for an agent: its host id).
    pub common_name: String,
    /// The end of its validity, Unix milliseconds.
    pub not_after_ms: i64,
}

/// Reads a DER certificate; `None` when it cannot be parsed or has no
/// common name.
pub fn certificate_facts(der: &[u8]) -> Option<CertificateFacts> {
    let (_, certificate) = x509_parser::parse_x509_certificate(der).ok()?;
    let common_name = certificate
        .subject()
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_owned();
    Some(CertificateFacts {
        // The same encoding the controller stores serials in.
        serial: tierwise_common::hex(certificate.raw_serial()),
        common_name,
        not_after_ms: certificate
            .validity()
            .not_after
            .timestamp()
            .saturating_mul(1000),
    })
}

/// A new private key (ECDSA P-256) with a certificate request for `common_name`,
/// as PEM (the key) and DER (the request). Agents send the request when they
/// enroll and when they renew; the controller decides what the certificate says.
pub fn key_and_request(common_name: &str) -> Result<(String, Vec<u8>), rcgen::Error> {
    let key = rcgen::KeyPair::generate()?;
    let request = request_for(&key, common_name)?;
    Ok((key.serialize_pem(), request))
}

/// A certificate request for an existing private key (PEM).
pub fn request_for_pem(key_pem: &str, common_name: &str) -> Result<Vec<u8>, rcgen::Error> {
    let key = rcgen::KeyPair::from_pem(key_pem)?;
    request_for(&key, common_name)
}

fn request_for(key: &rcgen::KeyPair, common_name: &str) -> Result<Vec<u8>, rcgen::Error> {
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, common_name);
    Ok(params.serialize_request(key)?.der().to_vec())
}
