//! `tierwise`: the controller (`serve`), the operator CLI and the demo.

use clap::Parser;
use std::process::ExitCode;
use tierwise_controller::cli::args::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_log = match cli.command {
        Command::Serve { .. } => "info",
        _ => "warn",
    };
    tierwise_runtime::logging::init(cli.log_format, default_log);
    // With --json a failure is also a JSON object on stdout, where the
    // document would have been; stderr says it as always.
    let json = std::env::args_os().any(|a| a == "--json");
    tierwise_runtime::run_main(None, async move {
        let outcome = tierwise_controller::cli::run::run(cli).await;
        if let (Err(error), true) = (&outcome, json) {
            println!("{}", tierwise_controller::cli::error_json(error));
        }
        outcome
    })
}
