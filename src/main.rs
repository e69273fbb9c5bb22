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
        Command::Run { .. } => not_implemented("run", 6),
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

fn not_implemented(command: &str, issue: u32) -> ExitCode {
    eprintln!("`{command}` is not implemented yet (issue {issue})");
    ExitCode::from(2)
}
