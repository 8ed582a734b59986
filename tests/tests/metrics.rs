//! Prometheus metrics scraped from a real controller during and after a
//! rollout of real agents, and parsed: the fleet's gauges, step counters and
//! histograms, enrollments and store latency.

#![allow(clippy::unwrap_used)] // A failed unwrap is a failed test, with its message.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::time::Duration;
use tierwise_e2e::{wait_for, Fleet, FleetOptions, V263};

/// `GET /metrics` over plain HTTP: (content type, body).
fn scrape(addr: &str) -> (String, String) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let content_type = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type: ")
                .map(str::to_owned)
        })
        .unwrap_or_default();
    (content_type, body.to_owned())
}

/// Samples by `name{labels}` (labels as written), from the text format.
fn parse(text: &str) -> BTreeMap<String, f64> {
    let mut samples = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (key, value) = line.rsplit_once(' ').unwrap();
        samples.insert(key.to_owned(), value.parse::<f64>().unwrap());
    }
    samples
}

fn get(samples: &BTreeMap<String, f64>, key: &str) -> f64 {
    *samples.get(key).unwrap_or_else(|| {
        panic!(
            "no {key} in:\n{}",
            samples.keys().cloned().collect::<Vec<_>>().join("\n")
        )
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn metrics_are_scraped_and_parsed_during_a_rollout() {
    let addr: &'static str = Box::leak(format!("127.0.0.1:{}", free_port()).into_boxed_str());
    let fleet = Fleet::start(&FleetOptions {
        clients: 3,
        client_delay: "0.5",
        controller_flags: vec!["--metrics-listen", addr],
        ..FleetOptions::default()
    })
    .unwrap();
    let (content_type, text) = scrape(addr);
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    assert!(text.ends_with("# EOF\n"), "{text}");
    let before = parse(&text);
    assert_eq!(
        get(
            &before,
            r#"tierwise_agents_connected{installation="prod",role="client"}"#
        ),
        3.0
    );
    assert_eq!(
        get(
            &before,
            r#"tierwise_hosts{installation="prod",role="client",version="9.3.1.33994"}"#
        ),
        3.0
    );
    assert_eq!(
        get(&before, r#"tierwise_enrollments_total{outcome="enrolled"}"#),
        5.0
    );
    assert_eq!(
        get(
            &before,
            r#"tierwise_store_operation_seconds_count{operation="hello"}"#
        ),
        5.0
    );
    assert!(before.contains_key("tierwise_tls_handshake_failures_total"));

    fleet.controller.rollout_start(&[]).unwrap();
    // While it runs: a rollout in a running state, and steps counted.
    let (during, _) = wait_for(
        "steps counted while running",
        Duration::from_secs(60),
        || {
            let samples = parse(&scrape(addr).1);
            let running = samples
                .get(r#"tierwise_rollouts{state="running"}"#)
                .copied()
                .unwrap_or_default();
            let steps: f64 = samples
                .iter()
                .filter(|(k, _)| k.starts_with("tierwise_steps_total"))
                .map(|(_, v)| v)
                .sum();
            Ok((running == 1.0 && steps > 0.0).then_some(samples))
        },
    )
    .unwrap();
    assert!(get(&during, "tierwise_dispatch_latency_seconds_count") > 0.0);

    wait_for("rollout completed", Duration::from_secs(120), || {
        let status = fleet.controller.rollout_status()?;
        Ok((status["state"] == "completed").then_some(()))
    })
    .unwrap();
    let after = parse(&scrape(addr).1);
    assert_eq!(get(&after, r#"tierwise_rollouts{state="completed"}"#), 1.0);
    assert_eq!(
        get(
            &after,
            &format!(r#"tierwise_hosts{{installation="prod",role="client",version="{V263}"}}"#)
        ),
        3.0
    );
    // One install per client and one on the server, all succeeded.
    assert_eq!(
        get(
            &after,
            r#"tierwise_steps_total{action="install",outcome="succeeded"}"#
        ),
        4.0
    );
    assert_eq!(
        get(
            &after,
            r#"tierwise_step_duration_seconds_count{action="install"}"#
        ),
        4.0
    );
    // The clients' installs take half a second each (4 s leaves room for a
    // busy machine).
    assert!(
        get(
            &after,
            r#"tierwise_step_duration_seconds_bucket{le="4.0",action="install"}"#
        ) >= 3.0
    );
    assert!(
        get(
            &after,
            r#"tierwise_step_duration_seconds_sum{action="install"}"#
        ) >= 1.5
    );
    // Nine steps: backup, stop, install, start and reactivation on the
    // server, the web deployment, three client installs.
    assert!(get(&after, "tierwise_dispatch_latency_seconds_count") >= 9.0);
    assert!(
        get(
            &after,
            r#"tierwise_store_operation_seconds_count{operation="step_result"}"#
        ) >= 9.0
    );
    // The new versions came as inventory reports.
    assert!(
        get(
            &after,
            r#"tierwise_store_operation_seconds_count{operation="inventory_report"}"#
        ) >= 4.0
    );
}
