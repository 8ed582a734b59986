//! The standard gRPC health service and server reflection, so `grpcurl` and
//! Kubernetes probes work. Health answers anyone (on the TLS listener and,
//! with `--health-listen`, on a plaintext one for probes that speak no
//! TLS) and says NOT_SERVING while the controller drains; reflection is
//! behind operator authentication like every admin call.

use crate::grpc::auth::{ADMIN_SERVICE, AGENT_SERVICE};
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;

/// The names a probe may ask about: the whole server (`""`) and each service.
pub const SERVICES: [&str; 3] = ["", AGENT_SERVICE, ADMIN_SERVICE];

/// The reflection services' full names (v1 and the v1alpha older clients use).
pub const REFLECTION_SERVICES: [&str; 2] = [
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

/// The health service's full name.
pub const HEALTH_SERVICE: &str = "grpc.health.v1.Health";

/// Marks every service serving, or not (while draining).
pub async fn mark(reporter: &HealthReporter, serving: bool) {
    let status = if serving {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    };
    for service in SERVICES {
        reporter.set_service_status(service, status).await;
    }
}

/// Reflection of the Tierwise protocol (and of reflection itself), v1 and
/// v1alpha.
pub fn reflection() -> anyhow::Result<(
    tonic_reflection::server::v1::ServerReflectionServer<
        impl tonic_reflection::server::v1::ServerReflection,
    >,
    tonic_reflection::server::v1alpha::ServerReflectionServer<
        impl tonic_reflection::server::v1alpha::ServerReflection,
    >,
)> {
    let builder = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(tierwise_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    Ok((builder().build_v1()?, builder().build_v1alpha()?))
}
