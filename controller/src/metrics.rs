//! Prometheus metrics (OpenMetrics text, `prometheus-client`) on a listener
//! of their own (`--metrics-listen`). Counters and histograms are kept in
//! the process as things happen; the fleet's gauges (agents connected,
//! hosts per version, rollouts per state) are counted by the store at
//! each scrape, so every replica reports the same fleet.

use crate::store::Store;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::OnceLock;
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InstallationRole {
    pub installation: String,
    pub role: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HostVersion {
    pub installation: String,
    pub role: String,
    pub version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct State {
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StepLabels {
    pub action: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Action {
    pub action: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Operation {
    pub operation: String,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every metric of the controller.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    agents_connected: Family<InstallationRole, Gauge>,
    hosts: Family<HostVersion, Gauge>,
    rollouts: Family<State, Gauge>,
    steps: Family<StepLabels, Counter>,
    step_duration: Histograms<Action>,
    dispatch_latency: Histogram,
    command_delivery: Histogram,
    handshake_failures: Counter,
    resumed_handshakes: Counter,
    enrollments: Family<Outcome, Counter>,
    store_latency: Histograms<Operation>,
    notifications: Family<Outcome, Counter>,
}

/// The metric names, for the documentation's sake and its test.
pub const NAMES: [&str; 12] = [
    "tierwise_agents_connected",
    "tierwise_hosts",
    "tierwise_rollouts",
    "tierwise_steps_total",
    "tierwise_step_duration_seconds",
    "tierwise_dispatch_latency_seconds",
    "tierwise_tls_handshake_failures_total",
    "tierwise_enrollments_total",
    "tierwise_store_operation_seconds",
    "tierwise_notifications_total",
    "tierwise_tls_resumed_handshakes_total",
    "tierwise_command_delivery_seconds",
];

fn step_buckets() -> Histogram {
    // 1 s … about 9 h: installers take minutes.
    Histogram::new(exponential_buckets(1.0, 2.0, 16))
}

/// 1 ms … about 5 s in steps of a fifth: fine enough to read a p99 off
/// (the load tool does) where the goal is tens of milliseconds.
pub fn command_delivery_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.001, 1.2, 48)
}

fn store_buckets() -> Histogram {
    // 0.5 ms … about 16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::default();
        let agents_connected = Family::<InstallationRole, Gauge>::default();
        registry.register(
            "tierwise_agents_connected",
            "Agents online, by installation and the role of each component they report",
            agents_connected.clone(),
        );
        let hosts = Family::<HostVersion, Gauge>::default();
        registry.register(
            "tierwise_hosts",
            "Hosts by installation, role and installed version (unknown, not_installed)",
            hosts.clone(),
        );
        let rollouts = Family::<State, Gauge>::default();
        registry.register("tierwise_rollouts", "Rollouts by state", rollouts.clone());
        let steps = Family::<StepLabels, Counter>::default();
        registry.register(
            "tierwise_steps",
            "Step results received, by action and outcome",
            steps.clone(),
        );
        let step_duration =
            Histograms::<Action>::new_with_constructor(step_buckets as fn() -> Histogram);
        registry.register(
            "tierwise_step_duration_seconds",
            "How long steps ran on their hosts, by action",
            step_duration.clone(),
        );
        let dispatch_latency = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        registry.register(
            "tierwise_dispatch_latency_seconds",
            "From the commit that dispatches a step to its command leaving on the agent's stream",
            dispatch_latency.clone(),
        );
        let command_delivery = Histogram::new(command_delivery_buckets());
        registry.register(
            "tierwise_command_delivery_seconds",
            "From the commit that dispatches a command to the agent's connection taking it off the session stream to write it",
            command_delivery.clone(),
        );
        let handshake_failures = Counter::default();
        registry.register(
            "tierwise_tls_handshake_failures",
            "TLS handshakes refused or timed out (also connections closed unanswered after waiting 5 s for a turn, or whose peer gave up while they waited)",
            handshake_failures.clone(),
        );
        let resumed_handshakes = Counter::default();
        registry.register(
            "tierwise_tls_resumed_handshakes",
            "TLS handshakes that resumed a session with a ticket (no certificate signatures)",
            resumed_handshakes.clone(),
        );
        let enrollments = Family::<Outcome, Counter>::default();
        registry.register(
            "tierwise_enrollments",
            "Enrollment attempts by outcome (enrolled, refused, rate_limited)",
            enrollments.clone(),
        );
        let store_latency =
            Histograms::<Operation>::new_with_constructor(store_buckets as fn() -> Histogram);
        registry.register(
            "tierwise_store_operation_seconds",
            "Store operations as their callers wait for them, by operation",
            store_latency.clone(),
        );
        let notifications = Family::<Outcome, Counter>::default();
        registry.register(
            "tierwise_notifications",
            "Webhook deliveries by outcome (sent, failed, given_up)",
            notifications.clone(),
        );
        Self {
            registry,
            agents_connected,
            hosts,
            rollouts,
            steps,
            step_duration,
            dispatch_latency,
            command_delivery,
            handshake_failures,
            resumed_handshakes,
            enrollments,
            store_latency,
            notifications,
        }
    }

    /// A webhook delivery ended: `sent`, `failed` (retried later) or
    /// `given_up`.
    pub fn notification(&self, outcome: &str) {
        self.notifications
            .get_or_create(&Outcome {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// A step result arrived for a step of `action`, which ran `ran_ms` if
    /// its host said.
    pub fn step_result(&self, action: &str, outcome: &str, ran_ms: Option<i64>) {
        self.steps
            .get_or_create(&StepLabels {
                action: action.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
        if let Some(ms) = ran_ms {
            self.step_duration
                .get_or_create(&Action {
                    action: action.to_owned(),
                })
                .observe(ms as f64 / 1000.0);
        }
    }

    /// A command left on an agent's stream `latency_ms` after its dispatch.
    pub fn dispatched(&self, latency_ms: i64) {
        self.dispatch_latency
            .observe(latency_ms.max(0) as f64 / 1000.0);
    }

    /// An agent's connection took a command off its session stream, to
    /// encode and write it, `latency_ms` after the commit that dispatched
    /// it: the controller's whole part of a delivery.
    pub fn command_taken(&self, latency_ms: i64) {
        self.command_delivery
            .observe(latency_ms.max(0) as f64 / 1000.0);
    }

    /// An enrollment attempt ended: `enrolled`, `refused` or `rate_limited`.
    pub fn enrollment(&self, outcome: &str) {
        self.enrollments
            .get_or_create(&Outcome {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// A store operation took `took`.
    pub fn store_operation(&self, operation: &str, took: Duration) {
        self.store_latency
            .get_or_create(&Operation {
                operation: operation.to_owned(),
            })
            .observe(took.as_secs_f64());
    }

    /// Counts the fleet in the store and writes everything as OpenMetrics
    /// text.
    pub async fn scrape(&self, store: &Store) -> Result<String, crate::store::StoreError> {
        let started = std::time::Instant::now();
        let stats = store.fleet_stats().await?;
        self.store_operation("fleet_stats", started.elapsed());
        self.agents_connected.clear();
        for (installation, role, n) in stats.connected {
            self.agents_connected
                .get_or_create(&InstallationRole { installation, role })
                .set(n);
        }
        self.hosts.clear();
        for (installation, role, version, n) in stats.versions {
            self.hosts
                .get_or_create(&HostVersion {
                    installation,
                    role,
                    version,
                })
                .set(n);
        }
        self.rollouts.clear();
        // Every state is listed, at 0 when no rollout is in it: an alert on
        // `completed_with_failures` or `failed` needs the series to exist.
        for state in tierwise_common::rollout::RolloutState::ALL {
            self.rollouts
                .get_or_create(&State {
                    state: state.as_str().to_owned(),
                })
                .set(0);
        }
        for (state, n) in stats.rollouts {
            self.rollouts.get_or_create(&State { state }).set(n);
        }
        self.handshake_failures.inner().store(
            tierwise_transport::server::handshake_failures(),
            std::sync::atomic::Ordering::Relaxed,
        );
        self.resumed_handshakes.inner().store(
            tierwise_transport::server::resumed_handshakes(),
            std::sync::atomic::Ordering::Relaxed,
        );
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .map_err(|e| crate::store::StoreError::Corrupt(format!("encoding metrics: {e}")))?;
        Ok(text)
    }
}

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// Connections to the metrics listener from one address at once.
pub const CONNECTIONS_PER_ADDRESS: usize = 8;
/// A connection whose request headers have not all come by then is closed.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection is closed after this long however busy (a scraper opens
/// another).
const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);

/// Serves `GET /metrics` on `listener` until the task is dropped, holding
/// at most `max_connections` connections (see `tierwise_transport::slots`).
pub async fn serve(
    listener: tokio::net::TcpListener,
    store: Store,
    max_connections: usize,
) -> std::io::Result<()> {
    use axum::http::{header, StatusCode};
    use axum::response::IntoResponse;
    use tierwise_transport::slots::{SlotLimits, Slots};
    // One scrape at a time: each clears and refills the fleet's gauges.
    let turn = std::sync::Arc::new(tokio::sync::Mutex::new(()));
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let store = store.clone();
            let turn = turn.clone();
            async move {
                let _turn = turn.lock().await;
                match metrics().scrape(&store).await {
                    Ok(text) => (
                        StatusCode::OK,
                        [(
                            header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        text,
                    )
                        .into_response(),
                    Err(error) => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("the store cannot be read: {error}\n"),
                    )
                        .into_response(),
                }
            }
        }),
    );
    let service = hyper_util::service::TowerToHyperService::new(app);
    let slots = Slots::new(SlotLimits {
        total: max_connections,
        per_address: CONNECTIONS_PER_ADDRESS,
        per_certificate: 1,
    });
    let mut accepting = tierwise_transport::accept::Acceptor::new(listener, "metrics");
    loop {
        let (tcp, _, slot) = accepting.admit(&slots).await;
        let slot = std::sync::Arc::new(slot);
        let service = service.clone();
        tokio::spawn(async move {
            // Opened with its first request; until then evicted first when
            // the listener is full.
            let opened = slot.clone();
            let service = hyper::service::service_fn(move |request| {
                opened.opened(None);
                hyper::service::Service::call(&service, request)
            });
            let served = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(hyper_util::rt::TokioIo::new(tcp), service);
            tokio::select! {
                _ = slot.evicted() => {}
                _ = tokio::time::timeout(CONNECTION_LIFETIME, served) => {}
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_registered_and_documented() {
        let metrics = Metrics::new();
        metrics.step_result("install", "succeeded", Some(1500));
        metrics.enrollment("enrolled");
        metrics.store_operation("hello", Duration::from_millis(2));
        metrics.dispatched(12);
        metrics.notification("sent");
        let labels = InstallationRole {
            installation: "prod".into(),
            role: "client".into(),
        };
        metrics.agents_connected.get_or_create(&labels).set(3);
        metrics
            .hosts
            .get_or_create(&HostVersion {
                installation: "prod".into(),
                role: "client".into(),
                version: "9.3.1.33994".into(),
            })
            .set(3);
        metrics
            .rollouts
            .get_or_create(&State {
                state: "running".into(),
            })
            .set(1);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &metrics.registry).unwrap();
        let readme = include_str!("../../README.md");
        for name in NAMES {
            let family = name.trim_end_matches("_total");
            assert!(
                text.contains(&format!("# TYPE {family} ")),
                "{name} not registered:\n{text}"
            );
            assert!(
                readme.contains(&format!("`{name}`")),
                "{name} not in the README"
            );
        }
        assert!(text.contains(r#"tierwise_steps_total{action="install",outcome="succeeded"} 1"#));
    }
}
