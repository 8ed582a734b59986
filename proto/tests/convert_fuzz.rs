//! Fuzz-style property tests of what arrives from a peer: the wire → domain
//! conversions in `tierwise_proto::convert`, and the parsers the controller
//! runs on admin requests.
//!
//! A message from an agent, the controller or an admin client is untrusted:
//! whatever it holds, converting it must give a domain value or a clean error,
//! never a panic that takes a session or the controller down. Messages are
//! built field by field (arbitrary strings in version fields, arbitrary enum
//! numbers, nested lists), decoded from arbitrary bytes and from protobuf
//! made of random text and number fields, and decoded from valid encodings
//! with one byte changed, added or lost. What converts must convert back to
//! the same value.
//!
//! Each test prints how many cases it ran. PROPTEST_CASES sets the count.

#![allow(clippy::unwrap_used)] // A failed unwrap is a failed test, with its message.

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::TestCaseError;
use prost::Message;
use std::fmt::Display;
use tierwise_common::rollout::ErrorThreshold;
use tierwise_common::{
    validate_name, Catalogue, ClientWaves, Date, HostRecord, Inventory, Version,
};
use tierwise_proto::convert::{
    backups_from_wire, command_from_wire, command_to_wire, step_outcome_from_wire,
};
use tierwise_proto::v1::{self, agent_message::Body, command::Action, component::Facts};
use tierwise_testkit::{fuzz, Checked};
use v1::controller_message::Body as ControllerBody;

/// A real catalogue, so that some import requests get past the TOML reader.
const SHIPPED_CATALOGUE: &str = include_str!("../../deploy/catalogue/password-secure.toml");

/// `Some(value)` when accepted, `None` for a refusal that explains itself; a
/// refusal with an empty message fails the property.
fn clean<T, E: Display>(result: Result<T, E>) -> Result<Option<T>, TestCaseError> {
    match result {
        Err(e) if e.to_string().trim().is_empty() => Err(TestCaseError::fail("empty error")),
        other => Ok(other.ok()),
    }
}

// --- Strategies for wire messages. ------------------------------------------

/// A version field: valid, digits and dots, anything, or empty.
fn version_text() -> impl Strategy<Value = String> {
    let valid = any::<[u32; 4]>().prop_map(|[a, b, c, d]| format!("{a}.{b}.{c}.{d}"));
    prop_oneof![valid, "[0-9.]{0,20}", any::<String>(), Just(String::new())]
}

/// An enum field: mostly the known values and their neighbours, sometimes any number.
fn enum_value() -> impl Strategy<Value = i32> {
    prop_oneof![4 => -1..7i32, 1 => any::<i32>()]
}

/// A name-like field: mostly valid names, sometimes anything.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![3 => "[a-z0-9._-]{0,12}", 1 => any::<String>()]
}

fn component() -> impl Strategy<Value = v1::Component> {
    let database = (name(), any::<bool>(), version_text()).prop_map(|(n, a, p)| v1::Database {
        name: n,
        active: a,
        patch_level: p,
    });
    let databases = prop::collection::vec(database, 0..4);
    let facts = prop::option::of(prop_oneof![
        (
            databases,
            any::<String>(),
            any::<String>(),
            prop::collection::vec(any::<String>(), 0..20),
            any::<bool>()
        )
            .prop_map(|(d, e, b, c, r)| {
                Facts::Server(v1::ServerFacts {
                    databases: d,
                    databases_error: e,
                    backup_location: b,
                    commands: c,
                    commands_reported: r,
                    ..Default::default()
                })
            }),
        (enum_value(), enum_value()).prop_map(|(k, w)| Facts::Web(v1::WebFacts {
            server_kind: k,
            websocket: w,
            ..Default::default()
        })),
        enum_value().prop_map(|u| Facts::Client(v1::ClientFacts {
            update_check_enabled: u,
            ..Default::default()
        })),
    ]);
    let parts = (enum_value(), version_text(), any::<String>(), facts);
    parts.prop_map(|(r, v, e, f)| v1::Component {
        role: r,
        version: v,
        probe_error: e,
        facts: f,
    })
}

fn inventory() -> impl Strategy<Value = v1::Inventory> {
    let components = prop::collection::vec(component(), 0..5);
    components.prop_map(|components| v1::Inventory {
        components,
        volumes: Vec::new(),
    })
}

fn command() -> impl Strategy<Value = v1::Command> {
    let role = || enum_value().prop_map(|role| v1::RoleAction { role });
    let sha = || prop_oneof![Just(String::new()), "[0-9a-f]{64}", any::<String>()];
    let version = |version| v1::VersionAction { version };
    let action = prop_oneof![
        Just(Action::Backup(v1::Empty {})),
        Just(Action::Reprobe(v1::Empty {})),
        role().prop_map(Action::StopServices),
        role().prop_map(Action::StartServices),
        version_text().prop_map(move |v| Action::ReactivateDatabases(version(v))),
        (enum_value(), version_text(), sha()).prop_map(|(r, v, s)| {
            Action::InstallComponent(v1::InstallComponent {
                role: r,
                version: v,
                artifact_sha256: s,
            })
        }),
        (version_text(), sha()).prop_map(|(v, s)| {
            Action::DeployWebApp(v1::DeployWebApp {
                version: v,
                artifact_sha256: s,
            })
        }),
    ];
    let parts = (any::<String>(), prop::option::of(action));
    parts.prop_map(|(step_id, action)| v1::Command {
        step_id,
        action,
        dispatched_ms: 0,
    })
}

fn agent_message() -> impl Strategy<Value = v1::AgentMessage> {
    let hello = (name(), name(), prop::option::of(inventory())).prop_map(|(h, i, inv)| {
        Body::Hello(v1::Hello {
            host_id: h,
            installation: i,
            inventory: inv,
            ..Default::default()
        })
    });
    let backup_file = (any::<String>(), any::<u64>(), any::<i64>(), any::<String>()).prop_map(
        |(path, size, modified_ms, database)| v1::BackupFile {
            path,
            size,
            modified_ms,
            database,
        },
    );
    let result = (
        enum_value(),
        prop::option::of(backup_file.clone()),
        prop::collection::vec(backup_file, 0..4),
    )
        .prop_map(|(outcome, backup, backups)| {
            Body::StepResult(v1::StepResult {
                outcome,
                backup,
                backups,
                ..Default::default()
            })
        });
    let body = prop_oneof![hello, result, inventory().prop_map(Body::Inventory)];
    prop::option::of(body).prop_map(|body| v1::AgentMessage { body })
}

/// Protobuf made of fields 1 to 8, each text (grammar-biased, or a whole
/// catalogue) or a number: it decodes into many of the admin requests, whose
/// fields are mostly text, so the controller's parsers see it.
fn text_and_number_fields() -> impl Strategy<Value = Vec<u8>> {
    let text = prop_oneof![
        version_text(),
        "[0-9%, ]{0,16}",
        "[0-9]{4}-[0-9]{2}-[0-9]{2}",
        Just(SHIPPED_CATALOGUE.to_owned()),
    ];
    let field = (1u64..=8, prop::option::of(text), enum_value());
    prop::collection::vec(field, 0..8).prop_map(|fields| {
        let mut out = Vec::new();
        for (tag, text, number) in fields {
            match text {
                Some(text) => {
                    varint(tag << 3 | 2, &mut out);
                    varint(text.len() as u64, &mut out);
                    out.extend_from_slice(text.as_bytes());
                }
                None => {
                    varint(tag << 3, &mut out);
                    varint(i64::from(number) as u64, &mut out);
                }
            }
        }
        out
    })
}

/// Protobuf's base-128 variable-length integer.
fn varint(mut n: u64, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push(n as u8 | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

// --- Checks: convert, and convert back what converted. --------------------------

fn check_inventory(wire: &v1::Inventory) -> Checked {
    let Some(inventory) = clean(Inventory::try_from(wire))? else {
        return Ok(false);
    };
    let back = Inventory::try_from(&v1::Inventory::from(&inventory));
    prop_assert_eq!(back, Ok(inventory));
    Ok(true)
}

fn check_command(wire: &v1::Command) -> Checked {
    let Some((step_id, action)) = clean(command_from_wire(wire))? else {
        return Ok(false);
    };
    let back = command_from_wire(&command_to_wire(&step_id, &action));
    prop_assert_eq!(back, Ok((step_id, action)));
    Ok(true)
}

/// What the controller does with an agent's message before trusting it.
fn check_agent_message(message: &v1::AgentMessage) -> Checked {
    match &message.body {
        Some(Body::Hello(hello)) => {
            let host = clean(validate_name("host id", &hello.host_id))?.is_some();
            let installation = clean(validate_name("installation", &hello.installation))?;
            let inventory = hello.inventory.as_ref().map_or(Ok(true), check_inventory)?;
            Ok(host && installation.is_some() && inventory)
        }
        Some(Body::Inventory(inventory)) => check_inventory(inventory),
        Some(Body::StepResult(result)) => {
            let outcome = step_outcome_from_wire(result.outcome);
            let back = outcome.map(|o| i32::from(v1::StepOutcome::from(o)));
            prop_assert!(back.is_none_or(|b| b == result.outcome));
            // Every file reported is read, whichever field carries it.
            let files = backups_from_wire(result);
            let sent = if result.backups.is_empty() {
                usize::from(result.backup.is_some())
            } else {
                result.backups.len()
            };
            prop_assert_eq!(files.len(), sent);
            prop_assert!(files.iter().all(|f| f.database.as_deref() != Some("")));
            Ok(outcome.is_some())
        }
        // Heartbeats and progress lines carry nothing to convert.
        _ => Ok(true),
    }
}

/// A target version and client waves, as `plan` and `start` read them.
fn check_plan(target: &str, waves: &str) -> Checked {
    let target = clean(Version::parse(target))?.is_some();
    Ok(target & (waves.trim().is_empty() || clean(ClientWaves::parse(waves))?.is_some()))
}

/// Decodes `bytes` as each message a peer may send and runs the conversions
/// (for admin requests: the field parsing of `controller/src/grpc/admin.rs`)
/// on whatever decodes. Accepted when at least one reading converts.
fn check_bytes(bytes: &[u8]) -> Checked {
    use v1::RolloutChange as Change;
    let mut accepted = false;
    if let Ok(message) = v1::AgentMessage::decode(bytes) {
        accepted |= check_agent_message(&message)?;
    }
    if let Ok(Some(ControllerBody::Command(c))) =
        v1::ControllerMessage::decode(bytes).map(|m| m.body)
    {
        accepted |= check_command(&c)?;
    }
    if let Ok(view) = v1::HostView::decode(bytes) {
        if let Some(host) = clean(HostRecord::try_from(&view))? {
            prop_assert_eq!(HostRecord::try_from(&v1::HostView::from(&host)), Ok(host));
            accepted = true;
        }
    }
    if let Ok(r) = v1::StartRolloutRequest::decode(bytes) {
        let threshold = r.error_threshold.trim().is_empty()
            || clean(ErrorThreshold::parse(&r.error_threshold))?.is_some();
        accepted |= check_plan(&r.target, &r.client_waves)? && threshold;
    }
    if let Ok(r) = v1::PlanRolloutRequest::decode(bytes) {
        accepted |= check_plan(&r.target, &r.client_waves)?;
    }
    if let Ok(r) = v1::ChangeRolloutRequest::decode(bytes) {
        if Change::try_from(r.change) == Ok(Change::SkipHost) {
            accepted |= clean(validate_name("host id", &r.host_id))?.is_some();
        }
    }
    if let Ok(r) = v1::ImportCatalogueRequest::decode(bytes) {
        accepted |= clean(Catalogue::parse(&r.document, &r.source))?.is_some();
    }
    if let Ok(r) = v1::SetLicenceRequest::decode(bytes) {
        accepted |= clean(Date::parse(&r.maintenance_until))?.is_some();
    }
    // Enrollment: the names are checked here; the token and the certificate
    // request are the controller's own parsers, outside this crate.
    if let Ok(r) = v1::EnrollRequest::decode(bytes) {
        let host = clean(validate_name("host id", &r.host_id))?.is_some();
        accepted |= host && clean(validate_name("installation", &r.installation))?.is_some();
    }
    Ok(accepted)
}

#[test]
fn built_messages_convert_or_refuse() {
    fuzz("AgentMessage (built)", agent_message(), |message| {
        let encoded = message.encode_to_vec();
        prop_assert_eq!(v1::AgentMessage::decode(&*encoded), Ok(message.clone()));
        check_agent_message(&message)
    });
    fuzz("Command (built)", command(), |c| check_command(&c));
}

#[test]
fn arbitrary_bytes_decode_or_refuse() {
    let check = |bytes: Vec<u8>| check_bytes(&bytes);
    let bytes = prop::collection::vec(any::<u8>(), 0..256);
    fuzz("decode (arbitrary bytes)", bytes, check);
    fuzz(
        "decode (text and number fields)",
        text_and_number_fields(),
        check,
    );
}

/// A valid encoding with one byte changed, added or lost: decodes far more
/// often than random bytes, so the conversions see near-valid messages.
#[test]
fn edited_encodings_decode_or_refuse() {
    let command = command().prop_map(|c| Some(ControllerBody::Command(c)));
    let encoded = prop_oneof![
        agent_message().prop_map(|m| m.encode_to_vec()),
        command.prop_map(|body| v1::ControllerMessage { body }.encode_to_vec()),
        text_and_number_fields(),
    ];
    let input = (encoded, (0..3u8, any::<Index>(), any::<u8>()));
    fuzz("decode (edited encodings)", input, |(mut bytes, edit)| {
        match edit {
            (0, at, byte) if !bytes.is_empty() => {
                let i = at.index(bytes.len());
                bytes[i] = byte;
            }
            (1, at, _) if !bytes.is_empty() => drop(bytes.remove(at.index(bytes.len()))),
            (_, at, byte) => bytes.insert(at.index(bytes.len() + 1), byte),
        }
        check_bytes(&bytes)
    });
}
