//! What the controller's integration tests share.

use tierwise_common::HostRecord;
use tierwise_controller::store::{HostReport, Store};

/// Records a hello of `host` as its agent would send it (heartbeat 10 s,
/// booted at `boot_ms`), under session `s-HOST`.
pub async fn hello(store: &Store, host: &HostRecord, boot_ms: i64) {
    let report = HostReport {
        host_id: host.host_id.clone(),
        hostname: host.hostname.clone(),
        installation: host.installation.clone(),
        os: host.os.clone(),
        agent_version: host.agent_version.clone(),
        heartbeat_seconds: 10,
        inventory: host.inventory.clone(),
        boot_ms: Some(boot_ms),
    };
    store
        .record_hello(
            &report,
            &format!("s-{}", host.host_id),
            tierwise_runtime::clock::now_ms(),
        )
        .await
        .expect("a hello is recorded");
}
