//! `tierwise rollout plan`: the plan as a dry run a person can read.

use super::table;
use tierwise_common::plan::{Action, Phase, PhaseKind, Plan, Step};
use tierwise_common::rules::{Finding, Rule, Severity, Subject};
use tierwise_common::thousands;

/// How many hosts a list shows before it says "and N more".
const LIST_LIMIT: usize = 5;
/// How many findings of one rule are shown one by one.
const FINDINGS_PER_RULE: usize = 5;

fn phase_title(kind: &PhaseKind) -> String {
    match kind {
        PhaseKind::Backup => "Backup".into(),
        PhaseKind::Server => "Server".into(),
        PhaseKind::Databases => "Databases".into(),
        PhaseKind::AppServers => "App servers".into(),
        PhaseKind::Web => "Web".into(),
        PhaseKind::ClientWave { wave, percent } => format!("Clients, wave {wave} (to {percent}%)"),
    }
}

fn step_text(step: &Step) -> String {
    let text = action_text(step);
    match step.task {
        Some(kind) => format!("{text} — OPERATOR TASK ({})", kind.as_str()),
        None => text,
    }
}

fn action_text(step: &Step) -> String {
    let from = step
        .from
        .map_or_else(|| "unknown".to_owned(), |v| v.to_string());
    let offline = if step.offline { " (offline)" } else { "" };
    match step.action {
        Action::GenerateWebApp => format!(
            "{}: generate the Web Application of {} for {}{offline}",
            step.host_id,
            step.to,
            step.web_servers
                .iter()
                .map(|k| k.as_str())
                .collect::<Vec<_>>()
                .join(" and ")
        ),
        Action::Backup => format!("{} backup before the update{offline}", step.host_id),
        Action::StopServices => format!("{} stop services{offline}", step.host_id),
        Action::StartServices => format!("{} start services{offline}", step.host_id),
        Action::ReactivateDatabases => format!(
            "{}: reactivate {}, patch level → {}{offline}",
            step.host_id,
            step.databases
                .iter()
                .map(|d| format!(
                    "{} (now {})",
                    d.name,
                    d.from
                        .map_or_else(|| "unknown".to_owned(), |v| v.to_string())
                ))
                .collect::<Vec<_>>()
                .join(", "),
            step.to
        ),
        _ => format!("{} {from} → {}{offline}", step.host_id, step.to),
    }
}

fn phase_lines(index: usize, phase: &Phase) -> Vec<String> {
    let title = phase_title(&phase.kind);
    let status = if phase.blocked { "  BLOCKED" } else { "" };
    let count = match phase.steps.len() {
        0 => "nothing to do".to_owned(),
        1 => "1 step".to_owned(),
        n => format!("{} steps", thousands(n)),
    };
    let mut lines = vec![format!("  {index}. {title} — {count}{status}")];
    let is_clients = matches!(phase.kind, PhaseKind::ClientWave { .. });
    let limit = if is_clients {
        LIST_LIMIT
    } else {
        LIST_LIMIT * 4
    };
    for step in phase.steps.iter().take(limit) {
        lines.push(format!("       {}", step_text(step)));
    }
    if phase.steps.len() > limit {
        lines.push(format!(
            "       … and {} more",
            thousands(phase.steps.len() - limit)
        ));
    }
    lines
}

fn severity_mark(severity: Severity) -> &'static str {
    match severity {
        Severity::Blocker => "✗",
        Severity::Warning => "!",
        Severity::AckRequired => "?",
    }
}

/// Findings of one severity, grouped by rule; long groups are summarised.
fn finding_lines(findings: &[&Finding]) -> Vec<String> {
    let mut lines = Vec::new();
    let mut index = 0;
    while index < findings.len() {
        let rule = findings[index].rule;
        let group: Vec<&Finding> = findings[index..]
            .iter()
            .take_while(|f| f.rule == rule)
            .copied()
            .collect();
        index += group.len();
        for finding in group.iter().take(FINDINGS_PER_RULE) {
            let ack = finding
                .ack
                .as_deref()
                .map(|a| format!(" [ack: {a}]"))
                .unwrap_or_default();
            lines.push(format!(
                "  {} {} — {}{ack}",
                severity_mark(finding.severity),
                finding.subject,
                finding.rule
            ));
            lines.push(format!("      {}", table::printable(&finding.reason)));
            lines.push(format!("      → {}", table::printable(&finding.remedy)));
        }
        if group.len() > FINDINGS_PER_RULE {
            let rest: Vec<String> = group[FINDINGS_PER_RULE..]
                .iter()
                .take(LIST_LIMIT)
                .map(|f| match &f.subject {
                    Subject::Host { host_id, .. } => host_id.clone(),
                    other => other.to_string(),
                })
                .collect();
            let more = group.len() - FINDINGS_PER_RULE;
            let tail = if more > rest.len() {
                format!(
                    ", … ({} in all; --json lists every one)",
                    thousands(group.len())
                )
            } else {
                String::new()
            };
            lines.push(format!(
                "  … and {} more {rule}: {}{tail}",
                thousands(more),
                rest.join(", ")
            ));
        }
    }
    lines
}

/// The plan as text, blockers first.
pub fn render(plan: &Plan) -> String {
    let mut out = Vec::new();
    let target = &plan.target;
    let mut about = vec![format!("released {}", target.released)];
    if target.breaking {
        about.push("breaking".into());
    }
    out.push(format!(
        "Rollout plan: installation {} → {} ({})",
        plan.installation,
        target.version,
        about.join(", ")
    ));
    out.push(format!(
        "Server now at {}. Client waves: {}.",
        plan.server_version
            .map_or_else(|| "an unknown version".to_owned(), |v| v.to_string()),
        plan.waves
    ));
    // Said before anything else: nothing proves where these installers came from.
    if plan
        .findings
        .iter()
        .any(|f| f.rule == Rule::SignedRelease && f.severity == Severity::Warning)
    {
        out.push(String::new());
        out.push("!!! UNSIGNED RELEASE: this controller allows unsigned releases, and the installers of this rollout are not covered by signed release metadata. Agents that pin a release root will refuse them; the others will run them unchecked. !!!".into());
    }
    out.push(String::new());

    let of = |severity: Severity| -> Vec<&Finding> {
        plan.findings
            .iter()
            .filter(|f| f.severity == severity)
            .collect()
    };
    let blockers = of(Severity::Blocker);
    let stopping = blockers.iter().filter(|f| !f.excludes_client()).count();
    if plan.blocked {
        out.push(format!(
            "BLOCKED: {stopping} blocker(s) must be resolved before this rollout can start."
        ));
    } else if !plan.tasks.is_empty() {
        let kinds: Vec<&str> = plan.tasks.iter().map(|t| t.kind.as_str()).collect();
        out.push(format!(
            "Can start, but not unattended: it waits for {} operator task(s) on the way ({}){}.",
            plan.tasks.len(),
            kinds.join(", "),
            if plan.acks_required.is_empty() {
                String::new()
            } else {
                format!(
                    "; starting it needs {} acknowledgement(s)",
                    plan.acks_required.len()
                )
            }
        ));
    } else if plan.acks_required.is_empty() {
        out.push("Ready: nothing blocks this rollout.".into());
    } else {
        out.push(format!(
            "Ready: nothing blocks this rollout; starting it needs {} acknowledgement(s).",
            plan.acks_required.len()
        ));
    }
    let (excluding, stopping_findings): (Vec<&Finding>, Vec<&Finding>) =
        blockers.iter().partition(|f| f.excludes_client());
    if !stopping_findings.is_empty() {
        out.push(String::new());
        out.push("Blockers".into());
        out.extend(finding_lines(&stopping_findings));
    }
    if !excluding.is_empty() {
        out.push(String::new());
        out.push("Clients left out of this rollout (the rest go ahead)".into());
        out.extend(finding_lines(&excluding));
    }

    out.push(String::new());
    out.push("Phases".into());
    for (index, phase) in plan.phases.iter().enumerate() {
        out.extend(phase_lines(index + 1, phase));
    }
    if plan.clients_immediately_after_web {
        out.push(
            "  A breaking release is crossed: old clients cannot log in to the new server until they are updated."
                .into(),
        );
        out.push(
            "  With --approve-phases, approval is asked only up to the server phase; the databases, web and client waves then follow at once."
                .into(),
        );
    }

    if !plan.tasks.is_empty() {
        out.push(String::new());
        out.push(format!(
            "Operator tasks ({}): the rollout waits at each for `tierwise rollout done`, then checks it",
            plan.tasks.len()
        ));
        for (number, task) in plan.tasks.iter().enumerate() {
            out.push(format!(
                "  {}. {} on {} (phase {})",
                number + 1,
                task.kind.as_str(),
                task.host_id,
                task.phase + 1
            ));
            out.push(format!("       {}", task.instructions));
            out.push(format!("       Then checked: {}.", task.verification));
        }
    }

    let c = &plan.counts;
    out.push(String::new());
    out.push("Counts".into());
    out.push(format!(
        "  {} host(s), {} offline; {} database(s), {} app server(s), {} web host(s)",
        thousands(c.hosts),
        thousands(c.hosts_offline),
        thousands(c.databases),
        thousands(c.app_servers),
        thousands(c.web_hosts)
    ));
    out.push(format!(
        "  {} client(s): {} to update, {} already at the target, {} excluded",
        thousands(c.clients),
        thousands(c.clients_to_update),
        thousands(c.clients_at_target),
        thousands(c.clients_excluded)
    ));
    if c.clients_locked_out > 0 {
        out.push(format!(
            "  {} client(s) will be unable to log in from the server update until their own update",
            thousands(c.clients_locked_out)
        ));
    }
    if c.clients_update_check_enabled > 0 {
        out.push(format!(
            "  {} client(s) let normal users search for updates",
            thousands(c.clients_update_check_enabled)
        ));
    }
    if !plan.excluded.is_empty() {
        let shown: Vec<&str> = plan
            .excluded
            .iter()
            .take(LIST_LIMIT)
            .map(String::as_str)
            .collect();
        let more = plan.excluded.len().saturating_sub(LIST_LIMIT);
        out.push(format!(
            "  excluded: {}{}",
            shown.join(", "),
            if more > 0 {
                format!(", … and {} more", thousands(more))
            } else {
                String::new()
            }
        ));
    }

    let warnings = of(Severity::Warning);
    if !warnings.is_empty() {
        out.push(String::new());
        out.push("Warnings".into());
        out.extend(finding_lines(&warnings));
    }
    let acks = of(Severity::AckRequired);
    if !acks.is_empty() {
        out.push(String::new());
        out.push("Acknowledgements needed when starting".into());
        out.extend(finding_lines(&acks));
    }
    let mut text = out.join("\n");
    text.push('\n');
    text
}
