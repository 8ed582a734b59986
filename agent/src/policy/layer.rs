//! One source of settings as the agent read it: the values under the policy
//! key or the install-time key, checked against the table (type, bounds,
//! choices) before they take part in anything.

use super::table::{self, Setting, ValueKind};
use std::collections::BTreeMap;

/// A registry value as read, reduced to the types the table uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegValue {
    /// REG_SZ, or REG_EXPAND_SZ after expansion.
    Text(String),
    /// REG_DWORD.
    Number(u32),
    /// REG_MULTI_SZ.
    Lines(Vec<String>),
    /// Any other type (REG_BINARY, REG_QWORD, …), named for the message.
    Other(String),
}

/// The values under one root key: subkey (`""` or `Components\Client`) →
/// value name → value. Names compare without case, as the registry does.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RawKey {
    pub values: BTreeMap<String, BTreeMap<String, RegValue>>,
}

impl RawKey {
    pub fn insert(&mut self, subkey: &str, name: &str, value: RegValue) {
        self.values
            .entry(subkey.to_ascii_lowercase())
            .or_default()
            .insert(name.to_ascii_lowercase(), value);
    }

    pub fn is_empty(&self) -> bool {
        self.values.values().all(BTreeMap::is_empty)
    }
}

/// Where a setting's value came from, in precedence order (highest first).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Origin {
    /// `HKLM\SOFTWARE\Policies\Tierwise\Agent`, written by Group Policy.
    Policy,
    /// `HKLM\SOFTWARE\Tierwise\Agent`, written by the MSI.
    InstallKey,
    /// The TOML file.
    File(String),
    /// Not set anywhere.
    Default,
}

impl Origin {
    pub fn root(&self) -> Option<&'static str> {
        match self {
            Origin::Policy => Some(table::POLICY_KEY),
            Origin::InstallKey => Some(table::INSTALL_KEY),
            Origin::File(_) | Origin::Default => None,
        }
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Policy => write!(f, "policy"),
            Origin::InstallKey => write!(f, "install-time key"),
            Origin::File(path) => write!(f, "file {path}"),
            Origin::Default => write!(f, "default"),
        }
    }
}

/// A checked value from a registry source, ready for the document.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub setting: &'static Setting,
    pub value: toml::Value,
}

/// One registry source, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Layer {
    pub origin: Origin,
    pub entries: Vec<Entry>,
    /// Values the table does not know (a newer template, a typo): ignored,
    /// and said once in the log.
    pub ignored: Vec<String>,
}

/// Checks every value of `raw` against the table. Any value of the wrong
/// type or out of bounds makes the whole source unusable: the message names
/// each one and what it should be.
pub fn read(origin: Origin, raw: &RawKey) -> Result<Layer, Vec<String>> {
    let root = origin.root().unwrap_or("");
    let mut entries = Vec::new();
    let mut ignored = Vec::new();
    let mut errors = Vec::new();
    for (subkey, values) in &raw.values {
        for (name, value) in values {
            let Some(setting) = table::settings().iter().find(|s| {
                s.subkey().eq_ignore_ascii_case(subkey) && s.value.eq_ignore_ascii_case(name)
            }) else {
                ignored.push(if subkey.is_empty() {
                    format!(r"HKLM\{root}\{name}")
                } else {
                    format!(r"HKLM\{root}\{subkey}\{name}")
                });
                continue;
            };
            match convert(setting, value) {
                Ok(Some(value)) => entries.push(Entry { setting, value }),
                Ok(None) => {}
                Err(why) => errors.push(format!("{}: {why}", setting.path(root))),
            }
        }
    }
    if errors.is_empty() {
        Ok(Layer {
            origin,
            entries,
            ignored,
        })
    } else {
        Err(errors)
    }
}

/// The value in the document's terms; `None` for an empty text or list
/// (Group Policy writes those for a field left blank: not set).
fn convert(setting: &Setting, value: &RegValue) -> Result<Option<toml::Value>, String> {
    let wrong = |wanted: &str| {
        let found = match value {
            RegValue::Text(_) => "REG_SZ".to_owned(),
            RegValue::Number(_) => "REG_DWORD".to_owned(),
            RegValue::Lines(_) => "REG_MULTI_SZ".to_owned(),
            RegValue::Other(kind) => kind.clone(),
        };
        Err(format!("is {found}; it must be {wanted}"))
    };
    match (setting.kind, value) {
        (ValueKind::Text, RegValue::Text(text)) => Ok(nonempty(text).map(toml::Value::String)),
        (ValueKind::Text, _) => wrong("REG_SZ"),
        (ValueKind::Choice(words), RegValue::Text(text)) => match nonempty(text) {
            None => Ok(None),
            Some(text) => {
                let lower = text.to_ascii_lowercase();
                if words.contains(&lower.as_str()) {
                    Ok(Some(toml::Value::String(lower)))
                } else {
                    Err(format!("`{text}` is not one of {}", words.join(", ")))
                }
            }
        },
        (ValueKind::Choice(_), _) => wrong("REG_SZ"),
        (ValueKind::Number { min, max, .. }, RegValue::Number(n)) => {
            if (min..=max).contains(n) {
                Ok(Some(toml::Value::Integer(i64::from(*n))))
            } else {
                Err(format!("{n} is outside {min}..={max}"))
            }
        }
        (ValueKind::Number { .. }, _) => wrong("REG_DWORD"),
        (ValueKind::Flag, RegValue::Number(n @ (0 | 1))) => Ok(Some(toml::Value::Boolean(*n == 1))),
        (ValueKind::Flag, RegValue::Number(n)) => Err(format!("{n} is neither 0 nor 1")),
        (ValueKind::Flag, _) => wrong("REG_DWORD (0 or 1)"),
        (ValueKind::Lines, RegValue::Lines(lines)) => {
            let lines: Vec<toml::Value> = lines
                .iter()
                .filter(|l| !l.is_empty())
                .map(|l| toml::Value::String(l.clone()))
                .collect();
            Ok((!lines.is_empty()).then_some(toml::Value::Array(lines)))
        }
        (ValueKind::Lines, _) => wrong("REG_MULTI_SZ (one argument per line)"),
        (ValueKind::NumberList, RegValue::Text(text)) => match nonempty(text) {
            None => Ok(None),
            Some(text) => text
                .split(',')
                .map(|part| {
                    part.trim()
                        .parse::<i32>()
                        .map(|n| toml::Value::Integer(i64::from(n)))
                        .map_err(|_| {
                            format!(
                                "`{}` is not a whole number (write e.g. `1618,1603`)",
                                part.trim()
                            )
                        })
                })
                .collect::<Result<Vec<_>, _>>()
                .map(|list| Some(toml::Value::Array(list))),
        },
        (ValueKind::NumberList, _) => wrong("REG_SZ (numbers separated by commas)"),
    }
}

fn nonempty(text: &str) -> Option<String> {
    let trimmed = text.trim();
    (!trimmed.is_empty()).then(|| trimmed.to_owned())
}

/// `%NAME%` replaced by the environment variable's value (REG_EXPAND_SZ);
/// an unknown name stays as written, as Windows leaves it.
pub fn expand(text: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find('%') {
        let Some(len) = rest[start + 1..].find('%') else {
            break;
        };
        let name = &rest[start + 1..start + 1 + len];
        out.push_str(&rest[..start]);
        match lookup(name).filter(|_| !name.is_empty()) {
            Some(value) => out.push_str(&value),
            None => out.push_str(&rest[start..start + len + 2]),
        }
        rest = &rest[start + len + 2..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(values: &[(&str, &str, RegValue)]) -> RawKey {
        let mut raw = RawKey::default();
        for (subkey, name, value) in values {
            raw.insert(subkey, name, value.clone());
        }
        raw
    }

    #[test]
    fn values_are_checked_by_type_and_bounds() {
        let good = raw(&[
            ("", "controller", RegValue::Text("https://ctl:7700".into())),
            ("", "HeartbeatSeconds", RegValue::Number(60)),
            ("", "LogLevel", RegValue::Text("Debug".into())),
            (
                r"Components\Client",
                "InstallCommand",
                RegValue::Lines(vec!["msiexec".into(), "/i".into(), "".into()]),
            ),
            (
                r"Components\Client",
                "InstallTransientExitCodes",
                RegValue::Text("1618, 1603".into()),
            ),
            (r"Components\Client", "UpdateCheck", RegValue::Number(0)),
            ("", "HostId", RegValue::Text("  ".into())),
            ("", "Unknown", RegValue::Number(1)),
        ]);
        let layer = read(Origin::Policy, &good).expect("valid");
        let get = |name: &str| {
            layer
                .entries
                .iter()
                .find(|e| e.setting.value == name)
                .map(|e| e.value.to_string())
        };
        assert_eq!(get("Controller").as_deref(), Some("\"https://ctl:7700\""));
        assert_eq!(get("HeartbeatSeconds").as_deref(), Some("60"));
        assert_eq!(get("LogLevel").as_deref(), Some("\"debug\""));
        assert_eq!(
            get("InstallCommand").as_deref(),
            Some("[\"msiexec\", \"/i\"]")
        );
        assert_eq!(
            get("InstallTransientExitCodes").as_deref(),
            Some("[1618, 1603]")
        );
        assert_eq!(get("UpdateCheck").as_deref(), Some("false"));
        assert_eq!(get("HostId"), None, "a blank value is not set");
        assert_eq!(
            layer.ignored,
            vec![r"HKLM\SOFTWARE\Policies\Tierwise\Agent\unknown".to_owned()]
        );
    }

    #[test]
    fn every_bad_value_is_named() {
        let bad = raw(&[
            ("", "HeartbeatSeconds", RegValue::Number(0)),
            ("", "Controller", RegValue::Number(1)),
            ("", "LogLevel", RegValue::Text("loud".into())),
            (r"Components\Web", "WebSocket", RegValue::Number(2)),
            (
                r"Components\Web",
                "WebServer",
                RegValue::Other("REG_BINARY".into()),
            ),
            (
                r"Components\Client",
                "InstallTransientExitCodes",
                RegValue::Text("16x8".into()),
            ),
        ]);
        let errors = read(Origin::InstallKey, &bad).expect_err("invalid");
        let text = errors.join("\n");
        for expected in [
            r"HKLM\SOFTWARE\Tierwise\Agent\HeartbeatSeconds: 0 is outside 1..=3600",
            r"HKLM\SOFTWARE\Tierwise\Agent\Controller: is REG_DWORD; it must be REG_SZ",
            "LogLevel: `loud` is not one of error, warn, info, debug, trace",
            r"Components\Web\WebSocket: 2 is neither 0 nor 1",
            r"Components\Web\WebServer: is REG_BINARY; it must be REG_SZ",
            "`16x8` is not a whole number",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
    }

    #[test]
    fn expand_fills_known_variables_only() {
        let lookup = |name: &str| {
            (name.eq_ignore_ascii_case("ProgramData")).then(|| r"C:\ProgramData".to_owned())
        };
        assert_eq!(
            expand(r"%ProgramData%\Tierwise", lookup),
            r"C:\ProgramData\Tierwise"
        );
        assert_eq!(expand(r"%Nope%\x", lookup), r"%Nope%\x");
        assert_eq!(expand("100%", lookup), "100%");
        assert_eq!(expand("%%", lookup), "%%");
    }
}
