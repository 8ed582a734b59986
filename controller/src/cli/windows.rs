//! `tierwise windows set|remove|list`, and the windows a plan shows.

use super::{status_error, table};
use tierwise_proto::v1::{ListWindowsRequest, RemoveWindowRequest, SetWindowRequest, WindowList};
use tierwise_runtime::clock::rfc3339;

type Client = crate::cli::AdminClient;

/// What `windows set` asks for.
#[derive(Debug, Clone)]
pub struct NewWindow<'a> {
    pub installation: &'a str,
    pub scope: &'a str,
    pub days: &'a str,
    pub from: &'a str,
    pub to: &'a str,
    pub time_zone: &'a str,
}

pub async fn set(client: &mut Client, window: &NewWindow<'_>) -> anyhow::Result<String> {
    // Checked here first, so a typo is refused before anything is asked.
    tierwise_common::window::MaintenanceWindow::new(
        window.scope,
        window.days,
        window.from,
        window.to,
        window.time_zone,
    )?;
    let list = client
        .set_window(SetWindowRequest {
            installation: window.installation.to_owned(),
            scope: window.scope.to_owned(),
            days: window.days.to_owned(),
            from: window.from.to_owned(),
            to: window.to.to_owned(),
            time_zone: window.time_zone.to_owned(),
        })
        .await
        .map_err(status_error)?
        .into_inner();
    Ok(render(&list))
}

pub async fn remove(
    client: &mut Client,
    installation: &str,
    scope: &str,
) -> anyhow::Result<String> {
    let list = client
        .remove_window(RemoveWindowRequest {
            installation: installation.to_owned(),
            scope: scope.to_owned(),
        })
        .await
        .map_err(status_error)?
        .into_inner();
    Ok(format!(
        "Removed the {scope} window of {installation}.\n{}",
        render(&list)
    ))
}

pub async fn fetch(client: &mut Client, installation: Option<&str>) -> anyhow::Result<WindowList> {
    Ok(client
        .list_windows(ListWindowsRequest {
            installation: installation.unwrap_or_default().to_owned(),
        })
        .await
        .map_err(status_error)?
        .into_inner())
}

pub async fn list(
    client: &mut Client,
    installation: Option<&str>,
    json: bool,
) -> anyhow::Result<String> {
    let list = fetch(client, installation).await?;
    Ok(if json {
        let items: Vec<_> = list.windows.iter().map(to_json).collect();
        format!("{}\n", serde_json::to_string_pretty(&items)?)
    } else {
        render(&list)
    })
}

fn to_json(w: &tierwise_proto::v1::WindowView) -> serde_json::Value {
    serde_json::json!({
        "installation": w.installation,
        "scope": w.scope,
        "days": w.days,
        "from": w.from,
        "to": w.to,
        "time_zone": w.time_zone,
        "open_now": w.open_now,
        "next_start": (w.next_start_ms != 0).then(|| rfc3339(w.next_start_ms)),
        "next_end": (w.next_end_ms != 0).then(|| rfc3339(w.next_end_ms)),
        "next_start_local": (!w.next_start_local.is_empty()).then_some(&w.next_start_local),
    })
}

/// One line per window: when it is, and when it is open next.
pub fn render(list: &WindowList) -> String {
    if list.windows.is_empty() {
        return "No maintenance windows: steps start whenever their turn comes.\n".into();
    }
    let rows: Vec<Vec<String>> = list
        .windows
        .iter()
        .map(|w| {
            vec![
                w.installation.clone(),
                w.scope.clone(),
                format!("{} {}–{}", w.days, w.from, w.to),
                w.time_zone.clone(),
                if w.open_now {
                    format!(
                        "open until {}",
                        tierwise_runtime::clock::shown(w.next_end_ms)
                    )
                } else if w.next_start_local.is_empty() {
                    "—".into()
                } else {
                    format!("opens {}", w.next_start_local)
                },
            ]
        })
        .collect();
    table::render(
        &["INSTALLATION", "SCOPE", "WHEN", "TIME ZONE", "NEXT"],
        &rows,
    )
}
