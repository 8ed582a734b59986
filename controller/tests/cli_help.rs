//! The `tierwise` command line's help is worth reading: every option,
//! argument and subcommand says what it is for, the options every command
//! takes stand under their own heading, and commands that never talk to a
//! controller do not offer its connection flags — while every flag keeps
//! working where it always did.

#![allow(clippy::unwrap_used)] // A failed unwrap is a failed test, with its message.

use clap::{CommandFactory, Parser};
use tierwise_controller::cli::args::{Cli, Command, RolloutCommand};

fn help(args: &[&str]) -> String {
    let mut command = Cli::command();
    let mut path = args.iter();
    let mut current = &mut command;
    current.build();
    for name in &mut path {
        current = current.find_subcommand_mut(name).unwrap();
    }
    current.render_long_help().to_string()
}

#[test]
fn every_option_argument_and_subcommand_has_a_description() {
    let command = Cli::command();
    command.clone().debug_assert();
    assert_eq!(
        tierwise_runtime::cli_docs::undocumented(&command),
        Vec::<String>::new()
    );
}

#[test]
fn rollout_start_describes_what_it_needs() {
    let text = help(&["rollout", "start"]);
    for said in [
        "The installation to update",
        "The target release",
        "Cumulative client waves",
        "--ack <NAME>",
        "--watch",
    ] {
        assert!(text.contains(said), "no {said:?} in:\n{text}");
    }
    // The older flags still work, but the help shows one form.
    assert!(!text.contains("--ack-breaking"), "{text}");
}

#[test]
fn global_options_and_the_connection_have_their_own_headings() {
    let text = help(&["rollout", "status"]);
    let connection = text.find("Connection:").unwrap();
    let global = text.find("Global options:").unwrap();
    let options = text.find("Options:").unwrap();
    assert!(options < connection && connection < global, "{text}");
    assert!(text[connection..global].contains("--controller"), "{text}");
    assert!(text[global..].contains("--log-format"), "{text}");
    assert!(
        !text[options..connection].contains("--controller"),
        "{text}"
    );
}

#[test]
fn commands_that_never_talk_to_a_controller_do_not_offer_its_flags() {
    for args in [
        &["keys", "create"][..],
        &["keys", "root"][..],
        &["serve"][..],
        &["demo"][..],
        &["completions"][..],
        &["man"][..],
        &["pki", "init"][..],
    ] {
        let text = help(args);
        for flag in ["--controller", "--token-file", "--ca-cert"] {
            assert!(!text.contains(flag), "{args:?} offers {flag}:\n{text}");
        }
        assert!(text.contains("--log-format"), "{args:?}:\n{text}");
    }
    // `pki show` reads a CA certificate file, as it always could.
    assert!(help(&["pki", "show"]).contains("--ca-cert"));
    assert!(help(&["whoami"]).contains("--token-file"));
}

fn controller_of(args: &[&str]) -> String {
    Cli::try_parse_from(std::iter::once("tierwise").chain(args.iter().copied()))
        .unwrap()
        .connection
        .controller
}

#[test]
fn connection_flags_work_before_and_after_the_command() {
    let url = "https://ctl.example:7700";
    assert_eq!(controller_of(&["--controller", url, "hosts", "list"]), url);
    assert_eq!(controller_of(&["hosts", "list", "--controller", url]), url);
    assert_eq!(controller_of(&["hosts", "--controller", url, "list"]), url);
    assert_eq!(controller_of(&["--controller", url, "whoami"]), url);
    assert_eq!(controller_of(&["whoami", "--controller", url]), url);
    assert_eq!(
        controller_of(&["--controller", url, "rollout", "status", "--watch"]),
        url
    );
    // The one given after the command counts.
    assert_eq!(
        controller_of(&["--controller", "https://a:1", "audit", "--controller", url]),
        url
    );
    let cli = Cli::try_parse_from([
        "tierwise",
        "--token-file",
        "t",
        "--ca-cert",
        "ca.pem",
        "keys",
        "create",
        "k",
    ])
    .unwrap();
    assert_eq!(cli.connection.ca_cert.unwrap().to_str(), Some("ca.pem"));
    let cli = Cli::try_parse_from(["tierwise", "pki", "show", "--ca-cert", "other.pem"]).unwrap();
    assert_eq!(cli.connection.ca_cert.unwrap().to_str(), Some("other.pem"));
    // Not where they never meant anything.
    assert!(Cli::try_parse_from(["tierwise", "keys", "create", "k", "--controller", url]).is_err());
}

#[test]
fn the_older_acknowledgement_flags_are_hidden_aliases() {
    let cli = Cli::try_parse_from([
        "tierwise",
        "rollout",
        "start",
        "--installation",
        "prod",
        "--to",
        "26.3.100.34058",
        "--ack-breaking",
        "--ack-server-manager-password",
        "--ack",
        "changelog",
    ])
    .unwrap();
    let Command::Rollout {
        command:
            RolloutCommand::Start {
                acks,
                ack_breaking,
                ack_server_manager_password,
                ..
            },
        ..
    } = cli.command
    else {
        panic!("not rollout start");
    };
    assert!(ack_breaking && ack_server_manager_password);
    assert_eq!(acks, ["changelog"]);
}
