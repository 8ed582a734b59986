//! The standard gRPC health service and server reflection on a real
//! controller, spoken to as `grpcurl` and a Kubernetes probe would: health
//! answers anyone (over TLS, and without TLS on `--health-listen`) and says
//! NOT_SERVING once the controller drains; reflection needs an operator.

#![allow(clippy::unwrap_used)] // A failed unwrap is a failed test, with its message.

use std::time::Duration;
use tierwise_e2e::Controller;
use tierwise_transport::client::{client_config, ControllerAddress, Trust};
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_reflection::pb::v1::ServerReflectionRequest;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn check(service: &str) -> HealthCheckRequest {
    HealthCheckRequest {
        service: service.into(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn health_answers_anyone_reflection_needs_an_operator_and_draining_is_not_serving() {
    let root = tempfile::tempdir().unwrap();
    let probe = format!("127.0.0.1:{}", free_port());
    let controller = tokio::task::block_in_place(|| {
        Controller::start_with(
            &root.path().join("controller"),
            "127.0.0.1:0",
            &["--health-listen", &probe],
        )
    })
    .unwrap();
    // Over TLS, trusting the CA, with neither a client certificate nor a token.
    let ca = controller.ca_certificate().unwrap();
    let address: ControllerAddress = controller.url().parse().unwrap();
    let tls = address
        .connect(client_config(&Trust::Ca(vec![ca]), None).unwrap(), |e| e)
        .await
        .unwrap();
    let mut health = HealthClient::new(tls.clone());
    for service in ["", "tierwise.v1.AgentService", "tierwise.v1.AdminService"] {
        let answer = health.check(check(service)).await.unwrap().into_inner();
        assert_eq!(answer.status(), ServingStatus::Serving, "{service:?}");
    }
    let unknown = health.check(check("nope.Service")).await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);

    // Without TLS, on the probe listener (a Kubernetes gRPC probe).
    let plain = tonic::transport::Channel::from_shared(format!("http://{probe}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let answer = HealthClient::new(plain.clone())
        .check(check(""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.status(), ServingStatus::Serving);

    // Reflection: refused without a token, the protocol with one.
    let list = || {
        tokio_stream::iter([ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        }])
    };
    let refused = ServerReflectionClient::new(tls.clone())
        .server_reflection_info(list())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    let token = controller.admin_token().unwrap();
    let bearer: tonic::metadata::MetadataValue<_> =
        format!("Bearer {}", token.trim()).parse().unwrap();
    let mut request = tonic::Request::new(list());
    request.metadata_mut().insert("authorization", bearer);
    let mut stream = ServerReflectionClient::new(tls.clone())
        .server_reflection_info(request)
        .await
        .unwrap()
        .into_inner();
    let answer = stream.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(services)) = answer.message_response else {
        panic!("not a list of services: {answer:?}");
    };
    let names: Vec<&str> = services.service.iter().map(|s| s.name.as_str()).collect();
    assert!(
        names.contains(&"tierwise.v1.AdminService")
            && names.contains(&"tierwise.v1.AgentService")
            && names.contains(&"grpc.health.v1.Health"),
        "{names:?}"
    );
    // The older reflection version is guarded the same way.
    use tonic_reflection::pb::v1alpha;
    let refused = v1alpha::server_reflection_client::ServerReflectionClient::new(tls.clone())
        .server_reflection_info(tokio_stream::iter([v1alpha::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(
                v1alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
            ),
        }]))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");

    // A watcher sees SERVING, then NOT_SERVING as soon as the controller is
    // told to stop (the plaintext probe, which answers until the end, too).
    let mut watch = health.watch(check("")).await.unwrap().into_inner();
    let first = watch.message().await.unwrap().unwrap();
    assert_eq!(first.status(), ServingStatus::Serving);
    let pid = controller.process.pid().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let next = tokio::time::timeout(Duration::from_secs(10), watch.message())
        .await
        .expect("a status change within 10 s")
        .unwrap()
        .unwrap();
    assert_eq!(next.status(), ServingStatus::NotServing);
}
