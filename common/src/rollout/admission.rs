//! Admission: whether a planned rollout may start. A blocked plan, a
//! missing acknowledgement or an installer that is not stored (or not the
//! one the catalogue names) refuses it, saying what to do; an admitted
//! rollout carries the installers its steps will name.

use crate::catalogue::Artifact;
use crate::plan::Plan;
use crate::rules::{Severity, ACK_CHANGELOG};
use crate::Role;
use std::collections::BTreeMap;
use std::fmt;

/// What admission looks at besides the plan.
#[derive(Clone, Copy, Debug)]
pub struct AdmissionRequest<'a> {
    pub plan: &'a Plan,
    /// The acknowledgements the operator gave, by key.
    pub acks: &'a [String],
    /// The installers the catalogue names for the target, by role.
    pub named: &'a BTreeMap<Role, Artifact>,
    /// The SHA-256 of the installer stored for the target, by role.
    pub stored: &'a BTreeMap<Role, String>,
}

/// An admitted rollout: the installers its steps use, by role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Admitted {
    pub installers: BTreeMap<Role, String>,
}

/// Why a rollout may not start; nothing is created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotAdmitted {
    /// The plan has blockers: subject, reason and remedy of each.
    Blocked { blockers: Vec<String> },
    /// Acknowledgements missing, as the CLI flags that give them.
    Unacknowledged { flags: Vec<String> },
    /// The stored installer is not the one the catalogue names.
    WrongInstaller {
        role: Role,
        release: String,
        stored: String,
        named: String,
    },
    /// The catalogue names an installer that is not stored.
    MissingInstaller {
        role: Role,
        release: String,
        file: String,
    },
}

impl fmt::Display for NotAdmitted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotAdmitted::Blocked { blockers } => write!(
                f,
                "the plan is blocked; `tierwise rollout plan` shows it:\n  {}",
                blockers.join("\n  ")
            ),
            NotAdmitted::Unacknowledged { flags } => write!(
                f,
                "acknowledge before starting: {} (`tierwise rollout plan` says what each one means)",
                flags.join(" ")
            ),
            NotAdmitted::WrongInstaller {
                role,
                release,
                stored,
                named,
            } => write!(
                f,
                "the stored {role} installer of {release} has SHA-256 {stored}, but the catalogue gives {named}; \
                 add the right file with `tierwise artifacts add`"
            ),
            NotAdmitted::MissingInstaller {
                role,
                release,
                file,
            } => write!(
                f,
                "the catalogue names the {role} installer {file} for {release}, but it is not stored; add it with \
                 `tierwise artifacts add {file} --release {release} --component {role}`"
            ),
        }
    }
}

/// The CLI flag that gives an acknowledgement: always `--ack NAME`, the one
/// form (`--ack-breaking` and `--ack-server-manager-password` are kept as
/// hidden aliases of `--ack breaking` and `--ack server-manager-password`).
pub fn ack_flag(ack: &str) -> String {
    format!("--ack {ack}")
}

/// What the plan's steps will need of the installers: a blocker for each
/// component the rollout updates whose installer the catalogue names but
/// the controller does not hold, or holds with another checksum — so a
/// plan that says it can start can (`rule:readiness`).
pub fn installer_findings(
    plan: &Plan,
    named: &BTreeMap<Role, Artifact>,
    stored: &BTreeMap<Role, String>,
) -> Vec<crate::rules::Finding> {
    use crate::rules::{Finding, Rule, Subject};
    let release = plan.target.version;
    let mut roles: Vec<Role> = plan
        .steps()
        .filter_map(|(_, step)| crate::trust::installer_role(step.action))
        .collect();
    roles.sort();
    roles.dedup();
    roles
        .into_iter()
        .filter_map(|role| {
            let artifact = named.get(&role)?;
            let (reason, remedy) = match stored.get(&role) {
                Some(sha) if *sha == artifact.sha256 => return None,
                Some(sha) => (
                    format!(
                        "the stored {role} installer of {release} has SHA-256 {sha}, but the catalogue gives {}",
                        artifact.sha256
                    ),
                    format!(
                        "add the right file: `tierwise artifacts add {} --release {release} --component {role}`",
                        artifact.file
                    ),
                ),
                None => (
                    format!(
                        "the catalogue names the {role} installer {} for {release}, but the controller does not hold it",
                        artifact.file
                    ),
                    format!(
                        "`tierwise artifacts add {} --release {release} --component {role}`",
                        artifact.file
                    ),
                ),
            };
            Some(Finding::new(
                Severity::Blocker,
                Rule::Readiness,
                Subject::Release { version: release },
                reason,
                remedy,
            ))
        })
        .collect()
}

/// Free space needed where an agent downloads an installer: the file,
/// and as much again for what the installer unpacks.
pub const fn space_needed(installer: u64) -> u64 {
    installer.saturating_mul(2)
}

/// A blocker for each host whose agent reports less free space where it
/// downloads installers than its step's installer needs (`space_needed`);
/// hosts that report nothing are not judged. For a client it is a warning:
/// its install would fail and count against its wave's error threshold.
pub fn disk_findings(
    plan: &Plan,
    hosts: &[crate::HostRecord],
    sizes: &BTreeMap<Role, u64>,
) -> Vec<crate::rules::Finding> {
    use crate::rules::{Finding, Rule, Subject};
    let by_id: BTreeMap<&str, &crate::HostRecord> =
        hosts.iter().map(|h| (h.host_id.as_str(), h)).collect();
    let mib = |bytes: u64| bytes / (1024 * 1024);
    plan.steps()
        .filter_map(|(_, step)| {
            let role = crate::trust::installer_role(step.action)?;
            let size = *sizes.get(&role)?;
            let volume = by_id.get(step.host_id.as_str())?.inventory.free_for_installers()?;
            let needed = space_needed(size);
            (volume.free_bytes < needed).then(|| {
                Finding::new(
                    if role == Role::Client {
                        Severity::Warning
                    } else {
                        Severity::Blocker
                    },
                    Rule::Readiness,
                    Subject::Host {
                        host_id: step.host_id.clone(),
                        role,
                    },
                    format!(
                        "{} MiB are free in {}, where the agent downloads the {role} installer of {} MiB; it needs {} MiB",
                        mib(volume.free_bytes),
                        volume.path,
                        mib(size).max(1),
                        mib(needed).max(1)
                    ),
                    format!("free space on the volume of {}", volume.path),
                )
            })
        })
        .collect()
}

/// Admits a planned rollout or says why not, in this order: blockers,
/// acknowledgements, installers.
pub fn admit(request: &AdmissionRequest<'_>) -> Result<Admitted, NotAdmitted> {
    let plan = request.plan;
    if plan.blocked {
        return Err(NotAdmitted::Blocked {
            blockers: plan
                .findings
                .iter()
                .filter(|f| f.severity == Severity::Blocker && !f.excludes_client())
                .map(|f| format!("{}: {} (→ {})", f.subject, f.reason, f.remedy))
                .collect(),
        });
    }
    let flags: Vec<String> = plan
        .acks_required
        .iter()
        .filter(|ack| !request.acks.contains(ack))
        .map(|ack| match ack.as_str() {
            // The releases whose changelogs are meant, with their references.
            ACK_CHANGELOG => plan
                .findings
                .iter()
                .find(|f| f.ack.as_deref() == Some(ACK_CHANGELOG))
                .and_then(|f| f.reason.split_once(": "))
                .map_or_else(
                    || ack_flag(ack),
                    |(_, releases)| format!("{} (changelogs of {releases})", ack_flag(ack)),
                ),
            _ => ack_flag(ack),
        })
        .collect();
    if !flags.is_empty() {
        return Err(NotAdmitted::Unacknowledged { flags });
    }
    let release = plan.target.version.to_string();
    let mut installers = BTreeMap::new();
    for role in Role::ALL {
        match (request.stored.get(&role), request.named.get(&role)) {
            (Some(sha), Some(artifact)) if *sha != artifact.sha256 => {
                return Err(NotAdmitted::WrongInstaller {
                    role,
                    release,
                    stored: sha.clone(),
                    named: artifact.sha256.clone(),
                })
            }
            (Some(sha), _) => {
                installers.insert(role, sha.clone());
            }
            (None, Some(artifact)) => {
                return Err(NotAdmitted::MissingInstaller {
                    role,
                    release,
                    file: artifact.file.clone(),
                })
            }
            (None, None) => {}
        }
    }
    Ok(Admitted { installers })
}
