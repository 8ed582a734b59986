//! Zero-touch discovery: which Password Secure components a Windows machine
//! has, read from its Uninstall entries, and which servers its client is set
//! up for, read from the client's database profiles.
//!
//! Only decisions live here, over what the Windows readers
//! (`probe::windows`) collected, so every rule is tested on any platform.
//! Discovery configures components only when no source configures any
//! (`policy::resolve`): an administrator who configures one component has
//! said what the host runs, and a guess must never add to that.

use crate::config::{
    ActionCommand, ComponentSpec, FactsSpec, VersionProbe, DEFAULT_ACTION_TIMEOUT_SECONDS,
};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;
use tierwise_common::inventory::{MAX_PROFILES, MAX_PROFILE_DATABASE, MAX_PROFILE_HOST};
use tierwise_common::{DatabaseProfile, ProbedVersion, Role, Version};

/// One entry under `…\CurrentVersion\Uninstall` (either registry view), as
/// read: entries without a DisplayName are not listed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UninstallEntry {
    pub display_name: String,
    /// `None` when the entry has no readable DisplayVersion.
    pub display_version: Option<String>,
    /// `None` when the entry names no Publisher.
    pub publisher: Option<String>,
}

impl UninstallEntry {
    /// The component this entry is, by `classify`, unless its Publisher
    /// shows another product: the vendor's old name "Password Safe" is also
    /// the name of an unrelated free tool, so an entry named only that must
    /// come from the vendor (MATESO, Netwrix) when it names a publisher.
    pub fn role(&self) -> Option<Role> {
        let role = classify(&self.display_name)?;
        let name = self.display_name.to_lowercase();
        if name.contains("password secure") {
            return Some(role);
        }
        match &self.publisher {
            Some(publisher) => {
                let publisher = publisher.to_lowercase();
                (publisher.contains("mateso") || publisher.contains("netwrix")).then_some(role)
            }
            None => Some(role),
        }
    }
}

/// The vendor's product names, current ("Netwrix Password Secure") and old
/// ("Password Safe and Repository", MATESO).
const PRODUCT_NAMES: [&str; 2] = ["password secure", "password safe"];

/// Names of the vendor's add-ons and other products that are neither the
/// Windows client nor the Server Manager. "keepass": "KeePass Password Safe"
/// is a different product that happens to contain the old name.
const NOT_A_COMPONENT: [&str; 8] = [
    "add-on",
    "addon",
    "autofill",
    "offline",
    "web",
    "browser",
    "extension",
    "keepass",
];

/// Which Password Secure component an Uninstall entry's DisplayName names.
/// The rules, applied to the name in lower case (substrings, in order):
///
/// 1. it must contain `password secure` or `password safe` (the vendor's old
///    name is "Password Safe and Repository"); otherwise `None`;
/// 2. a name that also contains `add-on`, `addon`, `autofill`, `offline`,
///    `web`, `browser`, `extension` or `keepass` is an add-on or another
///    product (the Autofill Add-on, the Offline Add-on, the Web Application,
///    browser extensions, "KeePass Password Safe"): `None`;
/// 3. a name that contains `server` is the Server Manager: `Role::Server`
///    ("Netwrix Password Secure Server", "Password Secure Server Manager");
/// 4. any other name is the Windows client: `Role::Client`
///    ("Netwrix Password Secure", "Password Safe and Repository 8").
pub fn classify(display_name: &str) -> Option<Role> {
    let name = display_name.to_lowercase();
    if !PRODUCT_NAMES.iter().any(|product| name.contains(product)) {
        return None;
    }
    if NOT_A_COMPONENT.iter().any(|word| name.contains(word)) {
        return None;
    }
    if name.contains("server") {
        Some(Role::Server)
    } else {
        Some(Role::Client)
    }
}

/// The highest DisplayVersion among the entries whose DisplayName `matches`;
/// not installed when none does. An entry whose version cannot be read
/// makes the answer unknown only when no other entry gives a version (an
/// old, broken entry beside a good one is common after upgrades).
pub fn highest_version(
    entries: &[UninstallEntry],
    matches: impl Fn(&UninstallEntry) -> bool,
) -> ProbedVersion {
    let mut best: Option<Version> = None;
    let mut error = None;
    for entry in entries.iter().filter(|e| matches(e)) {
        let shown = &entry.display_name;
        match &entry.display_version {
            Some(text) => match Version::parse(text.trim()) {
                Ok(version) => best = best.max(Some(version)),
                Err(e) => error = Some(format!("Uninstall entry `{shown}`: DisplayVersion: {e}")),
            },
            None => error = Some(format!("Uninstall entry `{shown}` has no DisplayVersion")),
        }
    }
    match (best, error) {
        (Some(version), _) => ProbedVersion::Installed(version),
        (None, Some(error)) => ProbedVersion::Unknown(error),
        (None, None) => ProbedVersion::NotInstalled,
    }
}

/// The roles the entries show, each with the DisplayNames that showed it
/// (sorted, once each), for `--check`.
pub fn discovered_roles(entries: &[UninstallEntry]) -> BTreeMap<Role, BTreeSet<String>> {
    let mut roles: BTreeMap<Role, BTreeSet<String>> = BTreeMap::new();
    for entry in entries {
        if let Some(role) = entry.role() {
            roles
                .entry(role)
                .or_default()
                .insert(entry.display_name.clone());
        }
    }
    roles
}

/// One component per role the entries show, in role order:
///
/// - the Server Manager: its version by discovery, its databases unknown,
///   and no actions (the vendor documents no silent switches for its setup:
///   it is reported, and updating it needs commands by policy);
/// - the Windows client: its version by discovery and the vendor's silent
///   MSI install, logged into `state_dir\logs`. The command sets no add-on
///   properties, so an upgrade keeps the features the user has; choosing
///   them (`INSTALL_WIN_APP`, `INSTALL_AUTOFILL_ADDON`, …) is a configured
///   `Components\Client\InstallCommand`, which turns discovery off.
pub fn discovered_components(entries: &[UninstallEntry], state_dir: &Path) -> Vec<ComponentSpec> {
    discovered_roles(entries)
        .into_keys()
        .filter_map(|role| match role {
            Role::Server => Some(ComponentSpec {
                role,
                version: VersionProbe::Discovered(role),
                facts: FactsSpec::Server { databases: None },
                actions: BTreeMap::new(),
                health: None,
                backup_location: None,
                web_app_output: None,
            }),
            Role::Client => Some(ComponentSpec {
                role,
                version: VersionProbe::Discovered(role),
                facts: FactsSpec::Client { update_check: None },
                actions: BTreeMap::from([("install", client_install_action(state_dir))]),
                health: None,
                backup_location: None,
                web_app_output: None,
            }),
            // `classify` names no other role.
            Role::AppServer | Role::Web => None,
        })
        .collect()
}

/// `msiexec /i {artifact} /qn /norestart /l*v STATE_DIR\logs\client-{version}.log`:
/// 1618 (another installation is running) is retried later.
pub fn client_install_action(state_dir: &Path) -> ActionCommand {
    let log = state_dir.join("logs").join("client-{version}.log");
    ActionCommand {
        argv: [
            "msiexec",
            "/i",
            "{artifact}",
            "/qn",
            "/norestart",
            "/l*v",
            &log.display().to_string(),
        ]
        .map(str::to_owned)
        .to_vec(),
        timeout: Duration::from_secs(u64::from(DEFAULT_ACTION_TIMEOUT_SECONDS)),
        transient_exit_codes: vec![tierwise_common::action::MSI_ALREADY_RUNNING],
        restart_exit_codes: tierwise_common::action::DEFAULT_RESTART_EXIT_CODES.to_vec(),
    }
}

/// A database profile as read from the registry: `HostIP` and
/// `DatabaseName`, either possibly absent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RawProfile {
    pub host: Option<String>,
    pub database: Option<String>,
}

/// The reader stops after this many raw profiles: a machine with more (all
/// user hives together) holds junk, and only `MAX_PROFILES` are kept anyway.
pub const MAX_RAW_PROFILES: usize = 256;

/// The profiles a client reports, always within what `Inventory::new`
/// accepts: control characters removed, trimmed, profiles without a host
/// dropped, the host cut to `MAX_PROFILE_HOST` bytes and the database to
/// `MAX_PROFILE_DATABASE`, the same server and database (compared without
/// case, as Windows names are) once, sorted, and at most `MAX_PROFILES`.
/// Sorting before cutting keeps the report the same whatever order the
/// registry lists its keys in.
pub fn normalise_profiles(raw: &[RawProfile]) -> Vec<DatabaseProfile> {
    let mut profiles: Vec<DatabaseProfile> = raw
        .iter()
        .filter_map(|raw| {
            let host = clean(raw.host.as_deref().unwrap_or_default(), MAX_PROFILE_HOST);
            let database = clean(
                raw.database.as_deref().unwrap_or_default(),
                MAX_PROFILE_DATABASE,
            );
            (!host.is_empty()).then_some(DatabaseProfile { host, database })
        })
        .collect();
    profiles.sort();
    let mut seen = BTreeSet::new();
    profiles.retain(|p| seen.insert((p.host.to_lowercase(), p.database.to_lowercase())));
    profiles.truncate(MAX_PROFILES);
    profiles
}

/// Printable, trimmed, at most `max` bytes, cut on a character boundary.
fn clean(text: &str, max: usize) -> String {
    let printable: String = text.chars().filter(|c| !c.is_control()).collect();
    let trimmed = printable.trim();
    let mut end = trimmed.len().min(max);
    while !trimmed.is_char_boundary(end) {
        end -= 1;
    }
    trimmed.get(..end).unwrap_or_default().trim_end().to_owned()
}

/// Whether a subkey of `HKEY_USERS` is a user's loaded hive whose
/// `SOFTWARE` may hold the client's profiles: not `.DEFAULT` (the profile
/// new users are copied from; nobody runs the client as it) and not
/// `<SID>_Classes` (file associations only).
pub fn is_user_hive(name: &str) -> bool {
    !name.eq_ignore_ascii_case(".DEFAULT")
        && !name
            .get(name.len().saturating_sub("_classes".len())..)
            .is_some_and(|tail| tail.eq_ignore_ascii_case("_classes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tierwise_common::{ClientFacts, Component, Facts, Inventory};

    fn entry(name: &str, version: Option<&str>) -> UninstallEntry {
        UninstallEntry {
            display_name: name.into(),
            display_version: version.map(str::to_owned),
            publisher: None,
        }
    }

    #[test]
    fn an_old_name_needs_the_vendor_as_publisher() {
        let with = |name: &str, publisher: &str| UninstallEntry {
            publisher: Some(publisher.into()),
            ..entry(name, Some("3.66"))
        };
        assert_eq!(with("Password Safe (64-bit)", "Rony Shapiro").role(), None);
        assert_eq!(
            with("Password Safe and Repository 8", "MATESO GmbH").role(),
            Some(Role::Client)
        );
        assert_eq!(
            with("Netwrix Password Secure", "Someone else").role(),
            Some(Role::Client),
            "the current name is the vendor's alone"
        );
        assert_eq!(
            entry("Password Safe and Repository 8", None).role(),
            Some(Role::Client)
        );
    }

    #[test]
    fn classify_knows_the_vendors_names() {
        let table: &[(&str, Option<Role>)] = &[
            // The Windows client, current and old names.
            ("Netwrix Password Secure", Some(Role::Client)),
            ("NETWRIX PASSWORD SECURE", Some(Role::Client)),
            ("Password Secure", Some(Role::Client)),
            ("Netwrix Password Secure 9", Some(Role::Client)),
            ("Netwrix Password Secure Client", Some(Role::Client)),
            ("Password Safe and Repository 8", Some(Role::Client)),
            ("MATESO Password Safe and Repository", Some(Role::Client)),
            (
                "Password Safe and Repository Client 8.3",
                Some(Role::Client),
            ),
            // The Server Manager.
            ("Netwrix Password Secure Server", Some(Role::Server)),
            ("Password Secure Server Manager", Some(Role::Server)),
            ("Netwrix Password Secure Server Manager", Some(Role::Server)),
            ("Password Safe Server", Some(Role::Server)),
            ("Password Safe and Repository Server 8", Some(Role::Server)),
            // Add-ons and other parts of the product.
            ("Password Secure Autofill Add-on", None),
            ("Netwrix Password Secure Autofill Add-on", None),
            ("Password Secure Addon", None),
            ("Netwrix Password Secure Offline Add-on", None),
            ("Netwrix Password Secure Web Application", None),
            ("Password Secure Web Server", None),
            ("Password Secure Browser Extension", None),
            ("Password Safe Extension for Firefox", None),
            // Other products.
            ("Netwrix Auditor", None),
            ("KeePass Password Safe 2.57.1", None),
            ("Microsoft SQL Server 2019 (64-bit)", None),
            ("Secure Password Generator", None),
            ("Microsoft Edge WebView2 Runtime", None),
            ("", None),
        ];
        for &(name, role) in table {
            assert_eq!(classify(name), role, "{name:?}");
        }
    }

    #[test]
    fn the_highest_version_wins_and_broken_entries_only_explain_an_absence() {
        let entries = [
            entry("Netwrix Password Secure", Some("9.2.0.30000")),
            entry("Netwrix Password Secure", Some(" 9.3.1.33994 ")),
            entry("Password Safe and Repository 8", Some("8.3")),
            entry("Netwrix Password Secure Server", Some("9.3.1.33994")),
        ];
        let client = |e: &UninstallEntry| e.role() == Some(Role::Client);
        assert_eq!(
            highest_version(&entries, client),
            ProbedVersion::Installed(Version::new(9, 3, 1, 33994))
        );
        let ProbedVersion::Unknown(why) = highest_version(&entries[2..3], client) else {
            panic!("a broken version alone is unknown");
        };
        assert!(
            why.contains("Uninstall entry `Password Safe and Repository 8`: DisplayVersion"),
            "{why}"
        );
        let ProbedVersion::Unknown(why) =
            highest_version(&[entry("Password Secure", None)], client)
        else {
            panic!("no version alone is unknown");
        };
        assert!(why.contains("has no DisplayVersion"), "{why}");
        assert_eq!(
            highest_version(&entries[3..], client),
            ProbedVersion::NotInstalled
        );
    }

    #[test]
    fn discovery_gives_one_component_per_role_found() {
        let entries = [
            entry("Netwrix Auditor", Some("10.6.0.1")),
            entry(
                "Netwrix Password Secure Autofill Add-on",
                Some("9.3.1.33994"),
            ),
            entry("Netwrix Password Secure", Some("9.3.1.33994")),
            // The same client in the 32-bit view, and under its old name.
            entry("Netwrix Password Secure", Some("9.3.1.33994")),
            entry("Password Safe and Repository 8", Some("8.16.0.1")),
            entry("Password Secure Server Manager", Some("9.3.1.33994")),
        ];
        let components = discovered_components(&entries, Path::new("/state"));
        let roles: Vec<Role> = components.iter().map(|c| c.role).collect();
        assert_eq!(roles, [Role::Server, Role::Client]);

        let server = &components[0];
        assert!(matches!(
            server.version,
            VersionProbe::Discovered(Role::Server)
        ));
        assert!(matches!(
            server.facts,
            FactsSpec::Server { databases: None }
        ));
        assert!(server.actions.is_empty(), "no silent switches documented");

        let client = &components[1];
        assert!(matches!(
            client.version,
            VersionProbe::Discovered(Role::Client)
        ));
        assert!(matches!(
            client.facts,
            FactsSpec::Client { update_check: None }
        ));
        let install = &client.actions["install"];
        assert_eq!(
            install.argv,
            [
                "msiexec",
                "/i",
                "{artifact}",
                "/qn",
                "/norestart",
                "/l*v",
                "/state/logs/client-{version}.log"
            ]
        );
        assert!(
            !install.argv.iter().any(|a| a.contains('=')),
            "no add-on properties: an upgrade keeps the user's features"
        );
        assert_eq!(install.timeout, Duration::from_secs(1800));
        assert_eq!(install.transient_exit_codes, [1618]);

        let names = discovered_roles(&entries);
        assert_eq!(
            names[&Role::Client].iter().collect::<Vec<_>>(),
            ["Netwrix Password Secure", "Password Safe and Repository 8"]
        );
        assert!(discovered_components(&entries[..2], Path::new("/state")).is_empty());
        assert!(discovered_components(&[], Path::new("/state")).is_empty());
    }

    fn raw(host: Option<&str>, database: Option<&str>) -> RawProfile {
        RawProfile {
            host: host.map(str::to_owned),
            database: database.map(str::to_owned),
        }
    }

    #[test]
    fn profiles_are_cleaned_deduplicated_and_bounded() {
        let long_host = "h".repeat(300);
        let long_database = "ä".repeat(100); // 200 bytes
        let profiles = normalise_profiles(&[
            raw(Some("  ps-srv.corp.example \r\n"), Some("PSDB")),
            raw(Some("PS-SRV.corp.example"), Some("psdb")), // the same, other case
            raw(Some("ps-srv.corp.example"), Some("Archive")),
            raw(Some("   "), Some("Orphan")),
            raw(None, Some("Orphan")),
            raw(Some("10.0.0.5\u{0}"), None),
            raw(Some("tab\there"), Some("d\u{7}b")),
            raw(Some(&long_host), Some(&long_database)),
        ]);
        let hosts: Vec<(&str, &str)> = profiles
            .iter()
            .map(|p| (p.host.as_str(), p.database.as_str()))
            .collect();
        assert_eq!(hosts.len(), 5, "{hosts:?}");
        assert_eq!(hosts[0], ("10.0.0.5", ""));
        assert!(
            hosts.contains(&("PS-SRV.corp.example", "psdb")),
            "{hosts:?}"
        );
        assert!(
            hosts.contains(&("ps-srv.corp.example", "Archive")),
            "{hosts:?}"
        );
        assert!(hosts.contains(&("tabhere", "db")), "{hosts:?}");
        let long = profiles
            .iter()
            .find(|p| p.host.starts_with('h'))
            .expect("the long profile");
        assert_eq!(long.host.len(), MAX_PROFILE_HOST);
        assert_eq!(long.database.len(), MAX_PROFILE_DATABASE);
        assert!(long.database.chars().all(|c| c == 'ä'));

        let many: Vec<RawProfile> = (0..40)
            .map(|i| raw(Some(&format!("srv-{i:02}")), Some("PSDB")))
            .collect();
        let kept = normalise_profiles(&many);
        assert_eq!(kept.len(), MAX_PROFILES);
        assert_eq!(kept[0].host, "srv-00");
        let mut reversed = many.clone();
        reversed.reverse();
        assert_eq!(normalise_profiles(&reversed), kept, "order does not matter");
    }

    #[test]
    fn normalised_profiles_always_make_a_valid_inventory() {
        let nasty = [
            raw(
                Some("\u{85}\u{2028} x \u{feff}"),
                Some(&"\u{1f600}".repeat(64)),
            ),
            raw(Some(&"é".repeat(200)), Some("\u{0}\u{1b}[31m")),
            raw(Some("\u{a0}"), None), // a no-break space is whitespace: dropped
        ];
        let mut many = nasty.to_vec();
        many.extend((0..30).map(|i| raw(Some(&format!("h{i}")), None)));
        for input in [&nasty[..], &many[..]] {
            let profiles = normalise_profiles(input);
            let component = Component {
                role: Role::Client,
                version: ProbedVersion::NotInstalled,
                facts: Facts::Client(ClientFacts {
                    profiles: profiles.clone(),
                    ..ClientFacts::default()
                }),
            };
            let inventory = Inventory::new(vec![component]).expect("within the limits");
            let Facts::Client(kept) = &inventory.components()[0].facts else {
                panic!("client facts");
            };
            assert_eq!(
                kept.profiles, profiles,
                "nothing left for Inventory to change"
            );
        }
    }

    #[test]
    fn user_hives_skip_the_default_profile_and_classes() {
        assert!(is_user_hive(
            "S-1-5-21-1004336348-1177238915-682003330-1001"
        ));
        assert!(is_user_hive("S-1-5-18"));
        assert!(!is_user_hive(".DEFAULT"));
        assert!(!is_user_hive(".default"));
        assert!(!is_user_hive(
            "S-1-5-21-1004336348-1177238915-682003330-1001_Classes"
        ));
        assert!(!is_user_hive("S-1-5-21-1-2-3-1001_CLASSES"));
        assert!(is_user_hive("x"));
    }
}
