//! Which installation a client belongs to when its agent says
//! `installation = "auto"`: the one whose server its database profiles name.
//! One Group Policy object can then cover an OU whose clients belong to
//! several installations. A pure decision over the client's profiles, the
//! operator's address mappings and the known server hosts.

use crate::DatabaseProfile;
use std::collections::{BTreeMap, BTreeSet};

/// The installation an agent claims when it leaves placement to the
/// controller. Not a name an installation may have.
pub const AUTO_INSTALLATION: &str = "auto";

/// Where a client was placed, or why it could not be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Placement {
    Placed {
        installation: String,
        /// How: `mapping ADDRESS` or `server HOST`.
        by: String,
    },
    Unassigned {
        reason: String,
    },
}

/// A server host the controller knows: its installation, host id and host
/// name (a profile may name either, or a fully qualified form of them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownServer {
    pub installation: String,
    pub host_id: String,
    pub hostname: String,
}

/// Addresses compare without case, and a fully qualified name also matches
/// its first label (`ps-srv.corp.example` ~ `PS-SRV`), but only name to
/// name: an IP address matches only itself.
fn same_host(profile: &str, name: &str) -> bool {
    let a = profile.trim().to_ascii_lowercase();
    let b = name.trim().to_ascii_lowercase();
    if a.is_empty() || b.is_empty() {
        return false;
    }
    if a == b {
        return true;
    }
    let is_ip = |t: &str| t.parse::<std::net::IpAddr>().is_ok();
    if is_ip(&a) || is_ip(&b) {
        return false;
    }
    let first = |t: &str| t.split('.').next().unwrap_or_default().to_owned();
    first(&a) == first(&b)
}

/// Normalised form of an address for mappings: trimmed, lower case.
pub fn normalise_address(address: &str) -> String {
    address.trim().to_ascii_lowercase()
}

/// Places a client by its profiles. A mapping for an address wins over
/// matching server hosts; every address the client names must lead to the
/// same installation.
pub fn place(
    profiles: &[DatabaseProfile],
    mappings: &BTreeMap<String, String>,
    servers: &[KnownServer],
) -> Placement {
    let addresses: BTreeSet<String> = profiles
        .iter()
        .map(|p| normalise_address(&p.host))
        .filter(|a| !a.is_empty())
        .collect();
    if addresses.is_empty() {
        return Placement::Unassigned {
            reason: "the agent reports no Password Secure server for this client (no database profile with HostIP); give the host an installation, or check its DatabaseProfiles".into(),
        };
    }
    let mut found: BTreeMap<String, String> = BTreeMap::new();
    for address in &addresses {
        if let Some(installation) = mappings.get(address) {
            found.insert(installation.clone(), format!("mapping {address}"));
            continue;
        }
        let matching: BTreeMap<&str, &str> = servers
            .iter()
            .filter(|s| same_host(address, &s.host_id) || same_host(address, &s.hostname))
            .map(|s| (s.installation.as_str(), s.host_id.as_str()))
            .collect();
        match matching.len() {
            0 => {
                return Placement::Unassigned {
                    reason: format!(
                        "its server `{address}` is no known server host and has no mapping; run `tierwise installations map {address} INSTALLATION`"
                    ),
                }
            }
            1 => {
                for (installation, host) in matching {
                    found.insert(installation.to_owned(), format!("server {host}"));
                }
            }
            _ => {
                let names: Vec<&str> = matching.keys().copied().collect();
                return Placement::Unassigned {
                    reason: format!(
                        "its server `{address}` matches server hosts of several installations ({}); run `tierwise installations map {address} INSTALLATION`",
                        names.join(", ")
                    ),
                };
            }
        }
    }
    if found.len() == 1 {
        let (installation, by) = found.into_iter().next().unwrap_or_default();
        Placement::Placed { installation, by }
    } else {
        let names: Vec<String> = found.into_keys().collect();
        Placement::Unassigned {
            reason: format!(
                "its database profiles name servers of several installations ({}); map the addresses so they agree, or give the host an installation",
                names.join(", ")
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(host: &str) -> DatabaseProfile {
        DatabaseProfile {
            host: host.into(),
            database: "PSDB".into(),
        }
    }

    fn server(installation: &str, host_id: &str, hostname: &str) -> KnownServer {
        KnownServer {
            installation: installation.into(),
            host_id: host_id.into(),
            hostname: hostname.into(),
        }
    }

    fn servers() -> Vec<KnownServer> {
        vec![
            server("prod", "srv-01", "PS-PROD"),
            server("test", "srv-test", "ps-test"),
        ]
    }

    #[test]
    fn a_server_host_of_one_installation_places_the_client() {
        let placed = place(
            &[profile("ps-prod.corp.example")],
            &BTreeMap::new(),
            &servers(),
        );
        assert_eq!(
            placed,
            Placement::Placed {
                installation: "prod".into(),
                by: "server srv-01".into()
            }
        );
        assert!(matches!(
            place(&[profile("SRV-TEST")], &BTreeMap::new(), &servers()),
            Placement::Placed { installation, .. } if installation == "test"
        ));
    }

    #[test]
    fn a_mapping_wins_and_addresses_compare_without_case() {
        let mappings = BTreeMap::from([("10.0.0.5".to_owned(), "test".to_owned())]);
        assert_eq!(
            place(&[profile(" 10.0.0.5 ")], &mappings, &servers()),
            Placement::Placed {
                installation: "test".into(),
                by: "mapping 10.0.0.5".into()
            }
        );
        let mappings = BTreeMap::from([("ps-prod".to_owned(), "test".to_owned())]);
        assert!(matches!(
            place(&[profile("PS-PROD")], &mappings, &servers()),
            Placement::Placed { installation, .. } if installation == "test"
        ));
    }

    #[test]
    fn an_ip_address_matches_only_itself() {
        let known = vec![server("prod", "srv-01", "10.0.0.5")];
        assert!(matches!(
            place(&[profile("10.0.0.5")], &BTreeMap::new(), &known),
            Placement::Placed { .. }
        ));
        assert!(matches!(
            place(&[profile("10.0.0.50")], &BTreeMap::new(), &known),
            Placement::Unassigned { .. }
        ));
        assert!(matches!(
            place(
                &[profile("10.1.2.3")],
                &BTreeMap::new(),
                &[server("prod", "10", "10")]
            ),
            Placement::Unassigned { .. }
        ));
    }

    #[test]
    fn what_cannot_be_placed_says_why_and_what_to_run() {
        let unassigned = |p: Placement| match p {
            Placement::Unassigned { reason } => reason,
            other => panic!("placed: {other:?}"),
        };
        let none = unassigned(place(&[], &BTreeMap::new(), &servers()));
        assert!(none.contains("no database profile"), "{none}");
        let unknown = unassigned(place(&[profile("elsewhere")], &BTreeMap::new(), &servers()));
        assert!(
            unknown.contains("tierwise installations map elsewhere INSTALLATION"),
            "{unknown}"
        );
        let twice = vec![
            server("prod", "srv-01", "ps"),
            server("test", "srv-02", "ps"),
        ];
        let ambiguous = unassigned(place(&[profile("ps")], &BTreeMap::new(), &twice));
        assert!(
            ambiguous.contains("several installations (prod, test)"),
            "{ambiguous}"
        );
        let split = unassigned(place(
            &[profile("ps-prod"), profile("ps-test")],
            &BTreeMap::new(),
            &servers(),
        ));
        assert!(
            split.contains("several installations (prod, test)"),
            "{split}"
        );
    }

    #[test]
    fn two_profiles_of_one_installation_agree() {
        let placed = place(
            &[profile("ps-prod"), profile("srv-01")],
            &BTreeMap::new(),
            &servers(),
        );
        assert!(matches!(placed, Placement::Placed { installation, .. } if installation == "prod"));
    }
}
