//! One signed POST to a webhook over a fresh connection: plain HTTP, or
//! HTTPS checked against the system's trusted certificates (rustls with
//! ring). Every part has a time limit, so a receiver that hangs costs its
//! own subscription a retry, never anything else.

use hyper::body::Bytes;
use std::sync::Arc;
use std::time::Duration;

/// How long connecting (TCP and TLS) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the whole request may take, connecting included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Where a URL points.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Target {
    https: bool,
    host: String,
    port: u16,
    /// Path and query, as sent in the request line.
    path: String,
    /// The Host header.
    authority: String,
}

fn target(url: &str) -> Result<Target, String> {
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(format!("`{url}` is neither http nor https")),
    };
    let host = uri
        .host()
        .ok_or_else(|| format!("`{url}` names no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    Ok(Target {
        https,
        port,
        path: uri
            .path_and_query()
            .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned()),
        authority: uri
            .authority()
            .map_or_else(|| host.clone(), |a| a.as_str().to_owned()),
        host,
    })
}

/// The HTTP client of the notification sender.
#[derive(Clone)]
pub struct WebhookClient {
    tls: tokio_rustls::TlsConnector,
}

impl std::fmt::Debug for WebhookClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookClient")
    }
}

impl WebhookClient {
    /// Trusts the system's certificates (none found: https receivers fail
    /// with a TLS error saying so, http ones still work).
    pub fn new() -> Result<Self, String> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        let config = rustls::ClientConfig::builder_with_provider(tierwise_transport::provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self {
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
        })
    }

    /// POSTs `body` with `headers`; `Ok` for a 2xx answer, otherwise what
    /// went wrong, for `notify list` to show.
    pub async fn post(
        &self,
        url: &str,
        headers: &[(&'static str, String)],
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<u16, String> {
        let target = target(url)?;
        let send = self.send(&target, headers, content_type, body);
        match tokio::time::timeout(REQUEST_TIMEOUT, send).await {
            Ok(Ok(status)) if (200..300).contains(&status) => Ok(status),
            Ok(Ok(status)) => Err(format!("{} answered HTTP {status}", target.authority)),
            Ok(Err(e)) => Err(format!("{}: {e}", target.authority)),
            Err(_) => Err(format!(
                "{}: no answer within {} s",
                target.authority,
                REQUEST_TIMEOUT.as_secs()
            )),
        }
    }

    async fn send(
        &self,
        target: &Target,
        headers: &[(&'static str, String)],
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<u16, String> {
        let connect = tokio::net::TcpStream::connect((target.host.as_str(), target.port));
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| format!("cannot connect within {} s", CONNECT_TIMEOUT.as_secs()))?
            .map_err(|e| format!("cannot connect: {e}"))?;
        let mut request = hyper::Request::post(target.path.as_str())
            .header(hyper::header::HOST, target.authority.as_str())
            .header(hyper::header::CONTENT_TYPE, content_type)
            .header(hyper::header::USER_AGENT, "tierwise-controller");
        for (name, value) in headers {
            request = request.header(*name, value.as_str());
        }
        let request = request
            .body(http_body_util::Full::new(Bytes::from(body)))
            .map_err(|e| format!("HTTP request: {e}"))?;
        if target.https {
            let name =
                rustls::pki_types::ServerName::try_from(target.host.clone()).map_err(|e| {
                    format!(
                        "`{}` cannot be checked against a certificate: {e}",
                        target.host
                    )
                })?;
            let tls = tokio::time::timeout(CONNECT_TIMEOUT, self.tls.connect(name, tcp))
                .await
                .map_err(|_| format!("no TLS handshake within {} s", CONNECT_TIMEOUT.as_secs()))?
                .map_err(|e| format!("TLS: {e}"))?;
            exchange(hyper_util::rt::TokioIo::new(tls), request).await
        } else {
            exchange(hyper_util::rt::TokioIo::new(tcp), request).await
        }
    }
}

async fn exchange<I>(
    io: I,
    request: hyper::Request<http_body_util::Full<Bytes>>,
) -> Result<u16, String>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    let answer = sender.send_request(request).await;
    driver.abort();
    answer
        .map(|response| response.status().as_u16())
        .map_err(|e| format!("HTTP: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_give_host_port_path_and_authority() {
        let t = target("https://hooks.example.com/services/T0/B0?x=1")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (
                t.https,
                t.host.as_str(),
                t.port,
                t.path.as_str(),
                t.authority.as_str()
            ),
            (
                true,
                "hooks.example.com",
                443,
                "/services/T0/B0?x=1",
                "hooks.example.com"
            )
        );
        let t = target("http://[::1]:8080").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("::1", 8080, "/")
        );
        assert!(target("ftp://x/").is_err());
    }
}
