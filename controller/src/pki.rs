//! The controller's certificate authority: created in the data directory on
//! first start (or given as PEM files), it signs the controller's own server
//! certificate and every agent's client certificate. Agents pin it by its
//! SHA-256 fingerprint before they enroll.

use crate::store::security::AgentCertificate;
use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SerialNumber,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tierwise_common::hex;
use tierwise_transport::{files, Fingerprint};
use tracing::info;

/// How long the generated CA is valid.
const CA_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// How long a generated server certificate is valid; it is made anew on
/// every start.
const SERVER_LIFETIME: Duration = Duration::from_secs(397 * 24 * 3600);
/// Certificates start this much in the past, for clocks that lag a little.
const CLOCK_SKEW: Duration = Duration::from_secs(300);

/// Where the PKI comes from. Unset paths mean "in the data directory's
/// `pki/`, created when absent".
#[derive(Clone, Debug, Default)]
pub struct PkiSettings {
    pub ca_cert: Option<PathBuf>,
    pub ca_key: Option<PathBuf>,
    pub server_cert: Option<PathBuf>,
    pub server_key: Option<PathBuf>,
    /// Extra names (DNS names or IP addresses) for the generated server
    /// certificate, beyond the host name, `localhost` and loopback.
    pub names: Vec<String>,
}

/// The CA certificate's path in a data directory.
pub fn ca_cert_path(data_dir: &Path) -> PathBuf {
    data_dir.join("pki").join("ca.pem")
}

fn ca_key_path(data_dir: &Path) -> PathBuf {
    data_dir.join("pki").join("ca.key")
}

pub struct Pki {
    ca_der: CertificateDer<'static>,
    ca_pem: String,
    fingerprint: Fingerprint,
    issuer: Issuer<'static, KeyPair>,
    server_chain: Vec<CertificateDer<'static>>,
    server_key: PrivateKeyDer<'static>,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pki(CA {})", self.fingerprint)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error("the certificate request is not a valid, signed PKCS#10 request: {0}")]
    BadRequest(String),
    #[error("signing the certificate failed: {0}")]
    Sign(String),
}

impl Pki {
    /// Loads the CA and the server certificate, creating what is absent.
    pub fn load_or_create(
        data_dir: &Path,
        settings: &PkiSettings,
        now_ms: i64,
    ) -> anyhow::Result<Self> {
        let (ca_cert_file, ca_key_file) = match (&settings.ca_cert, &settings.ca_key) {
            (Some(cert), Some(key)) => (cert.clone(), key.clone()),
            (None, None) => (ca_cert_path(data_dir), ca_key_path(data_dir)),
            _ => anyhow::bail!("give --tls-ca-cert and --tls-ca-key together, or neither (the controller then keeps its own CA in {})", data_dir.join("pki").display()),
        };
        if settings.server_cert.is_some() != settings.server_key.is_some() {
            anyhow::bail!("give --tls-cert and --tls-key together, or neither (the controller then makes its server certificate itself)");
        }
        if settings.server_cert.is_some() && settings.ca_cert.is_none() {
            anyhow::bail!("--tls-cert needs --tls-ca-cert and --tls-ca-key: the CA that issued it, which also issues the agents' certificates");
        }
        if !ca_cert_file.exists() && !ca_key_file.exists() && settings.ca_cert.is_none() {
            create_ca(&ca_cert_file, &ca_key_file, now_ms)?;
        }
        let ca_pem = files::read(&ca_cert_file)?;
        let ca_der = files::read_certificates(&ca_cert_file)?
            .into_iter()
            .next()
            .context("no CA certificate")?;
        let ca_key_pem = files::read(&ca_key_file)?;
        let ca_key = KeyPair::from_pem(&ca_key_pem).with_context(|| {
            format!(
                "{} is not a private key rcgen can sign with (PKCS#8 PEM, ECDSA, Ed25519 or RSA)",
                ca_key_file.display()
            )
        })?;
        let issuer = Issuer::from_ca_cert_der(&ca_der, ca_key)
            .with_context(|| format!("{} is not a CA certificate", ca_cert_file.display()))?;
        let fingerprint = Fingerprint::of(&ca_der);
        let (server_chain, server_key) = match (&settings.server_cert, &settings.server_key) {
            (Some(cert), Some(key)) => {
                let mut chain = files::read_certificates(cert)?;
                if !chain.contains(&ca_der) {
                    chain.push(ca_der.clone());
                }
                (chain, files::read_key(key)?)
            }
            _ => {
                let (leaf, key) = server_certificate(&issuer, &settings.names, now_ms)?;
                (vec![leaf, ca_der.clone()], key)
            }
        };
        info!(ca = %ca_cert_file.display(), %fingerprint, "certificate authority ready");
        Ok(Self {
            ca_der,
            ca_pem,
            fingerprint,
            issuer,
            server_chain,
            server_key,
        })
    }

    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The TLS configuration `serve` listens with.
    pub fn server_config(&self) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        tierwise_transport::server::server_config(
            self.server_chain.clone(),
            self.server_key.clone_key(),
            std::slice::from_ref(&self.ca_der),
        )
        .context("the server certificate and key cannot be used together")
    }

    /// The web dashboard's TLS configuration: the server certificate,
    /// without asking for a client certificate.
    pub fn browser_config(&self) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        tierwise_transport::server::browser_config(
            self.server_chain.clone(),
            self.server_key.clone_key(),
        )
        .context("the server certificate and key cannot be used together")
    }

    /// Signs an agent's certificate from its request. What the certificate
    /// says is decided here: the host id as its common name, client
    /// authentication only, `lifetime` from now; only the request's public
    /// key is taken (its signature proves the agent holds the key).
    pub fn issue(
        &self,
        csr_der: &[u8],
        host_id: &str,
        installation: &str,
        now_ms: i64,
        lifetime: Duration,
    ) -> Result<AgentCertificate, IssueError> {
        let (request, public_key_sha256) = parse_request(csr_der)?;
        let serial = random_serial();
        let not_after_ms = now_ms + lifetime.as_millis() as i64;
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, host_id);
        params
            .distinguished_name
            .push(DnType::OrganizationalUnitName, installation);
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        params.not_before = offset_time(now_ms - CLOCK_SKEW.as_millis() as i64);
        params.not_after = offset_time(not_after_ms);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        let signed = CertificateSigningRequestParams {
            params,
            public_key: request.public_key,
        }
        .signed_by(&self.issuer)
        .map_err(|e| IssueError::Sign(e.to_string()))?;
        Ok(AgentCertificate {
            serial: hex(&serial),
            host_id: host_id.to_owned(),
            installation: installation.to_owned(),
            public_key_sha256,
            certificate_pem: signed.pem(),
            not_after_ms,
            revoked_ms: None,
            superseded_ms: None,
        })
    }

    /// The SHA-256 (hex) of the public key an agent's certificate request
    /// holds, once its signature is checked: what an enrollment is checked
    /// with before anything is signed for it.
    pub fn request_key_sha256(csr_der: &[u8]) -> Result<String, IssueError> {
        parse_request(csr_der).map(|(_, key)| key)
    }
}

/// Reads a certificate request (its signature proves the key) and the
/// SHA-256 of its public key.
fn parse_request(csr_der: &[u8]) -> Result<(CertificateSigningRequestParams, String), IssueError> {
    let request = CertificateSigningRequestParams::from_der(&csr_der.to_vec().into())
        .map_err(|e| IssueError::BadRequest(e.to_string()))?;
    let public_key_sha256 = hex(&Sha256::digest(rcgen::PublicKeyData::der_bytes(
        &request.public_key,
    )));
    Ok((request, public_key_sha256))
}

fn create_ca(cert_file: &Path, key_file: &Path, now_ms: i64) -> anyhow::Result<()> {
    let key = KeyPair::generate().context("generating the CA key")?;
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    let host = gethostname();
    params
        .distinguished_name
        .push(DnType::CommonName, format!("Tierwise CA ({host})"));
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Tierwise");
    params.serial_number = Some(SerialNumber::from_slice(&random_serial()));
    params.not_before = offset_time(now_ms - CLOCK_SKEW.as_millis() as i64);
    params.not_after = offset_time(now_ms + CA_LIFETIME.as_millis() as i64);
    // It signs end-entity certificates only.
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let certificate = params
        .self_signed(&key)
        .context("signing the CA certificate")?;
    files::write_private(key_file, key.serialize_pem().as_bytes())?;
    files::write_public(cert_file, certificate.pem().as_bytes())?;
    info!(ca = %cert_file.display(), "created a new certificate authority");
    Ok(())
}

fn server_certificate(
    issuer: &Issuer<'static, KeyPair>,
    extra_names: &[String],
    now_ms: i64,
) -> anyhow::Result<(CertificateDer<'static>, PrivateKeyDer<'static>)> {
    let mut names: Vec<String> = extra_names.to_vec();
    for name in [
        gethostname(),
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ] {
        if !name.is_empty() && !names.contains(&name) {
            names.push(name);
        }
    }
    let key = KeyPair::generate().context("generating the server key")?;
    let mut params = CertificateParams::new(names.clone())
        .with_context(|| format!("a server certificate for the names {names:?}"))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, "Tierwise controller");
    params.serial_number = Some(SerialNumber::from_slice(&random_serial()));
    params.not_before = offset_time(now_ms - CLOCK_SKEW.as_millis() as i64);
    params.not_after = offset_time(now_ms + SERVER_LIFETIME.as_millis() as i64);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let certificate = params
        .signed_by(&key, issuer)
        .context("signing the server certificate")?;
    let key = PrivateKeyDer::try_from(key.serialize_der())
        .map_err(|e| anyhow::anyhow!("the server key: {e}"))?;
    info!(names = ?names, "server certificate made for these names (add more with --tls-name)");
    Ok((certificate.der().clone(), key))
}

fn gethostname() -> String {
    // Certificates want a DNS name; a host name with odd characters is left out.
    let name = gethostname::gethostname()
        .to_string_lossy()
        .trim()
        .to_ascii_lowercase();
    if name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    {
        name
    } else {
        String::new()
    }
}

/// 16 random bytes, positive and without a leading zero byte (so the
/// certificate carries them exactly).
fn random_serial() -> [u8; 16] {
    let mut serial = random_bytes::<16>();
    serial[0] = (serial[0] & 0x7f) | 0x01;
    serial
}

/// Bytes from the operating system's random source.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; N];
    // The system RNG does not fail on supported platforms; if it ever did,
    // continuing with predictable secrets would be worse than stopping.
    #[allow(clippy::expect_used)]
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .expect("the operating system's random number generator failed");
    bytes
}

fn offset_time(ms: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ca_issues_agent_certificates_that_say_what_the_controller_decides() {
        let dir = tempfile::tempdir().unwrap();
        let now = 1_800_000_000_000;
        let pki = Pki::load_or_create(dir.path(), &PkiSettings::default(), now).unwrap();
        assert!(ca_cert_path(dir.path()).exists());
        // Loading again keeps the same CA.
        let again = Pki::load_or_create(dir.path(), &PkiSettings::default(), now).unwrap();
        assert_eq!(pki.fingerprint(), again.fingerprint());
        let (_, csr) = tierwise_transport::key_and_request("claimed-name").unwrap();
        let issued = pki
            .issue(&csr, "srv-01", "prod", now, Duration::from_secs(3600))
            .unwrap();
        let der = files::certificates_from_pem(issued.certificate_pem.as_bytes()).unwrap();
        let facts = tierwise_transport::certificate_facts(&der[0]).unwrap();
        assert_eq!(facts.serial, issued.serial);
        assert_eq!(
            facts.common_name, "srv-01",
            "the host id, not what the request claimed"
        );
        assert_eq!(facts.not_after_ms, now + 3_600_000);
        assert_eq!(issued.not_after_ms, now + 3_600_000);
    }

    #[test]
    fn a_request_with_a_broken_signature_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::load_or_create(dir.path(), &PkiSettings::default(), 0).unwrap();
        let (_, mut csr) = tierwise_transport::key_and_request("x").unwrap();
        let last = csr.len() - 1;
        csr[last] ^= 0x55;
        let error = pki
            .issue(&csr, "x", "prod", 0, Duration::from_secs(60))
            .unwrap_err();
        assert!(error.to_string().contains("PKCS#10"), "{error}");
        assert!(pki
            .issue(b"garbage", "x", "prod", 0, Duration::from_secs(60))
            .is_err());
    }

    #[test]
    fn half_given_files_are_refused_with_what_to_give() {
        let dir = tempfile::tempdir().unwrap();
        let settings = PkiSettings {
            ca_cert: Some(dir.path().join("ca.pem")),
            ..PkiSettings::default()
        };
        let error = Pki::load_or_create(dir.path(), &settings, 0).unwrap_err();
        assert!(error.to_string().contains("--tls-ca-key"), "{error}");
    }
}
