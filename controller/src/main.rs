//! `tierwise`: the controller (`serve`), the operator CLI and the demo.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use tierwise_common::Role;
use tierwise_controller::{cli, demo, server};
use tierwise_proto::v1::RolloutChange;
use tierwise_runtime::logging::LogFormat;
use tierwise_runtime::shutdown;

#[derive(Debug, Parser)]
#[command(
    name = "tierwise",
    version,
    about = "Tier-ordered Netwrix Password Secure rollouts: controller and operator CLI"
)]
struct Cli {
    /// The controller the CLI talks to.
    #[arg(
        long,
        global = true,
        env = "TIERWISE_CONTROLLER",
        default_value = "http://127.0.0.1:7700"
    )]
    controller: String,
    /// Log format on stderr.
    #[arg(long, global = true, env = "TIERWISE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the controller: agents connect here, operators' commands land here.
    Serve {
        /// Address to listen on for agents and operators [default: 0.0.0.0:7700].
        #[arg(long, env = "TIERWISE_LISTEN")]
        listen: Option<SocketAddr>,
        /// Directory for the embedded database and, later, artifacts and keys.
        /// [default: /var/lib/tierwise as root, else ~/.local/share/tierwise]
        #[arg(long, env = "TIERWISE_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// sqlite://PATH or postgres://USER@HOST:PORT/DB [default: sqlite in the data directory].
        #[arg(long, env = "TIERWISE_DATABASE_URL", hide_env_values = true)]
        database_url: Option<String>,
    },
    /// Hosts and what their agents report.
    Hosts {
        #[command(subcommand)]
        command: HostsCommand,
    },
    /// The release catalogue: what Tierwise knows about each release.
    Releases {
        #[command(subcommand)]
        command: ReleasesCommand,
    },
    /// Maintenance end dates, per installation.
    License {
        #[command(subcommand)]
        command: LicenseCommand,
    },
    /// Rollouts of one installation to one release.
    Rollout {
        #[command(subcommand)]
        command: RolloutCommand,
    },
    /// Installers in the controller's content-addressed store.
    Artifacts {
        #[command(subcommand)]
        command: ArtifactsCommand,
    },
    /// Every operator action, oldest first.
    Audit {
        #[arg(long)]
        json: bool,
    },
    /// Start a controller and a small simulated Password Secure installation
    /// of real agent processes, and show what the controller sees.
    Demo {
        /// Address of the demo's controller.
        #[arg(long, default_value = "127.0.0.1:7700")]
        listen: SocketAddr,
        /// The tierwise-agent binary [default: next to this one].
        #[arg(long)]
        agent_bin: Option<PathBuf>,
        /// Keep the fleet running after the tour, until Ctrl-C.
        #[arg(long)]
        keep_running: bool,
    },
}

#[derive(Debug, Subcommand)]
enum HostsCommand {
    /// List hosts, their status and component versions.
    List {
        /// Only hosts of this installation.
        #[arg(long)]
        installation: Option<String>,
        /// Only hosts with a component of this role (server, app_server, web, client).
        #[arg(long, value_parser = parse_role)]
        role: Option<Role>,
        /// Machine-readable output (field names documented in the README).
        #[arg(long)]
        json: bool,
    },
    /// Everything known about one host.
    Show {
        host: String,
        #[arg(long)]
        json: bool,
    },
    /// Ask connected agents to probe and report right now.
    Refresh {
        /// One host; without it, every connected host (of --installation).
        host: Option<String>,
        #[arg(long)]
        installation: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum ArtifactsCommand {
    /// Store an installer for a release and component; checked against the
    /// catalogue's SHA-256 when it names one.
    Add {
        file: PathBuf,
        #[arg(long)]
        release: String,
        /// server, app_server, web or client.
        #[arg(long, value_parser = parse_role)]
        component: Role,
    },
}

#[derive(Debug, Subcommand)]
enum ReleasesCommand {
    /// Replace the catalogue with a TOML file, all or nothing.
    Import { file: PathBuf },
    /// The releases the controller knows.
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum LicenseCommand {
    /// Record when an installation's software maintenance ends.
    Set {
        #[arg(long)]
        installation: String,
        /// YYYY-MM-DD: releases published after it are refused.
        #[arg(long)]
        maintenance_until: String,
    },
    /// The recorded maintenance end dates.
    Show {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum RolloutCommand {
    /// What a rollout would do and what stops it; changes nothing.
    /// Exit status 3 when the plan is blocked.
    Plan {
        #[arg(long)]
        installation: String,
        /// The target release, e.g. 26.3.100.34058.
        #[arg(long)]
        to: String,
        /// Cumulative client waves [default: 1%,10%,50%,100%, first wave at most 100 hosts].
        #[arg(long)]
        client_waves: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Start a rollout from the plan; refused while anything blocks or an
    /// acknowledgement is missing.
    Start {
        #[arg(long)]
        installation: String,
        #[arg(long)]
        to: String,
        /// Acknowledge the breaking changes the plan lists.
        #[arg(long)]
        ack_breaking: bool,
        /// Confirm the Server Manager's database password is noted down.
        #[arg(long)]
        ack_server_manager_password: bool,
        /// Acknowledge a vendor note by its id (repeatable), e.g. pkcs11.
        #[arg(long = "ack", value_name = "NOTE-ID")]
        acks: Vec<String>,
        #[arg(long)]
        client_waves: Option<String>,
        /// Failures a client wave tolerates: a share (5%) or a number of hosts.
        #[arg(long)]
        error_threshold: Option<String>,
        /// Wait for `rollout approve` before each phase after the first.
        #[arg(long)]
        approve_phases: bool,
    },
    /// All rollouts.
    List {
        #[arg(long)]
        json: bool,
    },
    /// One rollout's progress [default: the newest].
    Status {
        id: Option<String>,
        #[arg(long)]
        json: bool,
        /// Follow it live until it ends.
        #[arg(long)]
        watch: bool,
    },
    /// Stop dispatching new steps (running ones finish).
    Pause { id: String },
    /// Continue a paused rollout, or a halted one after a fix (its failed
    /// steps of the current phase run again).
    Resume { id: String },
    /// End a rollout for good; nothing more is sent.
    Abort { id: String },
    /// Let a rollout waiting for approval start its next phase.
    Approve { id: String },
    /// Let a rollout finish without a host (e.g. one that stays offline):
    /// its unfinished steps are skipped.
    Skip {
        id: String,
        #[arg(long)]
        host: String,
    },
}

/// Exit status of `rollout plan` when the plan is blocked.
const EXIT_BLOCKED: u8 = 3;

fn parse_role(text: &str) -> Result<Role, String> {
    text.parse()
        .map_err(|e: tierwise_common::RoleParseError| e.to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_log = match cli.command {
        Command::Serve { .. } => "info",
        _ => "warn",
    };
    tierwise_runtime::logging::init(cli.log_format, default_log);
    tierwise_runtime::run_main(None, run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve {
            listen,
            data_dir,
            database_url,
        } => {
            let settings =
                server::ServeSettings::resolve(listen, data_dir, database_url.as_deref())?;
            let mut running = server::start(&settings).await?;
            // One line on stdout for scripts and supervisors (logs go to stderr).
            println!("tierwise controller listening on {}", running.addr);
            tokio::select! {
                result = running.wait() => result.context("the controller stopped")?,
                _ = shutdown::signal() => {
                    tracing::info!("shutting down");
                    running.shutdown().await?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Hosts { command } => {
            let mut client = cli::connect(&cli.controller).await?;
            let output = match command {
                HostsCommand::List {
                    installation,
                    role,
                    json,
                } => cli::hosts::list(&mut client, installation.as_deref(), role, json).await?,
                HostsCommand::Show { host, json } => {
                    cli::hosts::show(&mut client, &host, json).await?
                }
                HostsCommand::Refresh { host, installation } => {
                    cli::hosts::refresh(&mut client, host.as_deref(), installation.as_deref())
                        .await?
                }
            };
            print!("{output}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Releases { command } => {
            let mut client = cli::connect(&cli.controller).await?;
            let output = match command {
                ReleasesCommand::Import { file } => cli::policy::import(&mut client, &file).await?,
                ReleasesCommand::List { json } => cli::policy::list(&mut client, json).await?,
            };
            print!("{output}");
            Ok(ExitCode::SUCCESS)
        }
        Command::License { command } => {
            let mut client = cli::connect(&cli.controller).await?;
            let output = match command {
                LicenseCommand::Set {
                    installation,
                    maintenance_until,
                } => {
                    cli::policy::licence_set(&mut client, &installation, &maintenance_until).await?
                }
                LicenseCommand::Show { json } => {
                    cli::policy::licence_show(&mut client, json).await?
                }
            };
            print!("{output}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Rollout { command } => {
            let mut client = cli::connect(&cli.controller).await?;
            let output = match command {
                RolloutCommand::Plan {
                    installation,
                    to,
                    client_waves,
                    json,
                } => {
                    let (output, blocked) = cli::policy::plan(
                        &mut client,
                        &installation,
                        &to,
                        client_waves.as_deref(),
                        json,
                    )
                    .await?;
                    print!("{output}");
                    return Ok(if blocked {
                        ExitCode::from(EXIT_BLOCKED)
                    } else {
                        ExitCode::SUCCESS
                    });
                }
                RolloutCommand::Start {
                    installation,
                    to,
                    ack_breaking,
                    ack_server_manager_password,
                    acks,
                    client_waves,
                    error_threshold,
                    approve_phases,
                } => {
                    cli::rollout::start(
                        &mut client,
                        cli::rollout::StartOptions {
                            installation,
                            to,
                            client_waves,
                            error_threshold,
                            approve_phases,
                            ack_breaking,
                            ack_server_manager_password,
                            acks,
                        },
                    )
                    .await?
                }
                RolloutCommand::List { json } => cli::rollout::list(&mut client, json).await?,
                RolloutCommand::Status { id, json, watch } => {
                    cli::rollout::status(&mut client, id.as_deref(), json, watch).await?
                }
                RolloutCommand::Pause { id } => {
                    cli::rollout::change(&mut client, &id, RolloutChange::Pause, None).await?
                }
                RolloutCommand::Resume { id } => {
                    cli::rollout::change(&mut client, &id, RolloutChange::Resume, None).await?
                }
                RolloutCommand::Abort { id } => {
                    cli::rollout::change(&mut client, &id, RolloutChange::Abort, None).await?
                }
                RolloutCommand::Skip { id, host } => {
                    cli::rollout::change(&mut client, &id, RolloutChange::SkipHost, Some(&host))
                        .await?
                }
                RolloutCommand::Approve { id } => {
                    cli::rollout::change(&mut client, &id, RolloutChange::Approve, None).await?
                }
            };
            print!("{output}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Artifacts {
            command:
                ArtifactsCommand::Add {
                    file,
                    release,
                    component,
                },
        } => {
            let mut client = cli::connect(&cli.controller).await?;
            print!(
                "{}",
                cli::artifacts::add(&mut client, &file, &release, component).await?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit { json } => {
            let mut client = cli::connect(&cli.controller).await?;
            print!("{}", cli::rollout::audit(&mut client, json).await?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo {
            listen,
            agent_bin,
            keep_running,
        } => {
            demo::run(demo::DemoOptions {
                listen,
                agent_bin,
                keep_running,
            })
            .await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
