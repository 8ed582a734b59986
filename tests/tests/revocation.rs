//! Revocation holds at every moment: a stream opened before `hosts revoke`
//! cannot register a session afterwards, an agent that reconnects by
//! resuming its TLS session is still refused at its hello, and a renewal is accepted only
//! past half of a certificate's life and retires the certificate it
//! replaces.

#![allow(clippy::unwrap_used)] // A failed unwrap is a failed test, with its message.

use rustls::pki_types::pem::PemObject;
use std::time::Duration;
use tierwise_e2e::wire::{hello, session_outcome};
use tierwise_e2e::Controller;
use tierwise_proto::v1::{agent_service_client::AgentServiceClient, RenewRequest};
use tierwise_transport::client::{client_config, ControllerAddress, Identity, Trust};
use tierwise_transport::files;
use tonic::transport::Channel;
use tonic::Code;

const V931: &str = "9.3.1.33994";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_opened_before_a_revocation_cannot_say_hello_after_it() {
    let root = tempfile::tempdir().unwrap();
    let controller = Controller::start(&root.path().join("controller"), "127.0.0.1:0").unwrap();
    let channel = controller.agent_channel("cl-late").await.unwrap();

    // The stream opens (and is authorised) now; its hello comes later.
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let session = tokio::spawn(async move {
        AgentServiceClient::new(channel)
            .session(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let out =
        tokio::task::block_in_place(|| controller.cli(&["hosts", "revoke", "cl-late"])).unwrap();
    assert!(out.contains("1 certificate(s) revoked"), "{out}");
    tx.send(hello("cl-late", V931, String::new()))
        .await
        .unwrap();

    let refused = tokio::time::timeout(Duration::from_secs(10), session)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert!(refused.message().contains("was revoked at"), "{refused:?}");
    // No session was registered: the host never came online.
    let host = tokio::task::block_in_place(|| controller.host("cl-late")).unwrap();
    assert!(
        host.as_ref().is_none_or(|h| h["online"] == false),
        "{host:?}"
    );
}

/// `GET /metrics` over plain HTTP: the value of the counter `name`.
fn counter(metrics: &str, name: &str) -> f64 {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(metrics).unwrap();
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {metrics}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {answer}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_resumes_its_tls_session_is_still_refused_once_revoked() {
    let root = tempfile::tempdir().unwrap();
    let metrics = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let controller = Controller::start_with(
        &root.path().join("controller"),
        "127.0.0.1:0",
        &["--metrics-listen", &metrics],
    )
    .unwrap();
    let address: ControllerAddress = controller.url().parse().unwrap();
    // One configuration across connections, as an agent keeps it.
    let config = controller
        .agent_config_in("cl-resumed", "prod")
        .await
        .unwrap();

    // A full handshake, a hello, a welcome (the session tickets come
    // before it), then the connection ends.
    let channel = address.connect(config.clone(), |e| e).await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(hello("cl-resumed", V931, String::new()))
        .await
        .unwrap();
    let mut inbound = AgentServiceClient::new(channel)
        .session(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let welcome = tokio::time::timeout(Duration::from_secs(10), inbound.message())
        .await
        .unwrap()
        .unwrap();
    assert!(welcome.is_some());
    drop((tx, inbound));
    let resumed_before = counter(&metrics, "tierwise_tls_resumed_handshakes_total");

    let out =
        tokio::task::block_in_place(|| controller.cli(&["hosts", "revoke", "cl-resumed"])).unwrap();
    assert!(out.contains("1 certificate(s) revoked"), "{out}");

    // The reconnect resumes (no certificate is presented again) and the
    // hello is refused all the same.
    let channel = address.connect(config, |e| e).await.unwrap();
    let refused = session_outcome(
        &channel,
        vec![hello("cl-resumed", V931, String::new())],
        true,
    )
    .await;
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert!(refused.message().contains("was revoked at"), "{refused:?}");
    assert_eq!(
        counter(&metrics, "tierwise_tls_resumed_handshakes_total"),
        resumed_before + 1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_waits_for_half_the_lifetime_and_retires_the_old_certificate() {
    let root = tempfile::tempdir().unwrap();
    let controller = Controller::start_with(
        &root.path().join("controller"),
        "127.0.0.1:0",
        &[
            "--agent-cert-lifetime",
            "10s",
            "--renew-rate-per-host",
            "60/min",
        ],
    )
    .unwrap();
    let old = controller.agent_channel("cl-renew").await.unwrap();
    let enrolled = std::time::Instant::now();
    // Renews over `channel`; the new certificate's channel, or the refusal.
    let renew = |channel: Channel| {
        let controller = &controller;
        async move {
            let (key_pem, csr) = tierwise_transport::key_and_request("cl-renew").unwrap();
            let answer = AgentServiceClient::new(channel)
                .renew(RenewRequest { csr_der: csr })
                .await?
                .into_inner();
            let chain = files::certificates_from_pem(answer.certificate_pem.as_bytes()).unwrap();
            let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
            let ca = controller.ca_certificate().unwrap();
            let config =
                client_config(&Trust::Ca(vec![ca]), Some(Identity { chain, key })).unwrap();
            let address: ControllerAddress = controller.url().parse().unwrap();
            Ok::<_, tonic::Status>(address.connect(config, |e| e).await.unwrap())
        }
    };

    // Too early: refused, and nothing was issued.
    let early = renew(old.clone()).await.unwrap_err();
    assert_eq!(early.code(), Code::FailedPrecondition, "{early:?}");
    assert!(early.message().contains("can be renewed from"), "{early:?}");

    // Past half of its life: renewed. The agent loses that answer, keeps
    // working with the old certificate and renews again; the first new
    // certificate, never used, is discarded.
    tokio::time::sleep(Duration::from_millis(5_500).saturating_sub(enrolled.elapsed())).await;
    let lost = renew(old.clone()).await.unwrap();
    let kept = renew(old.clone()).await.unwrap();
    let discarded = renew(lost).await.unwrap_err();
    assert!(
        discarded.message().contains("replaced by a renewal"),
        "{discarded:?}"
    );

    // The new certificate's first use retires the old one: no session, no
    // second renewal.
    let used = renew(kept).await.unwrap_err();
    assert_eq!(used.code(), Code::FailedPrecondition, "{used:?}");
    let status = session_outcome(&old, vec![hello("cl-renew", V931, String::new())], true).await;
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(
        status.message().contains("replaced by a renewal"),
        "{status:?}"
    );
    let again = renew(old).await.unwrap_err();
    assert!(
        again.message().contains("replaced by a renewal"),
        "{again:?}"
    );

    let audit = tokio::task::block_in_place(|| controller.cli(&["audit"])).unwrap();
    assert!(audit.contains("host renew"), "{audit}");
}
