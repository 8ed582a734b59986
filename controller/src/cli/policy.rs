//! `tierwise releases …`, `tierwise license …` and `tierwise rollout plan`.

use super::{plan as render_plan, status_error, table};
use anyhow::Context;
use std::path::Path;
use tierwise_common::plan::Plan;
use tierwise_common::{Catalogue, ClientWaves, Date, Version};
use tierwise_proto::v1::{
    GetCatalogueRequest, ImportCatalogueRequest, ListLicencesRequest, PlanRolloutRequest,
    SetLicenceRequest,
};

type Client = crate::cli::AdminClient;

/// Checks the file here first (errors name this path and the line), then
/// sends it; the controller checks again and stores it all or nothing.
/// `dry_run`: only say what would change.
pub async fn import(
    client: &mut Client,
    file: &Path,
    dry_run: bool,
    allow_remove: bool,
) -> anyhow::Result<String> {
    let document = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read the catalogue {}", file.display()))?;
    let origin = file.display().to_string();
    let catalogue = Catalogue::parse(&document, &origin)?;
    if catalogue.is_empty() {
        anyhow::bail!("{origin}: the catalogue lists no release; nothing was imported");
    }
    let response = client
        .import_catalogue(ImportCatalogueRequest {
            source: origin,
            document,
            dry_run,
            allow_remove,
        })
        .await
        .map_err(status_error)?
        .into_inner();
    let list = |versions: &[String]| {
        if versions.is_empty() {
            "none".to_owned()
        } else {
            versions.join(", ")
        }
    };
    let head = if dry_run {
        let warning = if response.removed.is_empty() || allow_remove {
            ""
        } else {
            " (removing releases needs --allow-remove)"
        };
        format!(
            "Would import {} release(s) from {}; nothing was changed{warning}.",
            response.releases,
            file.display()
        )
    } else {
        format!(
            "Imported {} release(s) from {}.",
            response.releases,
            file.display()
        )
    };
    Ok(format!(
        "{head}\n  added:   {}\n  changed: {}\n  removed: {}\n",
        list(&response.added),
        list(&response.changed),
        list(&response.removed)
    ))
}

async fn fetch_catalogue(client: &mut Client) -> anyhow::Result<Option<(Catalogue, String, i64)>> {
    let stored = client
        .get_catalogue(GetCatalogueRequest {})
        .await
        .map_err(status_error)?
        .into_inner();
    if stored.document.is_empty() {
        return Ok(None);
    }
    let catalogue = Catalogue::parse(&stored.document, &stored.source)
        .context("the controller's catalogue does not parse")?;
    Ok(Some((catalogue, stored.source, stored.imported_ms)))
}

pub async fn list(client: &mut Client, json: bool) -> anyhow::Result<String> {
    let Some((catalogue, source, imported_ms)) = fetch_catalogue(client).await? else {
        if json {
            return Ok("[]\n".into());
        }
        return Ok("No catalogue imported yet: tierwise releases import FILE\n".into());
    };
    if json {
        return Ok(serde_json::to_string_pretty(catalogue.releases())? + "\n");
    }
    let rows: Vec<Vec<String>> = catalogue
        .releases()
        .iter()
        .rev()
        .map(|r| {
            let mut notes = Vec::new();
            if let Some(oldest) = r.oldest_client {
                notes.push(format!("clients ≥ {oldest}"));
            }
            if let Some(from) = &r.upgrade_from {
                notes.push(format!("from {from}"));
            }
            for note in &r.notes {
                notes.push(format!("ack: {}", note.id));
            }
            if !r.artifacts.is_empty() {
                let roles: Vec<String> = r.artifacts.keys().map(|k| k.to_string()).collect();
                notes.push(format!("artifacts: {}", roles.join(", ")));
            }
            vec![
                r.version.to_string(),
                r.released.to_string(),
                if r.breaking.is_some() { "yes" } else { "" }.to_owned(),
                notes.join("; "),
            ]
        })
        .collect();
    let mut out = table::render(&["VERSION", "RELEASED", "BREAKING", "NOTES"], &rows);
    out.push_str(&format!(
        "\n{} release(s), imported {} from {}\n",
        catalogue.releases().len(),
        tierwise_runtime::clock::shown(imported_ms),
        source
    ));
    Ok(out)
}

pub async fn licence_set(
    client: &mut Client,
    installation: &str,
    until: &str,
) -> anyhow::Result<String> {
    let date = Date::parse(until).map_err(|e| anyhow::anyhow!("--maintenance-until: {e}"))?;
    client
        .set_licence(SetLicenceRequest {
            installation: installation.to_owned(),
            maintenance_until: date.to_string(),
        })
        .await
        .map_err(status_error)?;
    Ok(format!(
        "Installation {installation}: maintenance until {date}; releases published after it are refused.\n"
    ))
}

pub async fn licence_show(client: &mut Client, json: bool) -> anyhow::Result<String> {
    let licences = client
        .list_licences(ListLicencesRequest {})
        .await
        .map_err(status_error)?
        .into_inner()
        .licences;
    if json {
        let list: Vec<serde_json::Value> = licences
            .iter()
            .map(|l| serde_json::json!({"installation": l.installation, "maintenance_until": l.maintenance_until}))
            .collect();
        return Ok(serde_json::to_string_pretty(&list)? + "\n");
    }
    if licences.is_empty() {
        return Ok("No maintenance end date recorded: tierwise license set --installation N --maintenance-until YYYY-MM-DD\n".into());
    }
    let rows: Vec<Vec<String>> = licences
        .into_iter()
        .map(|l| vec![l.installation, l.maintenance_until])
        .collect();
    Ok(table::render(&["INSTALLATION", "MAINTENANCE UNTIL"], &rows))
}

/// The plan and whether it is blocked.
pub async fn plan(
    client: &mut Client,
    installation: &str,
    target: &str,
    waves: Option<&str>,
    json: bool,
) -> anyhow::Result<(String, bool)> {
    // Checked here too, so a typo is refused before anything is asked.
    Version::parse(target).map_err(|e| anyhow::anyhow!("--to: {e}"))?;
    if let Some(waves) = waves {
        ClientWaves::parse(waves).map_err(|e| anyhow::anyhow!("--client-waves: {e}"))?;
    }
    let response = client
        .plan_rollout(PlanRolloutRequest {
            installation: installation.to_owned(),
            target: target.to_owned(),
            client_waves: waves.unwrap_or_default().to_owned(),
        })
        .await
        .map_err(status_error)?
        .into_inner();
    let plan = Plan::try_from(
        response
            .plan
            .as_ref()
            .context("the controller sent no plan")?,
    )
    .context("the controller sent a malformed plan")?;
    let windows = super::windows::fetch(client, Some(installation)).await?;
    let eta = response
        .eta
        .as_ref()
        .map(|e| crate::wire::eta_from_wire(e, false))
        .unwrap_or_default();
    let text = if json {
        #[derive(serde::Serialize)]
        struct WithWindows<'a> {
            #[serde(flatten)]
            plan: &'a Plan,
            windows: Vec<serde_json::Value>,
            eta: &'a crate::rollout_view::EtaView,
            promotion: serde_json::Value,
        }
        let windows = windows
            .windows
            .iter()
            .map(|w| {
                serde_json::json!({
                    "scope": w.scope, "days": w.days, "from": w.from, "to": w.to, "time_zone": w.time_zone,
                })
            })
            .collect();
        serde_json::to_string_pretty(&WithWindows {
            plan: &plan,
            windows,
            eta: &eta,
            promotion: promotion_json(response.promotion.as_ref()),
        })? + "\n"
    } else {
        let mut text = render_plan::render(&plan);
        text.push_str(&format!("\n{}\n", super::rollout::eta_line(&eta, false)));
        if let Some(line) = promotion_line(response.promotion.as_ref()) {
            text.push_str(&format!("\n{line}\n"));
        }
        if !windows.windows.is_empty() {
            text.push_str(&format!(
                "\nMaintenance windows (a step starts only when its time limit fits before the window closes)\n{}",
                super::windows::render(&windows)
            ));
        }
        text
    };
    Ok((text, plan.blocked))
}

/// The plan's `promotion` in `--json`: `state` none, ready, soaking,
/// not_rolled_out or failed_there, and what it rests on.
fn promotion_json(view: Option<&tierwise_proto::v1::PromotionView>) -> serde_json::Value {
    use tierwise_runtime::clock::rfc3339;
    let Some(p) = view else {
        return serde_json::json!({ "state": "none" });
    };
    let time = |ms: i64| (ms != 0).then(|| rfc3339(ms));
    serde_json::json!({
        "state": p.state,
        "from": (!p.from.is_empty()).then_some(&p.from),
        "soak_seconds": p.soak_seconds,
        "rollout": (!p.rollout.is_empty()).then_some(&p.rollout),
        "completed": time(p.completed_ms),
        "soak_ends": time(p.soak_ends_ms),
        "failed": time(p.failed_ms),
        "reason": (!p.reason.is_empty()).then_some(&p.reason),
    })
}

/// One line on the promotion under a plan; none when there is none (the
/// dashboard's plan page shows the same line).
pub(crate) fn promotion_line(view: Option<&tierwise_proto::v1::PromotionView>) -> Option<String> {
    use tierwise_runtime::clock::shown;
    let p = view.filter(|p| p.state != "none")?;
    Some(match p.state.as_str() {
        "ready" => format!(
            "Promotion: ready — completed on {} ({}) at {}, soaked until {}.",
            p.from,
            p.rollout,
            shown(p.completed_ms),
            shown(p.soak_ends_ms)
        ),
        _ => format!("Promotion from {}: {}.", p.from, p.reason),
    })
}
