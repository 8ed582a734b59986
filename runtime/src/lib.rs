//! Process plumbing that the controller and the agent share, so both binaries
//! behave alike: one logging setup and one notion of "asked to stop".
//!
//! Nothing here knows about Password Secure or the protocol.

pub mod cli_docs;
pub mod clock;
pub mod logging;
pub mod report;
pub mod shutdown;

use std::future::Future;
use std::process::ExitCode;

/// Runs a binary's async `main` on a multi-threaded runtime (`workers`
/// threads, or one per core) and turns its outcome into the exit status:
/// the one it chose, or 1 with `error: ` and the whole cause chain on stderr.
pub fn run_main<F>(workers: Option<usize>, main: F) -> ExitCode
where
    F: Future<Output = anyhow::Result<ExitCode>>,
{
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(workers) = workers {
        builder.worker_threads(workers);
    }
    run_on(builder, main)
}

/// Like [`run_main`], on a runtime of the calling thread alone (no worker
/// threads; blocking work still goes to the blocking pool, whose threads
/// end when idle): the smallest footprint, for a process with little to do.
pub fn run_main_current_thread<F>(main: F) -> ExitCode
where
    F: Future<Output = anyhow::Result<ExitCode>>,
{
    run_on(tokio::runtime::Builder::new_current_thread(), main)
}

fn run_on<F>(mut builder: tokio::runtime::Builder, main: F) -> ExitCode
where
    F: Future<Output = anyhow::Result<ExitCode>>,
{
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(main) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {}", report::error_chain(error.as_ref()));
            ExitCode::FAILURE
        }
    }
}
