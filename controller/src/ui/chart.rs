//! Versions per role as the dashboard draws them: one bar per role, one
//! segment per version, oldest first; the catalogue's latest release has
//! its own colour, other versions a shade each, unknown and not installed
//! their own.

use tierwise_common::Version;

/// How many shades older versions cycle through (`older-0` … `older-3`).
const SHADES: usize = 4;

/// One segment of a bar.
#[derive(Clone, Debug, PartialEq)]
pub struct Segment {
    pub version: String,
    pub hosts: i64,
    /// Left edge and width, in percent of the bar.
    pub x: f64,
    pub width: f64,
    /// The CSS class that colours it.
    pub class: String,
}

/// One role's bar.
#[derive(Clone, Debug, PartialEq)]
pub struct Bar {
    pub role: String,
    pub hosts: i64,
    pub online: i64,
    pub segments: Vec<Segment>,
}

/// Bars for the roles in `counts` ((role, version or `unknown` /
/// `not_installed`, hosts)), in the roles' order; `online` gives agents
/// online per role, `latest` the catalogue's latest release.
pub fn bars(
    counts: &[(String, String, i64)],
    online: &[(String, i64)],
    latest: Option<Version>,
) -> Vec<Bar> {
    let mut roles: Vec<&str> = counts.iter().map(|(r, _, _)| r.as_str()).collect();
    roles.sort_by_key(|r| role_rank(r));
    roles.dedup();
    roles
        .into_iter()
        .map(|role| {
            let mut versions: Vec<(&str, i64)> = counts
                .iter()
                .filter(|(r, _, n)| r == role && *n > 0)
                .map(|(_, v, n)| (v.as_str(), *n))
                .collect();
            // Oldest first; unknown and not installed at the end.
            versions.sort_by_key(|(v, _)| {
                let parsed = Version::parse(v).ok();
                (parsed.is_none(), parsed, v.to_string())
            });
            let total: i64 = versions.iter().map(|(_, n)| n).sum();
            let mut x = 0.0;
            let mut older = 0;
            let segments = versions
                .into_iter()
                .map(|(version, hosts)| {
                    let width = if total > 0 {
                        100.0 * hosts as f64 / total as f64
                    } else {
                        0.0
                    };
                    let class = match Version::parse(version).ok() {
                        Some(v) if Some(v) == latest => "latest".to_owned(),
                        Some(_) => {
                            older += 1;
                            format!("older-{}", (older - 1) % SHADES)
                        }
                        None if version == "not_installed" => "none".to_owned(),
                        None => "unknown".to_owned(),
                    };
                    let segment = Segment {
                        version: version.replace('_', " "),
                        hosts,
                        x,
                        width,
                        class,
                    };
                    x += width;
                    segment
                })
                .collect();
            Bar {
                role: role.to_owned(),
                hosts: total,
                online: online
                    .iter()
                    .find(|(r, _)| r == role)
                    .map_or(0, |(_, n)| *n),
                segments,
            }
        })
        .collect()
}

/// The vendor's order: server, application servers, web, clients.
fn role_rank(role: &str) -> usize {
    match role {
        "server" => 0,
        "app_server" => 1,
        "web" => 2,
        "client" => 3,
        _ => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(role: &str, version: &str, n: i64) -> (String, String, i64) {
        (role.into(), version.into(), n)
    }

    #[test]
    fn a_bar_per_role_in_the_vendors_order_with_versions_oldest_first() {
        let bars = bars(
            &[
                count("client", "26.3.100.34058", 15),
                count("client", "unknown", 1),
                count("client", "9.3.1.33994", 3),
                count("client", "10.0.0.1", 1),
                count("server", "26.3.100.34058", 1),
            ],
            &[("client".into(), 18)],
            Version::parse("26.3.100.34058").ok(),
        );
        assert_eq!(
            bars.iter().map(|b| b.role.as_str()).collect::<Vec<_>>(),
            ["server", "client"]
        );
        let client = &bars[1];
        assert_eq!(client.hosts, 20);
        assert_eq!(client.online, 18);
        let versions: Vec<(&str, &str)> = client
            .segments
            .iter()
            .map(|s| (s.version.as_str(), s.class.as_str()))
            .collect();
        assert_eq!(
            versions,
            [
                ("9.3.1.33994", "older-0"),
                ("10.0.0.1", "older-1"),
                ("26.3.100.34058", "latest"),
                ("unknown", "unknown"),
            ]
        );
        // The segments tile the bar.
        let last = client.segments.last().expect("segments");
        assert!((last.x + last.width - 100.0).abs() < 1e-9);
        assert!((client.segments[2].width - 75.0).abs() < 1e-9);
        assert_eq!(bars[0].online, 0);
        // Without a catalogue no version is called the latest.
        let bars = super::bars(&[count("server", "9.3.1.33994", 1)], &[], None);
        assert_eq!(bars[0].segments[0].class, "older-0");
    }
}
