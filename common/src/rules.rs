//! The vendor's rules (DESIGN.md §3) as pure functions. Each returns typed
//! findings that name what they are about, the rule, the reason, and what
//! would make it pass; the planner collects them.

use crate::{Catalogue, Check, Licence, Release, Requirement, Role, Version};
use serde::{Deserialize, Serialize};
use std::fmt;

/// How much a finding matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Stops the rollout (or, on a client, keeps that client out of it).
    Blocker,
    /// Worth knowing; changes nothing.
    Warning,
    /// The operator must acknowledge it when starting the rollout.
    AckRequired,
}

/// Which rule produced a finding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(strum::IntoStaticStr, strum::EnumString)]
#[cfg_attr(test, derive(strum::EnumIter))]
#[strum(serialize_all = "snake_case")]
pub enum Rule {
    /// Exactly one primary server, with a known version.
    Topology,
    /// Only releases published while maintenance is active.
    Maintenance,
    /// The host's version must be an allowed starting point.
    UpgradePath,
    /// Never to an older version.
    Downgrade,
    /// A component's version must be known.
    KnownVersion,
    /// WebSocket support on every web host.
    WebPrerequisites,
    /// The databases' patch level must be verifiable.
    Databases,
    /// No client newer than its server.
    ClientNotAboveServer,
    /// Clients the new server no longer accepts.
    Compatibility,
    /// Breaking changes, vendor notes and the Server Manager password.
    Acknowledgement,
    /// "Can search for updates" for normal users.
    UpdateCheck,
    /// Hosts that are not connected.
    Offline,
    /// Installers covered by signed release metadata.
    SignedRelease,
    /// A release reaches an installation only after the one it is
    /// promoted from ran it long enough.
    Promotion,
    /// The backup before the server update is verified by the file it
    /// leaves, not by an exit code alone.
    Backup,
    /// What the rollout will need is in place before it starts: a command
    /// or an operator task for every step of the server's unit.
    Readiness,
}

impl Rule {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a finding is about.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Subject {
    Installation { name: String },
    Release { version: Version },
    Host { host_id: String, role: Role },
    Database { host_id: String, name: String },
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Installation { name } => write!(f, "installation {name}"),
            Subject::Release { version } => write!(f, "release {version}"),
            Subject::Host { host_id, role } => write!(f, "{host_id} ({role})"),
            Subject::Database { host_id, name } => write!(f, "database {name} on {host_id}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Finding {
    pub severity: Severity,
    pub rule: Rule,
    pub subject: Subject,
    /// Why, in words an operator can act on.
    pub reason: String,
    /// What would make it pass.
    pub remedy: String,
    /// The acknowledgement that clears it (`AckRequired` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ack: Option<String>,
}

impl Finding {
    pub fn new(
        severity: Severity,
        rule: Rule,
        subject: Subject,
        reason: String,
        remedy: String,
    ) -> Self {
        Self {
            severity,
            rule,
            subject,
            reason,
            remedy,
            ack: None,
        }
    }

    /// Whether this finding keeps a client out of the rollout rather than
    /// stopping the rollout.
    pub fn excludes_client(&self) -> bool {
        self.severity == Severity::Blocker
            && matches!(
                self.subject,
                Subject::Host {
                    role: Role::Client,
                    ..
                }
            )
    }
}

/// The acknowledgement id for breaking changes (`--ack breaking`).
pub const ACK_BREAKING: &str = "breaking";
/// The acknowledgement that the changelogs of every release crossed were
/// read (`--ack changelog`).
pub const ACK_CHANGELOG: &str = "changelog";
/// The acknowledgement id for the Server Manager password caution.
pub const ACK_SERVER_MANAGER_PASSWORD: &str = "server-manager-password";

/// Rule 4: a target released after the maintenance end date is refused; an
/// undated release never passes silently.
pub fn maintenance(
    installation: &str,
    target: &Release,
    licence: Option<&Licence>,
) -> Option<Finding> {
    let subject = Subject::Installation {
        name: installation.to_owned(),
    };
    let blocker = |reason: String, remedy: String| {
        Some(Finding::new(
            Severity::Blocker,
            Rule::Maintenance,
            subject.clone(),
            reason,
            remedy,
        ))
    };
    let Some(licence) = licence else {
        return blocker(
            format!("no maintenance end date is recorded for installation {installation}"),
            format!(
                "record it: tierwise license set --installation {installation} --maintenance-until YYYY-MM-DD"
            ),
        );
    };
    let end = licence.maintenance_until;
    let version = target.version;
    match target.released.span() {
        None => blocker(
            format!(
                "{version} has no release date in the catalogue, so Tierwise cannot tell whether \
                 maintenance (until {end}) covers it"
            ),
            format!("add `released = \"YYYY-MM-DD\"` to release {version} in the catalogue and import it again"),
        ),
        Some((first, _)) if first > end => blocker(
            format!("{version} was released {}, after maintenance ended on {end}", target.released),
            format!(
                "renew the maintenance package and record the new end date, or choose a release \
                 published on or before {end}"
            ),
        ),
        Some((_, last)) if last > end => blocker(
            format!(
                "{version} was released in {} and maintenance ends on {end}, within that month; \
                 the catalogue does not say on which day",
                target.released
            ),
            format!("date release {version} to the day in the catalogue (`released = \"YYYY-MM-DD\"`)"),
        ),
        Some(_) => None,
    }
}

/// Rule 5: the installed version must be an allowed starting point of the
/// target; downgrades are refused. `None` also when already at the target.
pub fn upgrade_path(
    host_id: &str,
    role: Role,
    installed: Version,
    target: &Release,
    catalogue: &Catalogue,
) -> Option<Finding> {
    // Made only for a finding: most hosts pass, and this runs per host.
    let subject = || Subject::Host {
        host_id: host_id.to_owned(),
        role,
    };
    if installed > target.version {
        return Some(Finding::new(
            Severity::Blocker,
            Rule::Downgrade,
            subject(),
            format!(
                "{role} is at {installed}, newer than the target {}",
                target.version
            ),
            format!("Tierwise never downgrades; choose a target of at least {installed}"),
        ));
    }
    if installed == target.version {
        return None;
    }
    let allowed = target.upgrade_from.as_ref()?;
    if allowed.matches(installed) {
        return None;
    }
    // A release in between that accepts this host and is accepted by the target.
    let via = catalogue
        .releases()
        .iter()
        .filter(|r| r.version > installed && r.version < target.version)
        .filter(|r| {
            r.upgrade_from
                .as_ref()
                .is_none_or(|req| req.matches(installed))
        })
        .rfind(|r| allowed.matches(r.version));
    let remedy = match via {
        Some(step) => format!(
            "update to {} first (it accepts {installed}), then to {}",
            step.version, target.version
        ),
        None => format!(
            "no release in the catalogue bridges {installed} to {}; update the host by hand to a \
             version matching `{allowed}`",
            target.version
        ),
    };
    Some(Finding::new(
        Severity::Blocker,
        Rule::UpgradePath,
        subject(),
        format!(
            "{} may only be installed over `{allowed}`; {role} is at {installed}",
            target.version
        ),
        remedy,
    ))
}

/// A component whose version the agent could not tell.
pub fn unknown_version(host_id: &str, role: Role, why: Option<&str>) -> Finding {
    let (reason, remedy) = match why {
        Some(why) => (
            format!("the {role} version is unknown: {why}"),
            "fix the agent's version probe for this role (tierwise-agent --check shows what it reads)".to_owned(),
        ),
        None => (
            format!("the agent reports no {role} installed"),
            "install the component, or remove the role from the agent's configuration".to_owned(),
        ),
    };
    Finding::new(
        Severity::Blocker,
        Rule::KnownVersion,
        Subject::Host {
            host_id: host_id.to_owned(),
            role,
        },
        reason,
        remedy,
    )
}

/// Rule 6: from 8.5.0.14896 on every web host must support WebSocket.
pub fn web_prerequisites(
    host_id: &str,
    server_kind: &str,
    websocket: Check,
    target: &Release,
) -> Option<Finding> {
    if !target.requires.contains(&Requirement::WebWebsocket) || websocket == Check::Yes {
        return None;
    }
    let what = match server_kind {
        "iis" => "the IIS feature \"WebSocket Protocol\"",
        "apache" => "the Apache module proxy_wstunnel",
        _ => "WebSocket proxying",
    };
    let state = match websocket {
        Check::No => "does not have",
        _ => "does not report whether it has",
    };
    Some(Finding::new(
        Severity::Blocker,
        Rule::WebPrerequisites,
        Subject::Host {
            host_id: host_id.to_owned(),
            role: Role::Web,
        },
        format!(
            "{} needs WebSocket support; this {server_kind} host {state} {what}",
            target.version
        ),
        match websocket {
            Check::No => {
                format!("enable {what} on the host; the agent reports it on its next probe")
            }
            _ => "configure the agent's `websocket` check for this web host".to_owned(),
        },
    ))
}

/// Rule 2, as observed now: a client newer than its server cannot log in.
pub fn client_not_above_server(host_id: &str, client: Version, server: Version) -> Option<Finding> {
    (client > server).then(|| {
        Finding::new(
            Severity::Warning,
            Rule::ClientNotAboveServer,
            Subject::Host {
                host_id: host_id.to_owned(),
                role: Role::Client,
            },
            format!("the client ({client}) is newer than the server ({server}); a new client cannot connect to an old server"),
            "the server update brings them in line; until then this client cannot log in".to_owned(),
        )
    })
}

/// Rule 3: how many clients the target's server no longer accepts.
pub fn compatibility(
    installation: &str,
    target: Version,
    oldest_client: Option<Version>,
    locked_out: usize,
    older_than_target: usize,
) -> Option<Finding> {
    let subject = Subject::Installation {
        name: installation.to_owned(),
    };
    match oldest_client {
        Some(oldest) if locked_out > 0 => Some(Finding::new(
            Severity::Warning,
            Rule::Compatibility,
            subject,
            format!(
                "{} client(s) older than {oldest} will be unable to log in from the server update until their own update",
                crate::thousands(locked_out)
            ),
            "plan the client waves right after the server; a breaking release runs them without waiting".to_owned(),
        )),
        None if older_than_target > 0 => Some(Finding::new(
            Severity::Warning,
            Rule::Compatibility,
            subject,
            format!(
                "the catalogue does not say which clients a {target} server accepts; {} client(s) are older",
                crate::thousands(older_than_target)
            ),
            format!("check the vendor's version history and set `oldest_client` for {target} in the catalogue"),
        )),
        _ => None,
    }
}

/// Rule 8: the changelogs of the releases crossed by moving the server from
/// `from` to the target (one acknowledgement for all), breaking releases
/// and vendor notes among them, and the Server Manager password caution.
pub fn acknowledgements(
    from: Version,
    target: Version,
    catalogue: &Catalogue,
    server_updated: bool,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    let crossed: Vec<String> = catalogue
        .between(from, target)
        .map(|r| match &r.changelog {
            Some(reference) => format!("{} ({reference})", r.version),
            None => format!("{} (no changelog reference in the catalogue)", r.version),
        })
        .collect();
    if !crossed.is_empty() {
        findings.push(Finding {
            ack: Some(ACK_CHANGELOG.to_owned()),
            ..Finding::new(
                Severity::AckRequired,
                Rule::Acknowledgement,
                Subject::Release { version: target },
                format!(
                    "the vendor asks to read the changelog of every release before updating, for requirements and breaking changes: {}",
                    crossed.join(", ")
                ),
                "read them, then acknowledge with --ack changelog when starting the rollout".to_owned(),
            )
        });
    }
    for release in catalogue.between(from, target) {
        let subject = Subject::Release {
            version: release.version,
        };
        if let Some(reason) = &release.breaking {
            findings.push(Finding {
                ack: Some(ACK_BREAKING.to_owned()),
                ..Finding::new(
                    Severity::AckRequired,
                    Rule::Acknowledgement,
                    subject.clone(),
                    format!("{} is breaking: {reason}", release.version),
                    "acknowledge with --ack breaking when starting the rollout".to_owned(),
                )
            });
        }
        for note in &release.notes {
            findings.push(Finding {
                ack: Some(note.id.clone()),
                ..Finding::new(
                    Severity::AckRequired,
                    Rule::Acknowledgement,
                    subject.clone(),
                    note.text.clone(),
                    format!(
                        "acknowledge with --ack {} when starting the rollout",
                        note.id
                    ),
                )
            });
        }
    }
    if server_updated {
        findings.push(Finding {
            ack: Some(ACK_SERVER_MANAGER_PASSWORD.to_owned()),
            ..Finding::new(
                Severity::AckRequired,
                Rule::Acknowledgement,
                Subject::Release { version: target },
                "if the Server Manager's database password was saved, note it down before the update: \
                 the databases are only accessible again after reactivation"
                    .to_owned(),
                "acknowledge with --ack server-manager-password when starting the rollout".to_owned(),
            )
        });
    }
    findings
}

/// Rule 9: a user-started update would break the ordering.
pub fn update_check(host_id: &str, enabled: Check) -> Option<Finding> {
    (enabled == Check::Yes).then(|| {
        Finding::new(
            Severity::Warning,
            Rule::UpdateCheck,
            Subject::Host {
                host_id: host_id.to_owned(),
                role: Role::Client,
            },
            "\"Can search for updates\" is on for normal users; a user could update this client before its server".to_owned(),
            "turn the setting off for normal users (user, OU or global settings)".to_owned(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Date, Note, ReleaseDate, VersionReq};

    fn v(text: &str) -> Version {
        text.parse().unwrap()
    }

    fn release(version: &str) -> Release {
        crate::fixtures::release(v(version))
    }

    #[test]
    fn maintenance_table() {
        let mut r263 = release("26.3.100.34058");
        r263.released = ReleaseDate::Month {
            year: 2026,
            month: 3,
        };
        let mut r264 = release("26.4.10.34111");
        r264.released = ReleaseDate::Day(Date::parse("2026-04-14").unwrap());
        let undated = release("9.3.1.33994");
        let cases: &[(&Release, Option<&str>, Option<&str>)] = &[
            (&r263, Some("2026-12-31"), None),
            (&r263, Some("2026-03-31"), None),
            (&r263, Some("2026-03-15"), Some("within that month")),
            (
                &r263,
                Some("2026-02-28"),
                Some("after maintenance ended on 2026-02-28"),
            ),
            (&r264, Some("2026-04-14"), None),
            (
                &r264,
                Some("2026-04-13"),
                Some("was released 2026-04-14, after maintenance ended on 2026-04-13"),
            ),
            (
                &undated,
                Some("2030-01-01"),
                Some("has no release date in the catalogue"),
            ),
            (&r263, None, Some("no maintenance end date is recorded")),
        ];
        for (target, end, expected) in cases {
            let licence = end.map(|until| crate::fixtures::licence("prod", until));
            let finding = maintenance("prod", target, licence.as_ref());
            match (expected, finding) {
                (None, None) => {}
                (Some(text), Some(f)) => {
                    assert_eq!(f.severity, Severity::Blocker);
                    assert_eq!(f.rule, Rule::Maintenance);
                    assert!(
                        f.reason.contains(text),
                        "{} {end:?}: {}",
                        target.version,
                        f.reason
                    );
                    assert!(!f.remedy.is_empty());
                }
                (expected, got) => panic!(
                    "{} {end:?}: expected {expected:?}, got {got:?}",
                    target.version
                ),
            }
        }
    }

    #[test]
    fn upgrade_path_table() {
        let mut r263 = release("26.3.100.34058");
        r263.upgrade_from = Some(VersionReq::parse(">=9.3").unwrap());
        let mut r931 = release("9.3.1.33994");
        r931.upgrade_from = Some(VersionReq::parse(">=9.0").unwrap());
        let catalogue = Catalogue::new(vec![r931.clone(), r263.clone()]).unwrap();
        let check =
            |installed: &str| upgrade_path("srv-01", Role::Server, v(installed), &r263, &catalogue);
        assert_eq!(check("9.3.1.33994"), None);
        assert_eq!(check("9.3.0.33526"), None);
        assert_eq!(check("26.3.100.34058"), None, "already at the target");
        let refused = check("9.2.6.33415").unwrap();
        assert_eq!(refused.rule, Rule::UpgradePath);
        assert!(
            refused
                .reason
                .contains("may only be installed over `>=9.3`"),
            "{}",
            refused.reason
        );
        assert_eq!(
            refused.remedy,
            "update to 9.3.1.33994 first (it accepts 9.2.6.33415), then to 26.3.100.34058"
        );
        let stranded = check("8.16.6.30233").unwrap();
        assert!(
            stranded
                .remedy
                .starts_with("no release in the catalogue bridges"),
            "{}",
            stranded.remedy
        );
        let down = check("26.4.10.34111").unwrap();
        assert_eq!(down.rule, Rule::Downgrade);
        assert_eq!(down.severity, Severity::Blocker);
        // No upgrade_from: any older version may be updated.
        let open = release("9.3.1.33994");
        assert_eq!(
            upgrade_path("x", Role::Client, v("8.16.6.30233"), &open, &catalogue),
            None
        );
    }

    #[test]
    fn web_prerequisites_table() {
        let target = release("26.3.100.34058");
        let apache = web_prerequisites("web-01", "apache", Check::No, &target).unwrap();
        assert_eq!(apache.rule, Rule::WebPrerequisites);
        assert!(
            apache.reason.contains("proxy_wstunnel"),
            "{}",
            apache.reason
        );
        let iis = web_prerequisites("web-02", "iis", Check::Unknown, &target).unwrap();
        assert!(iis
            .reason
            .contains("does not report whether it has the IIS feature \"WebSocket Protocol\""));
        assert_eq!(
            web_prerequisites("web-01", "apache", Check::Yes, &target),
            None
        );
        let mut old = release("8.4.0.14000");
        old.requires.clear();
        assert_eq!(web_prerequisites("web-01", "apache", Check::No, &old), None);
    }

    #[test]
    fn client_newer_than_server_is_reported() {
        let f = client_not_above_server("cl-1", v("26.3.100.34058"), v("9.3.1.33994")).unwrap();
        assert_eq!(f.severity, Severity::Warning);
        assert!(f.reason.contains("newer than the server"));
        assert_eq!(
            client_not_above_server("cl-1", v("9.3.1.33994"), v("9.3.1.33994")),
            None
        );
    }

    #[test]
    fn breaking_and_notes_need_acknowledgement() {
        let mut r263 = release("26.3.100.34058");
        r263.breaking = Some("older clients cannot connect".into());
        let mut r266 = release("26.6.100.34161");
        r266.breaking = Some("PKCS#11 library".into());
        r266.notes = vec![Note {
            id: "pkcs11-local-signed".into(),
            text: "PKCS#11 library on a local path with a valid code-signing certificate".into(),
        }];
        let catalogue = Catalogue::new(vec![release("9.3.1.33994"), r263, r266]).unwrap();
        // 9.3.1.33994 -> 26.3.100.34058 is breaking.
        let acks = acknowledgements(v("9.3.1.33994"), v("26.3.100.34058"), &catalogue, true);
        let ids: Vec<_> = acks.iter().map(|f| f.ack.as_deref().unwrap()).collect();
        assert_eq!(
            ids,
            [ACK_CHANGELOG, ACK_BREAKING, ACK_SERVER_MANAGER_PASSWORD]
        );
        // Across both breaking releases, with the note.
        let acks = acknowledgements(v("9.3.1.33994"), v("26.6.100.34161"), &catalogue, true);
        let ids: Vec<_> = acks.iter().map(|f| f.ack.as_deref().unwrap()).collect();
        assert_eq!(
            ids,
            [
                ACK_CHANGELOG,
                ACK_BREAKING,
                ACK_BREAKING,
                "pkcs11-local-signed",
                ACK_SERVER_MANAGER_PASSWORD
            ]
        );
        assert!(acks.iter().all(|f| f.severity == Severity::AckRequired));
        // One acknowledgement for every changelog crossed, each named with
        // its reference where the catalogue has one.
        assert_eq!(
            acks[0].reason,
            "the vendor asks to read the changelog of every release before updating, for requirements and breaking changes: \
             26.3.100.34058 (no changelog reference in the catalogue), 26.6.100.34161 (no changelog reference in the catalogue)"
        );
        let mut with_reference = catalogue.releases().to_vec();
        with_reference[1].changelog = Some("https://vendor.example/changelog/26.3".into());
        let catalogue2 = Catalogue::new(with_reference).unwrap();
        let acks = acknowledgements(v("9.3.1.33994"), v("26.3.100.34058"), &catalogue2, false);
        assert!(
            acks[0]
                .reason
                .ends_with("26.3.100.34058 (https://vendor.example/changelog/26.3)"),
            "{}",
            acks[0].reason
        );
        // Already past them, and the server not updated: nothing to acknowledge.
        let acks = acknowledgements(v("26.6.100.34161"), v("26.6.100.34161"), &catalogue, false);
        assert!(acks.is_empty());
    }

    #[test]
    fn compatibility_counts_locked_out_clients() {
        let oldest = Some(v("26.3.100.34058"));
        let f = compatibility("prod", v("26.3.100.34058"), oldest, 1204, 1204).unwrap();
        assert!(f
            .reason
            .starts_with("1,204 client(s) older than 26.3.100.34058 will be unable to log in"));
        assert_eq!(
            compatibility("prod", v("26.3.100.34058"), oldest, 0, 0),
            None
        );
        let unknown = compatibility("prod", v("26.4.10.34111"), None, 0, 7).unwrap();
        assert!(unknown.reason.contains("does not say which clients"));
    }

    #[test]
    fn update_check_is_a_warning() {
        assert_eq!(
            update_check("cl", Check::Yes).unwrap().severity,
            Severity::Warning
        );
        assert_eq!(update_check("cl", Check::No), None);
        assert_eq!(update_check("cl", Check::Unknown), None);
    }
}
