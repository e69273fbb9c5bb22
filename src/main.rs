//! The `tooljet-operator` binary: parses the command line and hands over to the library.

mod cli;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    // kube and reqwest both use rustls; with ring as the one process-wide provider, neither has
    // to guess (two compiled-in providers make rustls panic). Err means already installed.
    let _ = rustls::crypto::ring::default_provider().install_default();

    match cli.command {
        Command::Crds => print_crds(),
        Command::Run {
            install_crds,
            namespace,
            concurrency,
            cache_dir,
        } => run_controller(tooljet_operator::controller::RunOptions {
            namespace,
            concurrency,
            cache_dir: cache_dir.unwrap_or_else(tooljet_operator::source::default_cache_dir),
            install_crds,
        }),
        Command::Sync { .. } => not_implemented("sync", 5),
        Command::Plan { .. } => not_implemented("plan", 5),
    }
}

fn init_tracing() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn print_crds() -> ExitCode {
    let yaml = match tooljet_operator::api::crds_yaml() {
        Ok(yaml) => yaml,
        Err(error) => {
            tracing::error!(%error, "cannot generate the CRDs");
            return ExitCode::FAILURE;
        }
    };
    match std::io::stdout().lock().write_all(yaml.as_bytes()) {
        Ok(()) => ExitCode::SUCCESS,
        // e.g. a closed pipe (`| head`): nothing useful left to do.
        Err(error) => {
            tracing::error!(%error, "cannot write the CRDs to stdout");
            ExitCode::FAILURE
        }
    }
}

/// `run`: the controller, against the kubeconfig's current context or the in-cluster config.
fn run_controller(opts: tooljet_operator::controller::RunOptions) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(error) => {
            tracing::error!(%error, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let client = match kube::Client::try_default().await {
            Ok(c) => c,
            Err(error) => {
                tracing::error!(%error, "no Kubernetes configuration: set KUBECONFIG or run in a cluster");
                return ExitCode::FAILURE;
            }
        };
        match tooljet_operator::controller::run(client, opts).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                tracing::error!(%error, "controller stopped");
                ExitCode::FAILURE
            }
        }
    })
}

fn not_implemented(command: &str, issue: u32) -> ExitCode {
    eprintln!("`{command}` is not implemented yet (issue {issue})");
    ExitCode::from(2)
}
