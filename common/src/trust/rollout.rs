//! Whether a planned rollout's installers are covered by the signed release
//! metadata the controller holds: a pure decision that becomes one finding
//! of the plan (a blocker, or a loud warning where the controller was
//! started to allow unsigned releases).

use super::Release;
use crate::plan::{Action, Plan};
use crate::rules::{Finding, Rule, Severity, Subject};
use crate::{Role, Version};
use std::collections::BTreeMap;

/// What the controller knows when it plans.
#[derive(Clone, Debug)]
pub struct SigningInput<'a> {
    /// The release metadata in force, verified by the controller; `Err`
    /// says why there is none to use.
    pub release: Result<&'a Release, String>,
    /// The SHA-256 of the catalogue in force.
    pub catalogue_sha256: &'a str,
    /// The installer stored for each role of the target: SHA-256, length.
    pub installers: &'a BTreeMap<Role, (String, u64)>,
    /// The controller runs with `--allow-unsigned-releases`.
    pub allow_unsigned: bool,
}

/// The role whose installer a planned action runs, if it runs one.
pub fn installer_role(action: Action) -> Option<Role> {
    match action {
        Action::InstallServer => Some(Role::Server),
        Action::InstallAppServer => Some(Role::AppServer),
        Action::DeployWebApp => Some(Role::Web),
        Action::InstallClient => Some(Role::Client),
        Action::Backup
        | Action::StopServices
        | Action::StartServices
        | Action::ReactivateDatabases
        | Action::GenerateWebApp => None,
    }
}

/// What is not signed among the installers `plan` would run; empty when
/// everything is.
pub fn unsigned_installers(plan: &Plan, input: &SigningInput<'_>) -> Vec<String> {
    let target = plan.target.version;
    let mut roles: Vec<Role> = plan
        .steps()
        .filter_map(|(_, step)| installer_role(step.action))
        .collect();
    roles.sort();
    roles.dedup();
    // A Web Application made during the rollout is checked when it is
    // made: its generation waits for signed metadata covering it.
    if plan
        .steps()
        .any(|(_, step)| step.action == Action::GenerateWebApp)
    {
        roles.retain(|role| *role != Role::Web);
    }
    if roles.is_empty() {
        return Vec::new();
    }
    let release = match &input.release {
        Ok(release) => *release,
        Err(why) => return vec![why.clone()],
    };
    if !release
        .catalogue_sha256
        .eq_ignore_ascii_case(input.catalogue_sha256)
    {
        return vec![format!(
            "the release metadata (version {}) was signed for another catalogue ({}) than the one in force ({})",
            release.version, release.catalogue_sha256, input.catalogue_sha256
        )];
    }
    roles
        .into_iter()
        .filter_map(|role| problem(release, target, role, input.installers.get(&role)))
        .collect()
}

fn problem(
    release: &Release,
    target: Version,
    role: Role,
    stored: Option<&(String, u64)>,
) -> Option<String> {
    let Some((sha256, length)) = stored else {
        return Some(format!(
            "{role} steps name no installer (add one with `tierwise artifacts add FILE --release {target} --component {role}`); an agent that pins a release root refuses them"
        ));
    };
    super::check_installer(release, &target.to_string(), role.as_str(), sha256, *length)
        .err()
        .map(|e| format!("{role}: {e}"))
}

/// The plan's finding about signatures, if any.
pub fn signing_finding(plan: &Plan, input: &SigningInput<'_>) -> Option<Finding> {
    let problems = unsigned_installers(plan, input);
    if problems.is_empty() {
        return None;
    }
    let subject = Subject::Release {
        version: plan.target.version,
    };
    let sign = format!(
        "sign the installers offline (`tierwise keys release … --installer FILE={}:COMPONENT`) and import the metadata (`tierwise releases metadata import --root ROOT.json --release RELEASE.json`)",
        plan.target.version
    );
    Some(if input.allow_unsigned {
        Finding::new(
            Severity::Warning,
            Rule::SignedRelease,
            subject,
            format!(
                "UNSIGNED RELEASE ALLOWED: this controller runs with --allow-unsigned-releases, so these installers are not signed and nothing proves where they came from: {}",
                problems.join("; ")
            ),
            sign,
        )
    } else {
        Finding::new(
            Severity::Blocker,
            Rule::SignedRelease,
            subject,
            format!("installers are not signed: {}", problems.join("; ")),
            format!("{sign}; only where unsigned releases are acceptable, start the controller with --allow-unsigned-releases"),
        )
    })
}
