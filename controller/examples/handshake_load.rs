//! Handshake cost: how many agent enrollments and mutual-TLS reconnects per
//! second one controller sustains on this machine.
//!
//! `cargo run --release -p tierwise-controller --example handshake_load [-- SECONDS CLIENTS [limits]]`
//!
//! All clients enroll from 127.0.0.1 with one token, which the default
//! enrollment rate limits (per address, per token) would throttle by
//! design; they are off for the throughput figure unless `limits` is given,
//! which measures with the defaults (what one address and one token get).
//!
//! A real controller (TLS, SQLite store, its own CA) runs in this process on
//! a runtime of its own; the load runs on another runtime, so both share the
//! machine's cores as a controller and its agents on one box would.
//! - enrollments: each client makes a key pair and a certificate request,
//!   connects pinning the CA by fingerprint and calls `Enroll` with a
//!   multi-use token (a new host id each time): one TLS handshake, one CSR
//!   signature check, one certificate signed, one store transaction.
//! - reconnects: enrolled agents open a new connection with their client
//!   certificate, are identified by their certificate in the store, send
//!   `Hello` and wait for `Welcome` (the hello is recorded, the certificate
//!   checked for revocation), then disconnect. Measured twice: full TLS 1.3
//!   handshakes (resumption off on the client), then resumed sessions (each
//!   client keeps its configuration and so the controller's tickets, as an
//!   agent does across reconnects).

#![allow(clippy::unwrap_used, clippy::expect_used)] // A load tool: a failure is the answer.

use rustls::pki_types::pem::PemObject;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tierwise_controller::server::{self, ServeSettings};
use tierwise_controller::store::DatabaseUrl;
use tierwise_proto::v1::{
    agent_message, agent_service_client::AgentServiceClient, AgentMessage, EnrollRequest, Hello,
};
use tierwise_transport::client::{client_config, ControllerAddress, Identity, Trust};
use tierwise_transport::files;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seconds: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(10);
    let clients: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(16);
    let limited = args.get(3).is_some_and(|a| a == "limits");
    let limits = if limited {
        tierwise_controller::grpc::limits::LimitSettings::default()
    } else {
        tierwise_controller::grpc::limits::LimitSettings {
            enroll_per_address: tierwise_common::ratelimit::Rate::OFF,
            enroll_per_token: tierwise_common::ratelimit::Rate::OFF,
            ..Default::default()
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_path_buf();

    let controller_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let settings = ServeSettings {
        listen: "127.0.0.1:0".parse().unwrap(),
        database: DatabaseUrl::sqlite_file(&data_dir.join("tierwise.db")),
        data_dir: data_dir.clone(),
        pki: tierwise_controller::pki::PkiSettings::default(),
        agent_certificate_lifetime: Duration::from_secs(3600),
        max_handshakes_per_address: server::DEFAULT_HANDSHAKES_PER_ADDRESS,
        max_session_age: None,
        limits,
        health_listen: None,
        metrics_listen: None,
        ui_listen: None,
        allow_unsigned_releases: false,
        release_root: None,
    };
    let running = controller_rt.block_on(server::start(&settings)).unwrap();
    let address: ControllerAddress = format!("https://{}", running.addr).parse().unwrap();
    let fingerprint = running.fingerprint;

    let load_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    load_rt.block_on(async move {
        let ca =
            files::read_certificates(&tierwise_controller::pki::ca_cert_path(&data_dir)).unwrap();
        let admin = std::fs::read_to_string(server::admin_token_path(&data_dir)).unwrap();
        let connection = tierwise_controller::cli::Connection {
            controller: address.to_string(),
            ca_cert: Some(tierwise_controller::pki::ca_cert_path(&data_dir)),
            token: Some(admin.trim().to_owned()),
            token_file: None,
        };
        let mut admin_client = tierwise_controller::cli::connect(&connection)
            .await
            .unwrap();
        let token = admin_client
            .create_token(tierwise_proto::v1::CreateTokenRequest {
                installation: String::new(),
                uses: 1_000_000,
                expires_seconds: 3600,
            })
            .await
            .unwrap()
            .into_inner()
            .token;
        let pinned = client_config(&Trust::Pinned(fingerprint), None).unwrap();

        // Enrollments.
        let enrolled = Arc::new(AtomicU64::new(0));
        let refused = Arc::new(AtomicU64::new(0));
        let identities = Arc::new(tokio::sync::Mutex::new(Vec::new()));
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let mut tasks = Vec::new();
        for c in 0..clients {
            let (address, pinned, token, enrolled, refused, identities) = (
                address.clone(),
                pinned.clone(),
                token.clone(),
                enrolled.clone(),
                refused.clone(),
                identities.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let mut n = 0;
                while Instant::now() < deadline {
                    let host_id = format!("load-{c}-{n}");
                    n += 1;
                    let (key_pem, csr) = tierwise_transport::key_and_request(&host_id).unwrap();
                    let channel = address.connect(pinned.clone(), |e| e).await.unwrap();
                    let answer = match AgentServiceClient::new(channel)
                        .enroll(EnrollRequest {
                            token: token.clone(),
                            host_id: host_id.clone(),
                            installation: "load".into(),
                            csr_der: csr,
                        })
                        .await
                    {
                        Ok(answer) => answer.into_inner(),
                        Err(status) if status.code() == tonic::Code::ResourceExhausted => {
                            refused.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        Err(status) => panic!("enrollment failed: {status}"),
                    };
                    enrolled.fetch_add(1, Ordering::Relaxed);
                    let mut list = identities.lock().await;
                    if list.len() < clients {
                        list.push((host_id, answer.certificate_pem, key_pem));
                    }
                }
            }));
        }
        let started = Instant::now();
        for task in tasks {
            task.await.unwrap();
        }
        let enroll_rate = enrolled.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();

        // Reconnects with mutual TLS: first full handshakes (resumption off
        // on the client), then as agents make them (one configuration per
        // agent, kept across reconnects, so each resumes with a ticket).
        let identities: Vec<_> = identities.lock().await.drain(..).collect();
        let full_rate = reconnects(&address, &ca, &identities, seconds, false).await;
        let resumed_before = tierwise_transport::server::resumed_handshakes();
        let resumed_rate = reconnects(&address, &ca, &identities, seconds, true).await;
        let resumed = tierwise_transport::server::resumed_handshakes() - resumed_before;
        println!(
            "{} clients, {seconds} s each phase, controller and load on this machine ({} cores)",
            clients,
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        println!(
            "enrollments: {enroll_rate:.0}/s ({} in all; {} refused by the rate limits{})",
            enrolled.load(Ordering::Relaxed),
            refused.load(Ordering::Relaxed),
            if limited {
                ", which are at their defaults"
            } else {
                ", which are off"
            }
        );
        println!(
            "mTLS reconnects (handshake + Hello + Welcome), full handshakes: {:.0}/s ({} in all)",
            full_rate.0, full_rate.1
        );
        println!(
            "mTLS reconnects (handshake + Hello + Welcome), resumed sessions: {:.0}/s ({} in all, {resumed} resumed)",
            resumed_rate.0, resumed_rate.1
        );
    });
    controller_rt.block_on(running.shutdown()).unwrap();
}

/// Each identity reconnects over and over for `seconds`: connect, `Hello`,
/// wait for `Welcome`, disconnect. With `resume`, each keeps one client
/// configuration (and so its session tickets) as an agent does; without,
/// resumption is off and every handshake is a full one. Returns the rate
/// per second and the count.
async fn reconnects(
    address: &ControllerAddress,
    ca: &[rustls::pki_types::CertificateDer<'static>],
    identities: &[(String, String, String)],
    seconds: u64,
    resume: bool,
) -> (f64, u64) {
    let count = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for (host_id, certificate_pem, key_pem) in identities {
        let host_id = host_id.clone();
        let chain = files::certificates_from_pem(certificate_pem.as_bytes()).unwrap();
        let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
        let mut config =
            client_config(&Trust::Ca(ca.to_vec()), Some(Identity { chain, key })).unwrap();
        if !resume {
            let mut full = (*config).clone();
            full.resumption = rustls::client::Resumption::disabled();
            config = Arc::new(full);
        }
        let (address, count) = (address.clone(), count.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let channel = address.connect(config.clone(), |e| e).await.unwrap();
                let (tx, rx) = tokio::sync::mpsc::channel(1);
                tx.send(AgentMessage {
                    body: Some(agent_message::Body::Hello(Hello {
                        host_id: host_id.clone(),
                        installation: "load".into(),
                        hostname: host_id.clone(),
                        os: "load".into(),
                        agent_version: "load".into(),
                        heartbeat_seconds: 60,
                        inventory: None,
                        boot_ms: 0,
                    })),
                })
                .await
                .unwrap();
                let mut inbound = AgentServiceClient::new(channel)
                    .session(tokio_stream::wrappers::ReceiverStream::new(rx))
                    .await
                    .unwrap()
                    .into_inner();
                inbound.message().await.unwrap().expect("a Welcome");
                drop(tx);
                count.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let started = Instant::now();
    for task in tasks {
        task.await.unwrap();
    }
    let n = count.load(Ordering::Relaxed);
    (n as f64 / started.elapsed().as_secs_f64(), n)
}
