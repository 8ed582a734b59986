//! `tierwise-agent --config FILE`: the Tierwise agent.

use anyhow::Context;
use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use tierwise_agent::{config, identity, probe, session, steps, watcher::InventoryWatcher};
use tierwise_common::json::ComponentJson;
use tierwise_runtime::logging::LogFormat;

#[derive(Debug, Parser)]
#[command(
    name = "tierwise-agent",
    version,
    about = "Tierwise agent: reports Password Secure components to the controller"
)]
struct Args {
    /// The agent's configuration file (TOML).
    #[arg(long, env = "TIERWISE_AGENT_CONFIG")]
    config: PathBuf,
    /// Validate the configuration, probe once, print the inventory as JSON and exit.
    #[arg(long)]
    check: bool,
    /// Enroll now if the agent holds no valid certificate, say the result
    /// and exit (status 1 when the controller refuses).
    #[arg(long, conflicts_with = "check")]
    enroll: bool,
    /// Log format on stderr.
    #[arg(long, env = "TIERWISE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty)]
    log_format: LogFormat,
}

fn main() -> ExitCode {
    let args = Args::parse();
    tierwise_runtime::logging::init(args.log_format, "info");
    // An agent has little to do; two workers keep its footprint small.
    tierwise_runtime::run_main(Some(2), run(args))
}

async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let settings = config::load(&args.config)?;
    if args.check {
        let inventory = probe::inventory(&settings.components).await?;
        println!("{}", inventory_json(&settings, &inventory)?);
        return Ok(ExitCode::SUCCESS);
    }
    std::fs::create_dir_all(&settings.state_dir).with_context(|| {
        format!(
            "cannot create the state directory {}; set `state_dir` in {}",
            settings.state_dir.display(),
            args.config.display()
        )
    })?;
    if args.enroll {
        let credentials = identity::obtain(&settings).await?;
        println!(
            "enrolled as {} (installation {}); certificate valid until {}, kept in {}",
            credentials.host_id,
            settings.installation,
            tierwise_runtime::clock::rfc3339(credentials.not_after_ms),
            settings.state_dir.join("identity").display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    tracing::info!(
        host_id = %settings.host_id,
        installation = %settings.installation,
        controller = %settings.controller,
        components = settings.components.len(),
        "agent starting"
    );
    let watcher =
        InventoryWatcher::start(settings.components.clone(), settings.probe_interval).await;
    let executor = steps::Executor::new(&settings.state_dir, settings.components.clone())
        .with_context(|| {
            format!(
                "cannot open the step journal in {}",
                settings.state_dir.display()
            )
        })?;
    let downloader = steps::download::Downloader::new(&settings.controller, &settings.state_dir);
    let runner = steps::StepRunner::spawn(executor, downloader.clone(), watcher.refresh.clone());
    let credentials = tokio::select! {
        credentials = obtain_identity(&settings) => credentials?,
        _ = tierwise_runtime::shutdown::signal() => {
            tracing::info!("stopping");
            return Ok(ExitCode::SUCCESS);
        }
    };
    let identity = identity::start_renewer(settings.clone(), credentials);
    downloader.set_identity(identity.clone());
    tokio::select! {
        _ = session::run_forever(settings, watcher, runner, identity) => {}
        _ = tierwise_runtime::shutdown::signal() => tracing::info!("stopping"),
    }
    Ok(ExitCode::SUCCESS)
}

/// The stored identity, or a new one by enrollment. A refusal or an
/// unreachable controller is retried with backoff (an administrator may fix
/// the token meanwhile); a configuration without enrollment settings stops
/// the agent with what to add.
async fn obtain_identity(settings: &config::Settings) -> anyhow::Result<identity::Credentials> {
    let mut backoff = tierwise_agent::backoff::Backoff::new(
        std::time::Duration::from_secs(1),
        settings.reconnect_max,
    );
    loop {
        match identity::obtain(settings).await {
            Ok(credentials) => return Ok(credentials),
            Err(error @ identity::IdentityError::NotEnrolled) => return Err(error.into()),
            Err(error) => {
                let delay = backoff.next_delay(fastrand::f64());
                tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64, "no certificate yet");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// The `--check` output: what the agent would report, as one JSON document
/// in the same shape as `tierwise hosts show --json`.
fn inventory_json(
    settings: &config::Settings,
    inventory: &tierwise_common::Inventory,
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
    }))?)
}
