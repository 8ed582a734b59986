//! The effective configuration document: the TOML file, the install-time key
//! and the policy key merged by precedence into one document of the file's
//! shape, which the one configuration parser then validates. Each line of
//! the rendered document remembers where its value came from, so an error
//! names the registry value or file to fix, and `--check` can show it.

use super::layer::{Layer, Origin};
use super::table::{Setting, Target};
use crate::config::{ComponentSpec, ConfiguredAction};
use std::collections::{BTreeMap, BTreeSet};
use tierwise_common::Role;

/// The source `--check` names for a component the agent discovered.
pub const DISCOVERED: &str = "discovered";

/// Where in the document a unit sits.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Section {
    Top,
    Component(Role),
    Actions(Role),
}

/// What one source supplies whole: a top-level setting, one key of a
/// component (a whole probe), or one action command.
#[derive(Clone, Debug)]
struct Unit {
    keys: Vec<(String, toml::Value)>,
    origin: Origin,
    /// The registry values it was built from (empty for the file).
    values: Vec<&'static Setting>,
}

/// The merged document.
#[derive(Clone, Debug, Default)]
pub struct Document {
    units: BTreeMap<(Section, String), Unit>,
    /// File components without a valid `role`, kept as written so the parser
    /// names the problem.
    unplaced: Vec<toml::Table>,
}

/// A line of the rendered document and where it came from.
#[derive(Clone, Debug)]
pub struct Rendered {
    pub text: String,
    /// Index = line number - 1; `None` for structural lines.
    lines: Vec<Option<(Origin, Vec<&'static Setting>)>>,
}

impl Rendered {
    /// Names the source of line `line` (1-based) for an error message.
    pub fn locate(&self, line: usize) -> String {
        match self.lines.get(line.wrapping_sub(1)).cloned().flatten() {
            None => format!("line {line} of the merged configuration"),
            Some((origin, values)) => match origin.root() {
                Some(root) if !values.is_empty() => {
                    let names: Vec<String> = values.iter().map(|s| s.path(root)).collect();
                    format!("{origin} {}", names.join(", "))
                }
                _ => origin.to_string(),
            },
        }
    }
}

/// One effective setting, for `--check`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Provenance {
    /// `controller`, `component.client.version`, `component.client.actions.install`.
    pub key: String,
    /// The value as TOML (a token shows as `<hidden>`).
    pub value: String,
    /// `policy`, `install-time key`, `file PATH`, `discovered` or `default`.
    pub source: String,
    /// The registry values it came from, if any.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub registry: Vec<String>,
}

impl Document {
    /// The file's settings, split into units. `text` is valid TOML.
    pub fn from_file(table: toml::Table, path: &str) -> Self {
        let origin = Origin::File(path.to_owned());
        let mut doc = Document::default();
        for (key, value) in table {
            if key == "component" {
                let list = match value {
                    toml::Value::Array(list) => list,
                    other => vec![other],
                };
                for item in list {
                    let toml::Value::Table(component) = item else {
                        continue;
                    };
                    doc.add_file_component(component, &origin);
                }
                continue;
            }
            let unit = top_unit(&key).to_owned();
            doc.units
                .entry((Section::Top, unit))
                .or_insert_with(|| Unit {
                    keys: Vec::new(),
                    origin: origin.clone(),
                    values: Vec::new(),
                })
                .keys
                .push((key, value));
        }
        doc
    }

    fn add_file_component(&mut self, mut component: toml::Table, origin: &Origin) {
        let role = component
            .get("role")
            .and_then(toml::Value::as_str)
            .and_then(|r| r.parse::<Role>().ok());
        let Some(role) = role else {
            self.unplaced.push(component);
            return;
        };
        if self
            .units
            .keys()
            .any(|(s, _)| *s == Section::Component(role))
        {
            // Twice the same role: the parser says so.
            self.unplaced.push(component);
            return;
        }
        component.remove("role");
        let mark = (Section::Component(role), String::from("role"));
        self.units.insert(
            mark,
            Unit {
                keys: Vec::new(),
                origin: origin.clone(),
                values: Vec::new(),
            },
        );
        for (key, value) in component {
            if key == "actions" {
                if let toml::Value::Table(actions) = value {
                    for (action, command) in actions {
                        self.units.insert(
                            (Section::Actions(role), action.clone()),
                            Unit {
                                keys: vec![(action, command)],
                                origin: origin.clone(),
                                values: Vec::new(),
                            },
                        );
                    }
                    continue;
                }
            }
            self.units.insert(
                (Section::Component(role), key.clone()),
                Unit {
                    keys: vec![(key, value)],
                    origin: origin.clone(),
                    values: Vec::new(),
                },
            );
        }
    }

    /// Lays a registry source over the document: each unit it supplies
    /// replaces the same unit from lower sources whole.
    pub fn overlay(&mut self, layer: &Layer) -> Result<(), Vec<String>> {
        let root = layer.origin.root().unwrap_or("");
        let mut units: BTreeMap<(Section, String), Unit> = BTreeMap::new();
        let mut errors = Vec::new();
        for entry in &layer.entries {
            let setting = entry.setting;
            let (section, unit) = match (setting.role, setting.target) {
                (None, target) => (Section::Top, target.unit_name()),
                (Some(role), Target::Action(action, _)) => {
                    (Section::Actions(role), action.to_owned())
                }
                (Some(role), target) => (Section::Component(role), target.unit_name()),
            };
            if let Some(role) = setting.role {
                // A component set only by policy exists because of it.
                units
                    .entry((Section::Component(role), "role".into()))
                    .or_insert_with(|| Unit {
                        keys: Vec::new(),
                        origin: layer.origin.clone(),
                        values: Vec::new(),
                    });
            }
            let slot = units
                .entry((section, unit.clone()))
                .or_insert_with(|| Unit {
                    keys: Vec::new(),
                    origin: layer.origin.clone(),
                    values: Vec::new(),
                });
            slot.values.push(setting);
            match setting.target {
                Target::Top(key) | Target::Component(key) => {
                    slot.keys.push((key.to_owned(), entry.value.clone()))
                }
                Target::Probe(table, "") => {
                    if !slot.keys.is_empty() {
                        errors.push(conflict(slot, root));
                    }
                    slot.keys = vec![(table.to_owned(), entry.value.clone())];
                }
                Target::Probe(table, key) | Target::Action(table, key) => {
                    if slot.keys.is_empty() {
                        slot.keys
                            .push((table.to_owned(), toml::Value::Table(toml::Table::new())));
                    }
                    match slot.keys.first_mut() {
                        Some((_, toml::Value::Table(inner))) => {
                            inner.insert(key.to_owned(), entry.value.clone());
                        }
                        _ => errors.push(conflict(slot, root)),
                    }
                }
            }
        }
        if !errors.is_empty() {
            errors.sort();
            errors.dedup();
            return Err(errors);
        }
        for (key, unit) in units {
            if key.1 == "role" && self.units.contains_key(&key) {
                continue;
            }
            self.units.insert(key, unit);
        }
        Ok(())
    }

    /// The document as TOML text with each line's source.
    pub fn render(&self) -> Rendered {
        let mut text = String::new();
        let mut lines = Vec::new();
        let mut push = |line: String, source: Option<&Unit>| {
            text.push_str(&line);
            text.push('\n');
            lines.push(source.map(|u| (u.origin.clone(), u.values.clone())));
        };
        for ((section, _), unit) in &self.units {
            if *section == Section::Top {
                for (key, value) in &unit.keys {
                    push(
                        format!("{} = {}", render_key(key), render_value(value)),
                        Some(unit),
                    );
                }
            }
        }
        for role in Role::ALL {
            let mine: Vec<&Unit> = self
                .units
                .iter()
                .filter(|((s, _), _)| *s == Section::Component(role))
                .map(|(_, u)| u)
                .collect();
            if mine.is_empty() {
                continue;
            }
            push("[[component]]".into(), None);
            push(
                format!("role = \"{}\"", role.as_str()),
                mine.first().copied(),
            );
            for unit in mine {
                for (key, value) in &unit.keys {
                    push(
                        format!("{} = {}", render_key(key), render_value(value)),
                        Some(unit),
                    );
                }
            }
            let actions: Vec<&Unit> = self
                .units
                .iter()
                .filter(|((s, _), _)| *s == Section::Actions(role))
                .map(|(_, u)| u)
                .collect();
            if !actions.is_empty() {
                push("[component.actions]".into(), None);
                for unit in actions {
                    for (key, value) in &unit.keys {
                        push(
                            format!("{} = {}", render_key(key), render_value(value)),
                            Some(unit),
                        );
                    }
                }
            }
        }
        for component in &self.unplaced {
            push("[[component]]".into(), None);
            for (key, value) in component {
                push(
                    format!("{} = {}", render_key(key), render_value(value)),
                    None,
                );
            }
        }
        Rendered { text, lines }
    }

    /// Every setting with its value and source, the token hidden; settings
    /// no source gives are listed with the value `settings` took by default.
    pub fn provenance(&self, settings: &crate::config::Settings) -> Vec<Provenance> {
        let mut out = Vec::new();
        for ((section, _), unit) in &self.units {
            for (key, value) in &unit.keys {
                let key = match section {
                    Section::Top => key.clone(),
                    Section::Component(role) => format!("component.{role}.{key}"),
                    Section::Actions(role) => format!("component.{role}.actions.{key}"),
                };
                let value = if key.starts_with("enrollment_token") && !key.ends_with("_file") {
                    "<hidden>".to_owned()
                } else if let toml::Value::String(text) = value {
                    text.clone()
                } else {
                    render_value(value)
                };
                let registry = match unit.origin.root() {
                    Some(root) => unit.values.iter().map(|s| s.path(root)).collect(),
                    None => Vec::new(),
                };
                out.push(Provenance {
                    key,
                    value,
                    source: unit.origin.to_string(),
                    registry,
                });
            }
        }
        let defaults = [
            ("host_id", settings.host_id.clone()),
            (
                "heartbeat_seconds",
                settings.heartbeat.as_secs().to_string(),
            ),
            (
                "probe_seconds",
                settings.probe_interval.as_secs().to_string(),
            ),
            (
                "reconnect_max_seconds",
                settings.reconnect_max.as_secs().to_string(),
            ),
            ("state_dir", settings.state_dir.display().to_string()),
            (
                "log_level",
                settings.log_level.clone().unwrap_or_else(|| "info".into()),
            ),
        ];
        for (key, value) in defaults {
            if !out.iter().any(|p| p.key == key) {
                out.push(Provenance {
                    key: key.to_owned(),
                    value,
                    source: Origin::Default.to_string(),
                    registry: Vec::new(),
                });
            }
        }
        out
    }

    /// Whether any component is configured (otherwise the agent discovers).
    pub fn has_components(&self) -> bool {
        self.units
            .keys()
            .any(|(s, _)| matches!(s, Section::Component(_)))
            || !self.unplaced.is_empty()
    }
}

/// `--check`'s lines for discovered components: each version with the
/// Uninstall entries that showed it (`Uninstall entry "Netwrix Password
/// Secure"`), each action as the file would write it.
pub fn discovered_provenance(
    found: &BTreeMap<Role, BTreeSet<String>>,
    components: &[ComponentSpec],
) -> Vec<Provenance> {
    let mut out = Vec::new();
    for component in components {
        let role = component.role;
        let names: Vec<String> = found
            .get(&role)
            .into_iter()
            .flatten()
            .map(|name| format!("{name:?}"))
            .collect();
        out.push(Provenance {
            key: format!("component.{role}.version"),
            value: format!(
                "Uninstall {} {}",
                if names.len() == 1 { "entry" } else { "entries" },
                names.join(", ")
            ),
            source: DISCOVERED.into(),
            registry: Vec::new(),
        });
        for (action, configured) in &component.actions {
            let table = action_table(configured);
            out.push(Provenance {
                key: format!("component.{role}.actions.{action}"),
                value: render_value(&toml::Value::Table(table)),
                source: DISCOVERED.into(),
                registry: Vec::new(),
            });
        }
    }
    out
}

/// An action as the file would write it, every key shown.
fn action_table(action: &ConfiguredAction) -> toml::Table {
    let strings = |list: &[String]| {
        toml::Value::Array(list.iter().cloned().map(toml::Value::String).collect())
    };
    let numbers = |list: &[i32]| {
        toml::Value::Array(
            list.iter()
                .map(|code| toml::Value::Integer(i64::from(*code)))
                .collect(),
        )
    };
    let mut table = toml::Table::new();
    match action {
        ConfiguredAction::Command(command) => {
            table.insert("command".into(), strings(&command.argv));
            table.insert(
                "transient_exit_codes".into(),
                numbers(&command.transient_exit_codes),
            );
            table.insert(
                "restart_exit_codes".into(),
                numbers(&command.restart_exit_codes),
            );
        }
        ConfiguredAction::WindowsServices(services) => {
            table.insert("windows_services".into(), strings(&services.services));
        }
    }
    table.insert(
        "timeout_seconds".into(),
        toml::Value::Integer(i64::try_from(action.timeout().as_secs()).unwrap_or(i64::MAX)),
    );
    table
}

fn conflict(unit: &Unit, root: &str) -> String {
    let names: Vec<String> = unit.values.iter().map(|s| s.path(root)).collect();
    format!(
        "{}: set either the fixed answer or a probe, not both",
        names.join(" and ")
    )
}

impl Target {
    /// The name of the unit this target belongs to: a probe or an action
    /// comes from one source whole, never half from the file and half from
    /// policy (which would mix, say, a file probe with a registry probe).
    fn unit_name(&self) -> String {
        match *self {
            Target::Top(key) => top_unit(key).to_owned(),
            Target::Component(key) | Target::Probe(key, _) | Target::Action(key, _) => {
                key.to_owned()
            }
        }
    }
}

/// The unit of a top-level key: the token and the token file are one (a
/// source that gives either replaces both), every other key its own.
fn top_unit(key: &str) -> &str {
    match key {
        "enrollment_token" | "enrollment_token_file" => "enrollment_token",
        other => other,
    }
}

fn render_key(key: &str) -> String {
    if !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        key.to_owned()
    } else {
        toml::Value::String(key.to_owned()).to_string()
    }
}

/// One line of TOML for any value: tables inline.
fn render_value(value: &toml::Value) -> String {
    match value {
        toml::Value::Table(table) => {
            let parts: Vec<String> = table
                .iter()
                .map(|(k, v)| format!("{} = {}", render_key(k), render_value(v)))
                .collect();
            if parts.is_empty() {
                "{}".into()
            } else {
                format!("{{ {} }}", parts.join(", "))
            }
        }
        toml::Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(render_value).collect();
            format!("[{}]", parts.join(", "))
        }
        other => other.to_string(),
    }
}
