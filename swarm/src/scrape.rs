//! The controller's own part of a delivery, read from its Prometheus
//! metrics: `tierwise_command_delivery_seconds` (the commit → the agent's
//! connection takes the command to write it), scraped before and after a
//! rollout, so the swarm prints it beside its end-to-end figure.

use anyhow::Context;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The histogram the controller keeps of its part of each delivery.
pub const COMMAND_DELIVERY: &str = "tierwise_command_delivery_seconds";

/// Reads `http://addr/metrics` (the controller's `--metrics-listen`).
pub async fn metrics(addr: SocketAddr) -> anyhow::Result<String> {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| format!("connect to the controller's metrics at {addr}"))?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: controller\r\n\r\n")
        .await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let response = String::from_utf8(response).context("the metrics are not UTF-8")?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .context("the metrics response has no body")?;
    anyhow::ensure!(
        head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200"),
        "the metrics answered {}",
        head.lines().next().unwrap_or_default()
    );
    Ok(body.to_owned())
}

/// A histogram as the text format gives it: (upper bound in seconds,
/// observations at or below it), in rising order, `+Inf` last.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Histogram(Vec<(f64, u64)>);

/// Milliseconds read off a histogram: p50 and p99 interpolated within
/// their bucket, and the upper bound of the highest bucket used.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimate {
    pub p50: f64,
    pub p99: f64,
    pub max_at_most: f64,
    pub count: u64,
}

impl Histogram {
    /// The buckets of histogram `name` in `text` (none when absent).
    pub fn parse(text: &str, name: &str) -> Self {
        let prefix = format!("{name}_bucket{{le=\"");
        let mut buckets: Vec<(f64, u64)> = text
            .lines()
            .filter_map(|line| {
                let rest = line.strip_prefix(&prefix)?;
                let (bound, rest) = rest.split_once("\"}")?;
                let bound = match bound {
                    "+Inf" => f64::INFINITY,
                    other => other.parse().ok()?,
                };
                let count = rest.split_whitespace().next()?.parse().ok()?;
                Some((bound, count))
            })
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        Self(buckets)
    }

    /// What was observed after `earlier` was read.
    pub fn since(&self, earlier: &Self) -> Self {
        Self(
            self.0
                .iter()
                .map(|&(bound, count)| {
                    let before = earlier
                        .0
                        .iter()
                        .find(|(b, _)| *b == bound)
                        .map_or(0, |(_, c)| *c);
                    (bound, count.saturating_sub(before))
                })
                .collect(),
        )
    }

    /// None when nothing was observed.
    pub fn estimate(&self) -> Option<Estimate> {
        let count = self.0.last()?.1;
        if count == 0 {
            return None;
        }
        let max_at_most = self
            .0
            .iter()
            .find(|(_, c)| *c == count)
            .map_or(f64::INFINITY, |(bound, _)| *bound);
        Some(Estimate {
            p50: self.quantile(0.50) * 1000.0,
            p99: self.quantile(0.99) * 1000.0,
            max_at_most: max_at_most * 1000.0,
            count,
        })
    }

    /// The `q` quantile in seconds, linear within its bucket (as
    /// Prometheus's `histogram_quantile` does).
    fn quantile(&self, q: f64) -> f64 {
        let total = self.0.last().map_or(0, |(_, c)| *c) as f64;
        let rank = q * total;
        let mut lower = (0.0, 0u64);
        for &(bound, count) in &self.0 {
            if count as f64 >= rank {
                if bound.is_infinite() {
                    return lower.0;
                }
                let inside = (count - lower.1) as f64;
                let into = if inside > 0.0 {
                    (rank - lower.1 as f64) / inside
                } else {
                    1.0
                };
                return lower.0 + (bound - lower.0) * into;
            }
            lower = (bound, count);
        }
        lower.0
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const TEXT: &str = "# HELP tierwise_command_delivery_seconds x\n\
        # TYPE tierwise_command_delivery_seconds histogram\n\
        tierwise_command_delivery_seconds_sum 1.5\n\
        tierwise_command_delivery_seconds_count 100\n\
        tierwise_command_delivery_seconds_bucket{le=\"0.001\"} 10\n\
        tierwise_command_delivery_seconds_bucket{le=\"0.002\"} 50\n\
        tierwise_command_delivery_seconds_bucket{le=\"0.004\"} 98\n\
        tierwise_command_delivery_seconds_bucket{le=\"0.008\"} 100\n\
        tierwise_command_delivery_seconds_bucket{le=\"+Inf\"} 100\n\
        tierwise_dispatch_latency_seconds_bucket{le=\"0.001\"} 7\n";

    #[test]
    fn reads_one_histogram_and_interpolates_within_buckets() {
        let histogram = Histogram::parse(TEXT, COMMAND_DELIVERY);
        assert_eq!(histogram.0.len(), 5);
        let estimate = histogram.estimate().unwrap();
        assert_eq!(estimate.count, 100);
        // The 50th of 100 is the top of the 1–2 ms bucket.
        assert!((estimate.p50 - 2.0).abs() < 1e-9, "{estimate:?}");
        // The 99th is half-way into the 4–8 ms bucket (98 → 100).
        assert!((estimate.p99 - 6.0).abs() < 1e-9, "{estimate:?}");
        assert!((estimate.max_at_most - 8.0).abs() < 1e-9, "{estimate:?}");
    }

    #[test]
    fn counts_only_what_came_after_the_first_reading() {
        let before = Histogram::parse(TEXT, COMMAND_DELIVERY);
        let after = Histogram::parse(
            &TEXT
                .replace("} 98\n", "} 198\n")
                .replace("} 100\n", "} 200\n"),
            COMMAND_DELIVERY,
        );
        let rollout = after.since(&before).estimate().unwrap();
        assert_eq!(rollout.count, 100);
        // All 100 fell in the 2–4 ms bucket.
        assert!((rollout.p50 - 3.0).abs() < 1e-9, "{rollout:?}");
        assert!((rollout.max_at_most - 4.0).abs() < 1e-9, "{rollout:?}");
        assert_eq!(before.since(&before).estimate(), None);
        assert_eq!(Histogram::parse("", COMMAND_DELIVERY).estimate(), None);
    }
}
