//! Post-update health checks: after the step that leaves a component running
//! again (`StepAction::health_checked`), the agent checks that what the
//! configuration names answers — a TCP port accepts a connection, an HTTPS
//! URL answers 200, a Windows service is running. The checks are repeated
//! until all pass or the configured wait is over; a step whose checks do not
//! pass fails, with every check's last result as its output.

use crate::config::{HealthChecks, HttpsTarget, TcpTarget};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long one attempt of one check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between rounds while a check still fails.
const ROUND_PAUSE: Duration = Duration::from_secs(2);

/// One check's result, as a line of the step's output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckResult {
    pub passed: bool,
    pub line: String,
}

/// What the checks found: every check's last line, and whether all passed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub passed: bool,
    pub lines: Vec<String>,
    /// How long it took until they passed, or until the wait ran out.
    pub waited: Duration,
}

impl Verdict {
    /// The first failing check's line: what a failed step names.
    pub fn first_failure(&self) -> Option<&str> {
        self.lines
            .iter()
            .find(|l| l.starts_with("FAIL"))
            .map(String::as_str)
    }
}

/// Runs every check, round after round, until all pass or `checks.wait` is
/// over; the checks of a round run at once, each within what is left of
/// the wait (at most `CHECK_TIMEOUT`). `progress` hears what is awaited.
pub async fn verify(checks: &HealthChecks, progress: &(dyn Fn(&str) + Send + Sync)) -> Verdict {
    let started = Instant::now();
    // Without a usable trust store the HTTPS checks fail with the reason;
    // the TCP and service checks still say what they see.
    let tls = tls_config(checks);
    loop {
        let left = checks.wait.saturating_sub(started.elapsed());
        let limit = CHECK_TIMEOUT.min(left).max(Duration::from_secs(1));
        let results = round(checks, &tls, limit).await;
        let passed = results.iter().all(|r| r.passed);
        let lines: Vec<String> = results.into_iter().map(|r| r.line).collect();
        if passed || started.elapsed() + ROUND_PAUSE > checks.wait {
            return Verdict {
                passed,
                lines,
                waited: started.elapsed(),
            };
        }
        if let Some(waiting) = lines.iter().find(|l| l.starts_with("FAIL")) {
            progress(&format!("health: waiting — {waiting}"));
        }
        tokio::time::sleep(ROUND_PAUSE).await;
    }
}

/// One round: every check at once, results in the configuration's order.
async fn round(
    checks: &HealthChecks,
    tls: &Result<TlsSetup, String>,
    limit: Duration,
) -> Vec<CheckResult> {
    let mut set = tokio::task::JoinSet::new();
    let mut order = 0usize;
    let mut next = || {
        order += 1;
        order
    };
    for target in &checks.tcp {
        let target = target.clone();
        let at = next();
        set.spawn(async move { (at, tcp(&target, limit).await) });
    }
    for target in checks.https.iter().cloned() {
        let at = next();
        let tls = tls.clone();
        set.spawn(async move {
            let result = match tls {
                Ok(tls) => https(&target, &tls, limit).await,
                Err(reason) => fail(format!("https {}: {reason}", target.url)),
            };
            (at, result)
        });
    }
    for name in &checks.services {
        let name = name.clone();
        let at = next();
        set.spawn(async move { (at, service(&name, limit).await) });
    }
    let mut results: Vec<(usize, CheckResult)> = Vec::new();
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok(result) => results.push(result),
            Err(e) => results.push((usize::MAX, fail(format!("a check ended abnormally: {e}")))),
        }
    }
    results.sort_by_key(|(at, _)| *at);
    results.into_iter().map(|(_, r)| r).collect()
}

fn pass(line: String) -> CheckResult {
    CheckResult {
        passed: true,
        line: format!("ok   {line}"),
    }
}

fn fail(line: String) -> CheckResult {
    CheckResult {
        passed: false,
        line: format!("FAIL {line}"),
    }
}

fn millis(since: Instant) -> u128 {
    since.elapsed().as_millis()
}

async fn tcp(target: &TcpTarget, limit: Duration) -> CheckResult {
    let started = Instant::now();
    let connect = tokio::net::TcpStream::connect((target.host.as_str(), target.port));
    match tokio::time::timeout(limit, connect).await {
        Ok(Ok(_)) => pass(format!(
            "tcp {target}: accepted a connection in {} ms",
            millis(started)
        )),
        Ok(Err(e)) => fail(format!("tcp {target}: {e}")),
        Err(_) => fail(format!(
            "tcp {target}: no answer within {} s",
            limit.as_secs()
        )),
    }
}

/// The TLS client of the HTTPS checks: the system's trusted certificates
/// plus `ca_file`, TLS 1.2 and 1.3.
#[derive(Clone)]
struct TlsSetup {
    connector: tokio_rustls::TlsConnector,
}

fn tls_config(checks: &HealthChecks) -> Result<TlsSetup, String> {
    let mut roots = rustls::RootCertStore::empty();
    if !checks.https.is_empty() {
        let native = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(native.certs);
    }
    if let Some(path) = &checks.ca_file {
        let certificates = tierwise_transport::files::read_certificates(path)
            .map_err(|e| format!("the ca_file {} cannot be used: {e}", path.display()))?;
        for certificate in certificates {
            roots
                .add(certificate)
                .map_err(|e| format!("the ca_file {} cannot be used: {e}", path.display()))?;
        }
    }
    if !checks.https.is_empty() && roots.is_empty() {
        return Err("the system's store holds no usable certificate and no ca_file is set".into());
    }
    let config = rustls::ClientConfig::builder_with_provider(tierwise_transport::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsSetup {
        connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
    })
}

async fn https(target: &HttpsTarget, tls: &TlsSetup, limit: Duration) -> CheckResult {
    let started = Instant::now();
    match tokio::time::timeout(limit, get(target, tls)).await {
        Ok(Ok(200)) => pass(format!(
            "https {}: answered 200 in {} ms",
            target.url,
            millis(started)
        )),
        Ok(Ok(status)) => fail(format!("https {}: answered {status}, not 200", target.url)),
        Ok(Err(reason)) => fail(format!("https {}: {reason}", target.url)),
        Err(_) => fail(format!(
            "https {}: no answer within {} s",
            target.url,
            limit.as_secs()
        )),
    }
}

/// One GET over a fresh TLS connection; the status code.
async fn get(target: &HttpsTarget, tls: &TlsSetup) -> Result<u16, String> {
    let stream = tokio::net::TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(|e| e.to_string())?;
    let name = rustls::pki_types::ServerName::try_from(target.host.clone()).map_err(|e| {
        format!(
            "`{}` cannot be checked against a certificate: {e}",
            target.host
        )
    })?;
    let stream = tls
        .connector
        .connect(name, stream)
        .await
        .map_err(|e| format!("TLS: {e}"))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP: {e}"))?;
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    // An IPv6 address is written in brackets in the Host header.
    let host = if target.host.contains(':') {
        format!("[{}]", target.host)
    } else {
        target.host.clone()
    };
    let authority = if target.port == 443 {
        host
    } else {
        format!("{host}:{}", target.port)
    };
    let request = http::Request::get(target.path.as_str())
        .header(http::header::HOST, authority)
        .header(http::header::USER_AGENT, "tierwise-agent health check")
        .body(http_body_util::Empty::<hyper::body::Bytes>::new())
        .map_err(|e| format!("HTTP request: {e}"))?;
    let answer = sender.send_request(request).await;
    driver.abort();
    answer
        .map(|response| response.status().as_u16())
        .map_err(|e| format!("HTTP: {e}"))
}

#[cfg(windows)]
async fn service(name: &str, limit: Duration) -> CheckResult {
    let owned = name.to_owned();
    let state = tokio::time::timeout(
        limit,
        tokio::task::spawn_blocking(move || service_state(&owned)),
    )
    .await;
    match state {
        Ok(Ok(Ok("running"))) => pass(format!("service {name}: running")),
        Ok(Ok(Ok(state))) => fail(format!("service {name}: {state}, not running")),
        Ok(Ok(Err(reason))) => fail(format!("service {name}: {reason}")),
        Ok(Err(e)) => fail(format!("service {name}: {e}")),
        Err(_) => fail(format!(
            "service {name}: the Service Control Manager did not answer within {} s",
            limit.as_secs()
        )),
    }
}

/// The service's state as the Service Control Manager reports it.
#[cfg(windows)]
fn service_state(name: &str) -> Result<&'static str, String> {
    use windows_service::service::{ServiceAccess, ServiceState};
    use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};
    let manager = ServiceManager::local_computer(None::<&str>, ServiceManagerAccess::CONNECT)
        .map_err(|e| format!("cannot reach the Service Control Manager: {e}"))?;
    let service = manager
        .open_service(name, ServiceAccess::QUERY_STATUS)
        .map_err(|e| format!("no such service, or it cannot be queried: {e}"))?;
    let status = service
        .query_status()
        .map_err(|e| format!("cannot query its state: {e}"))?;
    Ok(match status.current_state {
        ServiceState::Running => "running",
        ServiceState::Stopped => "stopped",
        ServiceState::StartPending => "starting",
        ServiceState::StopPending => "stopping",
        ServiceState::Paused => "paused",
        ServiceState::PausePending => "pausing",
        ServiceState::ContinuePending => "resuming",
    })
}

#[cfg(not(windows))]
async fn service(name: &str, _limit: Duration) -> CheckResult {
    // The configuration refuses `services` off Windows; kept total.
    fail(format!(
        "service {name}: service checks work only on Windows"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checks(tcp: Vec<TcpTarget>, wait: Duration) -> HealthChecks {
        HealthChecks {
            tcp,
            https: Vec::new(),
            services: Vec::new(),
            ca_file: None,
            wait,
        }
    }

    #[tokio::test]
    async fn a_listening_port_passes_and_a_closed_one_fails_with_its_reason() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let open = listener.local_addr().expect("addr").port();
        // A port nobody listens on: bound, then released.
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        let target = |port| TcpTarget {
            host: "127.0.0.1".into(),
            port,
        };
        let verdict = verify(
            &checks(vec![target(open)], Duration::from_secs(1)),
            &|_: &str| {},
        )
        .await;
        assert!(verdict.passed, "{verdict:?}");
        assert!(verdict.lines[0].starts_with("ok   tcp 127.0.0.1:"));

        let heard = std::sync::Mutex::new(Vec::new());
        let verdict = verify(
            &checks(vec![target(open), target(closed)], Duration::from_secs(3)),
            &|line: &str| heard.lock().expect("lock").push(line.to_owned()),
        )
        .await;
        assert!(!verdict.passed);
        assert_eq!(verdict.lines.len(), 2);
        let failure = verdict.first_failure().expect("a failure");
        assert!(
            failure.starts_with(&format!("FAIL tcp 127.0.0.1:{closed}: ")),
            "{failure}"
        );
        // It tried again before giving up, and said what it waited for.
        assert!(heard
            .lock()
            .expect("lock")
            .iter()
            .any(|l| l.contains(&format!("127.0.0.1:{closed}"))));
        drop(listener);
    }

    #[tokio::test]
    async fn a_port_that_opens_during_the_wait_passes() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        let opener = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(2500)).await;
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                .await
                .expect("bind again");
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(listener);
        });
        let verdict = verify(
            &checks(
                vec![TcpTarget {
                    host: "127.0.0.1".into(),
                    port,
                }],
                Duration::from_secs(20),
            ),
            &|_: &str| {},
        )
        .await;
        opener.abort();
        assert!(verdict.passed, "{verdict:?}");
        assert!(verdict.waited >= Duration::from_secs(2), "{verdict:?}");
    }

    /// An HTTPS server on localhost with a certificate of its own, answering
    /// every request with `status`; returns its port and its certificate.
    async fn https_server(status: u16) -> (u16, String) {
        let key = rcgen::KeyPair::generate().expect("key");
        let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
        let certificate = params.self_signed(&key).expect("certificate");
        let pem = certificate.pem();
        let config = rustls::ServerConfig::builder_with_provider(tierwise_transport::provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![certificate.der().clone()],
                rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).expect("key der"),
            )
            .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while let Ok((stream, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let mut request = Vec::new();
                    let mut buffer = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buffer[..n]),
                        }
                    }
                    let answer = format!(
                        "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    );
                    let _ = tls.write_all(answer.as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        (port, pem)
    }

    fn https_checks(port: u16, ca_file: Option<std::path::PathBuf>) -> HealthChecks {
        HealthChecks {
            tcp: Vec::new(),
            https: vec![HttpsTarget {
                url: format!("https://localhost:{port}/"),
                host: "localhost".into(),
                port,
                path: "/".into(),
            }],
            services: Vec::new(),
            ca_file,
            wait: Duration::from_secs(1),
        }
    }

    #[tokio::test]
    async fn an_https_url_passes_on_200_from_a_trusted_server_only() {
        let dir = tempfile::tempdir().expect("dir");
        let (good, pem) = https_server(200).await;
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, &pem).expect("write");

        let verdict = verify(&https_checks(good, Some(ca.clone())), &|_: &str| {}).await;
        assert!(verdict.passed, "{verdict:?}");
        assert!(verdict.lines[0].contains("answered 200"), "{verdict:?}");

        // The same server, not trusted: the certificate is the failure.
        let verdict = verify(&https_checks(good, None), &|_: &str| {}).await;
        assert!(!verdict.passed);
        let failure = verdict.first_failure().expect("failure");
        assert!(
            failure.contains("TLS:") && failure.contains("certificate"),
            "{failure}"
        );

        // A ca_file that cannot be read says so in the check's line.
        let verdict = verify(
            &https_checks(good, Some(dir.path().join("missing.pem"))),
            &|_: &str| {},
        )
        .await;
        let failure = verdict.first_failure().expect("failure");
        assert!(failure.contains("missing.pem cannot be used"), "{failure}");

        // Trusted, but not well: the status is the failure.
        let (sick, pem) = https_server(503).await;
        std::fs::write(&ca, &pem).expect("write");
        let verdict = verify(&https_checks(sick, Some(ca)), &|_: &str| {}).await;
        assert!(!verdict.passed);
        assert!(
            verdict
                .first_failure()
                .expect("failure")
                .ends_with("answered 503, not 200"),
            "{verdict:?}"
        );
    }
}
