//! Carries out a parsed command line: `serve` runs the controller, `demo`
//! the demo, everything else connects to a controller and prints what its
//! area's module returns.

use super::args::*;
use anyhow::Context;
use std::process::ExitCode;
use tierwise_common::rollout::Command as Change;
use tierwise_common::rules::{ACK_BREAKING, ACK_SERVER_MANAGER_PASSWORD};
use tierwise_runtime::shutdown;

/// Exit status of `rollout plan` when the plan is blocked.
const EXIT_BLOCKED: u8 = 3;

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let connection = super::Connection {
        controller: cli.connection.controller.clone(),
        ca_cert: cli.connection.ca_cert.clone(),
        token: std::env::var("TIERWISE_TOKEN").ok(),
        token_file: cli.connection.token_file.clone(),
    };
    // Times for people in the local time zone unless --utc; the
    // controller's own pages and logs keep UTC.
    if !matches!(cli.command, Command::Serve { .. }) {
        tierwise_runtime::clock::show_local_times(!cli.utc);
    }
    match cli.command {
        Command::Serve {
            listen,
            data_dir,
            database_url,
            tls_ca_cert,
            tls_ca_key,
            tls_cert,
            tls_key,
            tls_names,
            agent_cert_lifetime,
            max_handshakes_per_address,
            max_session_age,
            enroll_rate_per_address,
            enroll_rate_per_token,
            renew_rate_per_host,
            ui_login_rate_per_address,
            audit_refusal_window,
            allow_unsigned_releases,
            release_root_fingerprint,
            health_listen,
            metrics_listen,
            ui_listen,
        } => {
            let mut settings =
                crate::server::ServeSettings::resolve(listen, data_dir, database_url.as_deref())?;
            settings.pki = crate::pki::PkiSettings {
                ca_cert: tls_ca_cert,
                ca_key: tls_ca_key,
                server_cert: tls_cert,
                server_key: tls_key,
                names: tls_names,
            };
            settings.agent_certificate_lifetime = agent_cert_lifetime;
            settings.max_handshakes_per_address = usize::from(max_handshakes_per_address);
            settings.max_session_age = max_session_age;
            settings.limits = crate::grpc::limits::LimitSettings {
                enroll_per_address: enroll_rate_per_address,
                enroll_per_token: enroll_rate_per_token,
                renew_per_host: renew_rate_per_host,
                ui_login_per_address: ui_login_rate_per_address,
                audit_refusal_window,
            };
            settings.allow_unsigned_releases = allow_unsigned_releases;
            settings.release_root = release_root_fingerprint;
            settings.health_listen = health_listen;
            settings.metrics_listen = metrics_listen;
            settings.ui_listen = ui_listen;
            if allow_unsigned_releases {
                tracing::warn!("unsigned releases are allowed: rollouts of installers that no signed release metadata covers can start");
            }
            let mut running = crate::server::start(&settings).await?;
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
        Command::Hosts { command, .. } => {
            let mut client = super::connect(&connection).await?;
            let output = match command {
                HostsCommand::List {
                    installation,
                    role,
                    json,
                } => super::hosts::list(&mut client, installation.as_deref(), role, json).await?,
                HostsCommand::Show { host, json } => {
                    super::hosts::show(&mut client, &host, json).await?
                }
                HostsCommand::Revoke { host } => {
                    super::security::host_revoke(&mut client, &host).await?
                }
                HostsCommand::Refresh { host, installation } => {
                    super::hosts::refresh(&mut client, host.as_deref(), installation.as_deref())
                        .await?
                }
                HostsCommand::History { host, limit, json } => {
                    super::history::show(&mut client, &host, limit, json).await?
                }
            };
            print!("{output}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Releases { command, .. } => {
            let mut client = super::connect(&connection).await?;
            let output = match command {
                ReleasesCommand::Import {
                    file,
                    dry_run,
                    allow_remove,
                } => super::policy::import(&mut client, &file, dry_run, allow_remove).await?,
                ReleasesCommand::List { json } => super::policy::list(&mut client, json).await?,
                ReleasesCommand::Metadata {
                    command: MetadataCommand::Import { roots, release },
                } => super::metadata::import(&mut client, &roots, &release).await?,
                ReleasesCommand::Metadata {
                    command: MetadataCommand::Show { json },
                } => super::metadata::show(&mut client, json).await?,
            };
            print!("{output}");
            Ok(ExitCode::SUCCESS)
        }
        Command::License { command, .. } => {
            let mut client = super::connect(&connection).await?;
            let output = match command {
                LicenseCommand::Set {
                    installation,
                    maintenance_until,
                } => {
                    super::policy::licence_set(&mut client, &installation, &maintenance_until)
                        .await?
                }
                LicenseCommand::Show { json } => {
                    super::policy::licence_show(&mut client, json).await?
                }
            };
            print!("{output}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Windows { command, .. } => {
            let mut client = super::connect(&connection).await?;
            let output = match command {
                WindowsCommand::Set {
                    installation,
                    scope,
                    days,
                    from,
                    to,
                    time_zone,
                } => {
                    super::windows::set(
                        &mut client,
                        &super::windows::NewWindow {
                            installation: &installation,
                            scope: &scope,
                            days: &days,
                            from: &from,
                            to: &to,
                            time_zone: &time_zone,
                        },
                    )
                    .await?
                }
                WindowsCommand::Remove {
                    installation,
                    scope,
                } => super::windows::remove(&mut client, &installation, &scope).await?,
                WindowsCommand::List { installation, json } => {
                    super::windows::list(&mut client, installation.as_deref(), json).await?
                }
            };
            print!("{output}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Rollout { command, .. } => rollout(command, &connection).await,
        Command::Artifacts { command, .. } => {
            print!("{}", super::artifacts::run(&connection, command).await?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            tierwise_runtime::cli_docs::print_out(&tierwise_runtime::cli_docs::completions(
                &mut command,
                shell,
            ))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { dir } => {
            let command = <Cli as clap::CommandFactory>::command();
            let written = tierwise_runtime::cli_docs::man_pages(&command, &dir)
                .with_context(|| format!("cannot write the man pages into {}", dir.display()))?;
            println!(
                "Wrote {} man page(s) into {}.",
                written.len(),
                dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys { command } => {
            print!("{}", super::keys::run(command)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Pki {
            command: PkiCommand::Init { data_dir },
        } => {
            let data_dir = data_dir.unwrap_or_else(crate::paths::default_data_dir);
            crate::paths::private_data_dir(&data_dir).with_context(|| {
                format!(
                    "cannot create the data directory {}; choose another with --data-dir",
                    data_dir.display()
                )
            })?;
            crate::pki::Pki::load_or_create(
                &data_dir,
                &crate::pki::PkiSettings::default(),
                tierwise_runtime::clock::now_ms(),
            )?;
            let ca_cert = crate::pki::ca_cert_path(&data_dir);
            print!("{}", super::security::pki_show(&ca_cert, false)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Pki {
            command:
                PkiCommand::Show {
                    data_dir,
                    fingerprint,
                    ..
                },
        } => {
            // The value in force, given before or after the command.
            let ca_cert = cli.connection.ca_cert.clone().unwrap_or_else(|| {
                crate::pki::ca_cert_path(&data_dir.unwrap_or_else(crate::paths::default_data_dir))
            });
            print!("{}", super::security::pki_show(&ca_cert, fingerprint)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Tokens { command, .. } => {
            let mut client = super::connect(&connection).await?;
            let output = match command {
                TokensCommand::Create {
                    installation,
                    uses,
                    expires,
                    json,
                } => {
                    super::security::token_create(
                        &mut client,
                        super::security::NewToken {
                            installation,
                            uses,
                            expires,
                        },
                        json,
                    )
                    .await?
                }
                TokensCommand::List { json } => {
                    super::security::token_list(&mut client, json).await?
                }
                TokensCommand::Revoke { id } => {
                    super::security::token_revoke(&mut client, &id).await?
                }
            };
            print!("{output}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Operators { command, .. } => {
            let mut client = super::connect(&connection).await?;
            let output = match command {
                OperatorsCommand::Add {
                    name,
                    role,
                    expires,
                } => super::security::operator_add(&mut client, &name, &role, expires).await?,
                OperatorsCommand::Rotate { name, expires } => {
                    super::security::operator_rotate(&mut client, &name, expires).await?
                }
                OperatorsCommand::List { json } => {
                    super::security::operator_list(&mut client, json).await?
                }
                OperatorsCommand::Remove { name } => {
                    super::security::operator_remove(&mut client, &name).await?
                }
            };
            print!("{output}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Installations { command, .. } => {
            let mut client = super::connect(&connection).await?;
            let output = match command {
                InstallationsCommand::Map {
                    address,
                    installation,
                } => super::installations::map(&mut client, &address, &installation).await?,
                InstallationsCommand::Unmap { address } => {
                    super::installations::unmap(&mut client, &address).await?
                }
                InstallationsCommand::Maps { json } => {
                    super::installations::maps(&mut client, json).await?
                }
                InstallationsCommand::Set {
                    name,
                    promote_from,
                    soak,
                } => super::installations::set(&mut client, &name, &promote_from, soak).await?,
                InstallationsCommand::Show { name, json } => {
                    super::installations::show(&mut client, &name, json).await?
                }
            };
            print!("{output}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Notify { command, .. } => {
            super::notify::run(&connection, command).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Whoami { json, .. } => {
            let mut client = super::connect(&connection).await?;
            print!("{}", super::security::whoami(&mut client, json).await?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit {
            json,
            follow,
            command,
            ..
        } => {
            let mut client = super::connect(&connection).await?;
            match command {
                Some(AuditCommand::Verify { json, expect }) => {
                    print!("{}", super::audit::verify(&mut client, json, expect).await?)
                }
                None if follow => super::audit::follow(&mut client, json).await?,
                None => print!("{}", super::audit::list(&mut client, json).await?),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo {
            listen,
            agent_bin,
            keep_running,
            ui_listen,
        } => {
            crate::demo::run(crate::demo::DemoOptions {
                listen,
                agent_bin,
                keep_running,
                ui_listen,
            })
            .await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `tierwise rollout …`: each subcommand prints what it did; `status` and
/// `--watch` exit with the status of the rollout's state (see
/// `watch::exit_status`), `plan` with 3 when blocked.
async fn rollout(
    command: RolloutCommand,
    connection: &super::Connection,
) -> anyhow::Result<ExitCode> {
    let mut client = super::connect(connection).await?;
    let output = match command {
        RolloutCommand::Plan {
            installation,
            to,
            client_waves,
            json,
        } => {
            let (output, blocked) = super::policy::plan(
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
            mut acks,
            ack_breaking,
            ack_server_manager_password,
            client_waves,
            error_threshold,
            approve_phases,
            verify_timeouts,
            restarts,
            task_timeout,
            max_backup_age,
            watch,
        } => {
            // The older dedicated flags mean exactly their `--ack NAME`.
            for (given, name) in [
                (ack_breaking, ACK_BREAKING),
                (ack_server_manager_password, ACK_SERVER_MANAGER_PASSWORD),
            ] {
                if given && !acks.iter().any(|a| a == name) {
                    acks.push(name.to_owned());
                }
            }
            let options = super::rollout::StartOptions {
                installation,
                to,
                client_waves,
                error_threshold,
                approve_phases,
                acks,
                verify_timeouts,
                restarts,
                task_timeout,
                max_backup_age,
            };
            if !watch {
                print!("{}", super::rollout::start(&mut client, options).await?);
                return Ok(ExitCode::SUCCESS);
            }
            let started = super::rollout::start_rollout(&mut client, options).await?;
            println!("{}", super::rollout::started_line(&started));
            return super::watch::watch(
                &mut client,
                Some(&started.id),
                false,
                &connection.command_prefix(),
            )
            .await;
        }
        RolloutCommand::List { json } => super::rollout::list(&mut client, json).await?,
        RolloutCommand::Status { id, json, watch } => {
            return if watch {
                super::watch::watch(
                    &mut client,
                    id.as_deref(),
                    json,
                    &connection.command_prefix(),
                )
                .await
            } else {
                super::watch::status_once(&mut client, id.as_deref(), json).await
            };
        }
        RolloutCommand::Pause { id } => {
            super::rollout::change(&mut client, &id, &Change::Pause).await?
        }
        RolloutCommand::Resume { id } => {
            super::rollout::change(&mut client, &id, &Change::Resume).await?
        }
        RolloutCommand::Abort { id } => {
            super::rollout::change(&mut client, &id, &Change::Abort).await?
        }
        RolloutCommand::Skip { id, host } => {
            super::rollout::change(&mut client, &id, &Change::Skip { host_id: host }).await?
        }
        RolloutCommand::Approve { id } => {
            super::rollout::change(&mut client, &id, &Change::Approve).await?
        }
        RolloutCommand::Done { id, task, note } => {
            let done = Change::Done {
                task,
                note: note.unwrap_or_default(),
            };
            super::rollout::change(&mut client, &id, &done).await?
        }
    };
    print!("{output}");
    Ok(ExitCode::SUCCESS)
}
