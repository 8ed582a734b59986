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
    tierwise_runtime::run_main(None, tierwise_controller::cli::run::run(cli))
}
