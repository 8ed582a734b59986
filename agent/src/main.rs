//! `tierwise-agent`: the Tierwise agent, in console mode, as a Windows
//! service (`--service`, started by the Service Control Manager), or one of
//! its helper commands (`--check`, `--enroll`, `service …`,
//! `policy-templates`).

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use tierwise_agent::logs::{self, Sink};
use tierwise_agent::policy::{self, document::Provenance};
use tierwise_agent::service::StopCause;
use tierwise_agent::{app, identity, probe};
use tierwise_common::json::ComponentJson;
use tierwise_runtime::logging::LogFormat;

#[derive(Debug, Parser)]
#[command(
    name = "tierwise-agent",
    version,
    about = "Tierwise agent: reports Password Secure components to the controller"
)]
struct Args {
    /// The agent's configuration file (TOML). Optional on Windows, where
    /// settings may come from policy and the install-time key alone
    /// (default file there: %ProgramData%\Tierwise\Agent\agent.toml, if present).
    #[arg(
        long,
        env = "TIERWISE_AGENT_CONFIG",
        global = true,
        value_name = "FILE",
        help_heading = "Global options"
    )]
    config: Option<PathBuf>,
    /// Validate the configuration, probe once, print the inventory and every
    /// effective setting with its source as JSON, and exit.
    #[arg(long)]
    check: bool,
    /// Enroll now if the agent holds no valid certificate, say the result
    /// and exit (status 1 when the controller refuses).
    #[arg(long, conflicts_with = "check")]
    enroll: bool,
    /// Run under the Windows Service Control Manager (the installed service
    /// starts the agent with this; not for a console).
    #[arg(long, conflicts_with_all = ["check", "enroll"])]
    service: bool,
    /// Log format (stderr in console mode, the log file as a service).
    #[arg(long, env = "TIERWISE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Install, remove, start or stop the Windows service "TierwiseAgent"
    /// (for installs without the MSI; Windows only, as Administrator).
    Service {
        #[command(subcommand)]
        action: ServiceAction,
    },
    /// Write the Group Policy templates (tierwise.admx and
    /// en-US/tierwise.adml) into DIR, e.g. the central store's PolicyDefinitions.
    PolicyTemplates {
        /// The directory to write them into (created if missing).
        dir: PathBuf,
    },
    /// Print the shell completion script (bash, zsh, fish, powershell,
    /// elvish).
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the man pages (tierwise-agent.1 and one per subcommand) into DIR.
    Man {
        /// The directory to write the pages into (created if missing).
        dir: PathBuf,
    },
}

#[derive(Clone, Copy, Debug, Subcommand)]
enum ServiceAction {
    /// Install the service (LocalSystem, automatic start) for this executable.
    Install,
    /// Stop and remove the service.
    Uninstall,
    /// Start the installed service.
    Start,
    /// Stop the service (a running update step finishes first).
    Stop,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match &args.command {
        Some(Command::PolicyTemplates { dir }) => return policy_templates(dir),
        Some(Command::Service { action }) => return service_command(*action, &args),
        Some(Command::Completions { shell }) => {
            let mut command = <Args as clap::CommandFactory>::command();
            let script = tierwise_runtime::cli_docs::completions(&mut command, *shell);
            return match tierwise_runtime::cli_docs::print_out(&script) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("error: cannot print the completions: {error}");
                    ExitCode::FAILURE
                }
            };
        }
        Some(Command::Man { dir }) => {
            let command = <Args as clap::CommandFactory>::command();
            return match tierwise_runtime::cli_docs::man_pages(&command, dir) {
                Ok(written) => {
                    println!(
                        "Wrote {} man page(s) into {}.",
                        written.len(),
                        dir.display()
                    );
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!(
                        "error: cannot write the man pages into {}: {error}",
                        dir.display()
                    );
                    ExitCode::FAILURE
                }
            };
        }
        None => {}
    }
    if args.service {
        return run_service(&args);
    }
    // Console mode: the configuration is read once, before logging starts,
    // so its level applies from the first line; an error is reported by
    // `run_main` like any other.
    let loaded = policy::load(args.config.as_deref());
    let level = loaded
        .as_ref()
        .ok()
        .and_then(|e| e.settings.log_level.clone());
    let log = logs::init(&Sink::Stderr, args.log_format, level.as_deref());
    // An agent has little to do: one thread runs it (blocking work goes to
    // the blocking pool), which keeps its footprint small.
    tierwise_runtime::run_main_current_thread(async move { run_console(args, loaded?, log).await })
}

async fn run_console(
    args: Args,
    effective: policy::Effective,
    log: logs::LogControl,
) -> anyhow::Result<ExitCode> {
    if args.check {
        let inventory = probe::inventory(&effective.settings.components).await?;
        println!(
            "{}",
            check_json(&effective.settings, &inventory, &effective.provenance)?
        );
        return Ok(ExitCode::SUCCESS);
    }
    let settings = &effective.settings;
    if args.enroll {
        tierwise_transport::files::private_dir(&settings.state_dir).with_context(|| {
            format!(
                "cannot create the state directory {}; set `state_dir`",
                settings.state_dir.display()
            )
        })?;
        let credentials = identity::obtain(settings).await?;
        println!(
            "enrolled as {} (installation {}); certificate valid until {}, kept in {}",
            credentials.host_id,
            settings.installation,
            tierwise_runtime::clock::rfc3339(credentials.not_after_ms),
            settings.state_dir.join("identity").display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let options = app::Options {
        config: args.config.clone(),
        log,
        wait_for_enrollment_settings: false,
    };
    let stop = async {
        tierwise_runtime::shutdown::signal().await;
        tracing::info!("stopping");
        StopCause::Signal
    };
    app::run(&options, effective, stop, &mut || {
        tracing::info!("waiting for the running step before stopping")
    })
    .await?;
    Ok(ExitCode::SUCCESS)
}

fn policy_templates(dir: &std::path::Path) -> ExitCode {
    let (admx, adml) = policy::admx::templates();
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(dir.join("en-US"))?;
        std::fs::write(dir.join("tierwise.admx"), admx)?;
        std::fs::write(dir.join("en-US").join("tierwise.adml"), adml)?;
        Ok(())
    };
    match write() {
        Ok(()) => {
            println!(
                "wrote {} and {}",
                dir.join("tierwise.admx").display(),
                dir.join("en-US").join("tierwise.adml").display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "error: cannot write the templates into {}: {e}",
                dir.display()
            );
            ExitCode::FAILURE
        }
    }
}

#[cfg(windows)]
fn service_command(action: ServiceAction, args: &Args) -> ExitCode {
    use tierwise_agent::service::windows::{self as svc, Manage};
    let manage = match action {
        ServiceAction::Install => Manage::Install {
            config: args.config.clone(),
        },
        ServiceAction::Uninstall => Manage::Uninstall,
        ServiceAction::Start => Manage::Start,
        ServiceAction::Stop => Manage::Stop,
    };
    match svc::manage(manage) {
        Ok(said) => {
            println!("{said}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!(
                "error: {}",
                tierwise_runtime::report::error_chain(error.as_ref())
            );
            ExitCode::FAILURE
        }
    }
}

#[cfg(not(windows))]
fn service_command(action: ServiceAction, _args: &Args) -> ExitCode {
    eprintln!(
        "error: `service {}` manages a Windows service; on Linux use the systemd unit deploy/systemd/tierwise-agent.service",
        format!("{action:?}").to_lowercase()
    );
    ExitCode::from(2)
}

#[cfg(windows)]
fn run_service(args: &Args) -> ExitCode {
    tierwise_agent::service::windows::run(args.config.clone(), args.log_format)
}

#[cfg(not(windows))]
fn run_service(_args: &Args) -> ExitCode {
    eprintln!("error: --service runs the agent under the Windows Service Control Manager; on Linux run it in the foreground (systemd: deploy/systemd/tierwise-agent.service)");
    ExitCode::from(2)
}

/// The `--check` output: what the agent would report, in the same shape as
/// `tierwise hosts show --json`, and each effective setting with its source.
fn check_json(
    settings: &tierwise_agent::config::Settings,
    inventory: &tierwise_common::Inventory,
    provenance: &[Provenance],
) -> anyhow::Result<String> {
    let components: Vec<ComponentJson> = inventory
        .components()
        .iter()
        .map(ComponentJson::from)
        .collect();
    Ok(serde_json::to_string_pretty(&serde_json::json!({
        "host_id": settings.host_id,
        "installation": settings.installation,
        "components": components,
        "settings": provenance,
    }))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `tierwise-agent -h` and its man pages describe every option,
    /// argument and subcommand.
    #[test]
    fn every_option_and_argument_has_a_description() {
        let command = <Args as clap::CommandFactory>::command();
        command.clone().debug_assert();
        assert_eq!(
            tierwise_runtime::cli_docs::undocumented(&command),
            Vec::<String>::new()
        );
    }
}
