//! `tierwise hosts list|show|refresh`.

use super::table;
use anyhow::Context;
use serde::Serialize;
use tierwise_common::json::ComponentJson;
use tierwise_common::{Facts, HostRecord, Placement, ProbedVersion, Role};
use tierwise_proto::v1::{
    GetHostRequest, ListHostsRequest, RefreshInventoryRequest, Role as WireRole,
};
use tierwise_runtime::clock::{ago, now_ms, rfc3339, shown};

/// The `--json` shape of a host. Field names are part of the CLI's contract
/// (documented in the README): add fields, never rename or remove them.
#[derive(Debug, Serialize)]
pub struct HostJson {
    pub host_id: String,
    pub hostname: String,
    pub installation: String,
    pub os: String,
    pub agent_version: String,
    pub online: bool,
    pub first_seen: String,
    pub last_seen: String,
    pub heartbeat_seconds: u32,
    pub components: Vec<ComponentJson>,
    /// `fixed` (the agent named its installation), `placed` or `unassigned`
    /// (its agent said `auto`).
    pub placement: &'static str,
    /// How it was placed (`server srv-01`, `mapping 10.0.0.5`) or why not.
    pub placement_note: Option<String>,
    /// When the host last started (RFC 3339), if its agent says.
    pub boot_time: Option<String>,
}

impl From<&HostRecord> for HostJson {
    fn from(host: &HostRecord) -> Self {
        HostJson {
            host_id: host.host_id.clone(),
            hostname: host.hostname.clone(),
            installation: host.installation.clone(),
            os: host.os.clone(),
            agent_version: host.agent_version.clone(),
            online: host.online,
            first_seen: rfc3339(host.first_seen_ms),
            last_seen: rfc3339(host.last_seen_ms),
            heartbeat_seconds: host.heartbeat_seconds,
            components: host
                .inventory
                .components()
                .iter()
                .map(ComponentJson::from)
                .collect(),
            placement: match &host.placement {
                None => "fixed",
                Some(Placement::Placed { .. }) => "placed",
                Some(Placement::Unassigned { .. }) => "unassigned",
            },
            placement_note: match &host.placement {
                None => None,
                Some(Placement::Placed { by, .. }) => Some(by.clone()),
                Some(Placement::Unassigned { reason }) => Some(reason.clone()),
            },
            boot_time: host.boot_ms.map(rfc3339),
        }
    }
}

/// Fetches hosts and converts them to domain records.
pub async fn fetch_hosts(
    client: &mut crate::cli::AdminClient,
    installation: Option<&str>,
    role: Option<Role>,
) -> anyhow::Result<Vec<HostRecord>> {
    // Page by page: no answer grows with the fleet.
    let mut hosts = Vec::new();
    let mut page_token = String::new();
    loop {
        let request = ListHostsRequest {
            installation: installation.unwrap_or_default().to_owned(),
            role: role.map_or(WireRole::Unspecified, WireRole::from).into(),
            page_size: 0,
            page_token,
        };
        let page = client
            .list_hosts(request)
            .await
            .map_err(super::status_error)?
            .into_inner();
        for view in &page.hosts {
            hosts.push(HostRecord::try_from(view).with_context(|| {
                format!("the controller sent a malformed host `{}`", view.host_id)
            })?);
        }
        if page.next_page_token.is_empty() {
            return Ok(hosts);
        }
        page_token = page.next_page_token;
    }
}

pub async fn list(
    client: &mut crate::cli::AdminClient,
    installation: Option<&str>,
    role: Option<Role>,
    json: bool,
) -> anyhow::Result<String> {
    let hosts = fetch_hosts(client, installation, role).await?;
    if json {
        let json: Vec<HostJson> = hosts.iter().map(HostJson::from).collect();
        return Ok(serde_json::to_string_pretty(&json)? + "\n");
    }
    Ok(render_list(&hosts, now_ms()))
}

pub async fn show(
    client: &mut crate::cli::AdminClient,
    host_id: &str,
    json: bool,
) -> anyhow::Result<String> {
    let view = client
        .get_host(GetHostRequest {
            host_id: host_id.to_owned(),
        })
        .await
        .map_err(super::status_error)?
        .into_inner();
    let host = HostRecord::try_from(&view).context("the controller sent a malformed host")?;
    if json {
        return Ok(serde_json::to_string_pretty(&HostJson::from(&host))? + "\n");
    }
    Ok(render_show(&host, now_ms()))
}

pub async fn refresh(
    client: &mut crate::cli::AdminClient,
    host_id: Option<&str>,
    installation: Option<&str>,
) -> anyhow::Result<String> {
    let response = client
        .refresh_inventory(RefreshInventoryRequest {
            host_id: host_id.unwrap_or_default().to_owned(),
            installation: installation.unwrap_or_default().to_owned(),
        })
        .await
        .map_err(super::status_error)?
        .into_inner();
    if response.asked.is_empty() {
        return Ok(
            "No connected agent matched; offline hosts report when they reconnect.\n".into(),
        );
    }
    Ok(format!(
        "Asked {} connected agent(s) to report their inventory: {}\n",
        response.asked.len(),
        response.asked.join(", ")
    ))
}

fn status_text(host: &HostRecord) -> &'static str {
    if host.online {
        "online"
    } else {
        "offline"
    }
}

/// A host's components and versions on one line (`client 9.3.1.33994, …`).
pub(crate) fn component_summary(host: &HostRecord) -> String {
    let parts: Vec<String> = host
        .inventory
        .components()
        .iter()
        .map(|c| match &c.version {
            ProbedVersion::Installed(v) => format!("{} {v}", c.role),
            ProbedVersion::NotInstalled => format!("{} (not installed)", c.role),
            ProbedVersion::Unknown(_) => format!("{} (unknown)", c.role),
        })
        .collect();
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(", ")
    }
}

pub fn render_list(hosts: &[HostRecord], now_ms: i64) -> String {
    if hosts.is_empty() {
        return "No hosts yet: agents appear here once they connect.\n".into();
    }
    let rows: Vec<Vec<String>> = hosts
        .iter()
        .map(|h| {
            vec![
                h.host_id.clone(),
                h.hostname.clone(),
                installation_text(h),
                status_text(h).into(),
                ago(h.last_seen_ms, now_ms),
                component_summary(h),
            ]
        })
        .collect();
    let online = hosts.iter().filter(|h| h.online).count();
    let unassigned: Vec<&HostRecord> = hosts
        .iter()
        .filter(|h| matches!(h.placement, Some(Placement::Unassigned { .. })))
        .collect();
    let mut out = table::render(
        &[
            "HOST",
            "HOSTNAME",
            "INSTALLATION",
            "STATUS",
            "LAST SEEN",
            "COMPONENTS",
        ],
        &rows,
    );
    out.push_str(&format!(
        "\n{} host(s): {} online, {} offline\n",
        hosts.len(),
        online,
        hosts.len() - online
    ));
    if !unassigned.is_empty() {
        out.push_str(&format!(
            "{} unassigned (installation \"auto\", part of no rollout until placed):\n",
            unassigned.len()
        ));
        for host in unassigned {
            if let Some(Placement::Unassigned { reason }) = &host.placement {
                out.push_str(&format!(
                    "  {}: {}\n",
                    table::printable(&host.host_id),
                    table::printable(reason)
                ));
            }
        }
    }
    out
}

/// The installation column: where an `auto` host was placed, marked, or
/// that it is unassigned.
fn installation_text(host: &HostRecord) -> String {
    match &host.placement {
        None => host.installation.clone(),
        Some(Placement::Placed { installation, .. }) => format!("{installation} (auto)"),
        Some(Placement::Unassigned { .. }) => "unassigned".into(),
    }
}

pub fn render_show(host: &HostRecord, now_ms: i64) -> String {
    let mut out = String::new();
    let field = |out: &mut String, name: &str, value: String| {
        out.push_str(&format!("{name:<14}{}\n", table::printable(&value)));
    };
    field(&mut out, "Host", host.host_id.clone());
    field(&mut out, "Hostname", host.hostname.clone());
    field(
        &mut out,
        "Installation",
        match &host.placement {
            None => host.installation.clone(),
            Some(Placement::Placed { installation, by }) => {
                format!("{installation} (placed automatically: {by})")
            }
            Some(Placement::Unassigned { reason }) => format!("unassigned: {reason}"),
        },
    );
    field(
        &mut out,
        "Status",
        format!(
            "{} (last seen {}, {})",
            status_text(host),
            ago(host.last_seen_ms, now_ms),
            shown(host.last_seen_ms)
        ),
    );
    field(&mut out, "First seen", shown(host.first_seen_ms));
    field(&mut out, "OS", host.os.clone());
    field(
        &mut out,
        "Agent",
        format!(
            "{}, heartbeat every {} s",
            host.agent_version, host.heartbeat_seconds
        ),
    );
    out.push('\n');
    if host.inventory.components().is_empty() {
        out.push_str("No components configured on this host.\n");
        return out;
    }
    let rows: Vec<Vec<String>> = host
        .inventory
        .components()
        .iter()
        .map(|c| {
            let version = match &c.version {
                ProbedVersion::Installed(v) => v.to_string(),
                ProbedVersion::NotInstalled => "not installed".into(),
                ProbedVersion::Unknown(_) => "unknown".into(),
            };
            let mut details = Vec::new();
            if let ProbedVersion::Unknown(why) = &c.version {
                details.push(format!("probe failed: {why}"));
            }
            match &c.facts {
                Facts::None => {}
                Facts::Server(server) => {
                    details.push(format!("{} database(s)", server.databases.len()));
                    if let Some(error) = &server.databases_error {
                        details.push(format!("database probe failed: {error}"));
                    }
                }
                Facts::Web(web) => {
                    details.push(format!(
                        "{}, docroot {}, WebSocket support: {}",
                        web.server_kind.as_str(),
                        web.docroot,
                        web.websocket.as_str()
                    ));
                }
                Facts::Client(client) => {
                    details.push(format!(
                        "\"Can search for updates\" for normal users: {}",
                        client.update_check_enabled.as_str()
                    ));
                    if !client.profiles.is_empty() {
                        let servers: Vec<String> = client
                            .profiles
                            .iter()
                            .map(|p| {
                                if p.database.is_empty() {
                                    p.host.clone()
                                } else {
                                    format!("{} ({})", p.host, p.database)
                                }
                            })
                            .collect();
                        details.push(format!("server: {}", servers.join(", ")));
                    }
                }
            }
            vec![c.role.to_string(), version, details.join("; ")]
        })
        .collect();
    out.push_str(&table::render(&["ROLE", "VERSION", "DETAILS"], &rows));
    for component in host.inventory.components() {
        if let Facts::Server(server) = &component.facts {
            if server.databases.is_empty() {
                continue;
            }
            let rows: Vec<Vec<String>> = server
                .databases
                .iter()
                .map(|db| {
                    vec![
                        db.name.clone(),
                        if db.active { "yes" } else { "no" }.into(),
                        db.patch_level
                            .map_or_else(|| "unknown".into(), |v| v.to_string()),
                    ]
                })
                .collect();
            out.push('\n');
            out.push_str(&table::render(
                &["DATABASE", "ACTIVE", "PATCH LEVEL"],
                &rows,
            ));
        }
    }
    out
}
