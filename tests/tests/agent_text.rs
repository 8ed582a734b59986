//! Text from an agent reaches people only after the controller has
//! neutralised its control and format characters: an agent whose version
//! probe reports a right-to-left override and an ESC sequence shows U+FFFD
//! in their place in the stored value, `hosts list`, `hosts show` and their
//! `--json` forms.

#![allow(clippy::unwrap_used)] // A failed unwrap is a failed test, with its message.

use std::time::Duration;
use tierwise_e2e::{wait_for, Agent, Controller, Plays, V931};

const RLO: char = '\u{202E}';
const ESC: char = '\u{1B}';

fn clean(what: &str, text: &str) {
    assert!(
        !text.contains(RLO) && !text.contains(ESC),
        "{what} still carries a raw U+202E or ESC: {text:?}"
    );
}

#[test]
fn control_and_format_characters_from_an_agent_are_shown_as_placeholders() -> anyhow::Result<()> {
    let root = tempfile::tempdir()?;
    let controller = Controller::start(&root.path().join("controller"), "127.0.0.1:0")?;
    let agent = Agent::start(
        root.path(),
        &controller.url(),
        "srv-01",
        Plays::Server(vec![("PSDB-Prod", true, V931)]),
        V931,
    )?;
    controller.wait_online("srv-01", true, Duration::from_secs(20))?;

    // The version file now holds text no version parser accepts; the
    // agent's probe error quotes it back, override and escape included.
    agent.set_version(&format!("9.3.1.{RLO}33994{ESC}[31m"))?;
    let (why, _) = wait_for("the probe error", Duration::from_secs(20), || {
        let host = controller.host("srv-01")?.unwrap();
        let text = host.to_string();
        Ok(text.contains("not a number").then_some(text))
    })?;
    clean("hosts list --json", &why);
    assert!(why.contains('\u{FFFD}'), "no placeholder in {why}");
    // JSON escapes ESC as \u001b: the raw JSON text must not hold that either.
    assert!(!why.to_lowercase().contains("\\u001b"), "{why}");

    let show_json = controller.cli(&["hosts", "show", "srv-01", "--json"])?;
    clean("hosts show --json", &show_json);
    assert!(!show_json.to_lowercase().contains("\\u001b"), "{show_json}");
    assert!(show_json.contains("33994\u{FFFD}[31m"), "{show_json}");

    let show = controller.cli(&["hosts", "show", "srv-01"])?;
    clean("hosts show", &show);
    assert!(show.contains("\u{FFFD}33994\u{FFFD}[31m"), "{show}");

    let list = controller.cli(&["hosts", "list"])?;
    clean("hosts list", &list);
    Ok(())
}
