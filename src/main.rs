//! The `tooljet-operator` binary: parses the command line and hands over to the library.

mod cli;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use cli::{
    Cli, Command, DiffArgs, DiffFormat, ExportFormat, LogFormat, ManifestInput, OutputFormat,
};
use tooljet_operator::offline::{self, Manifests, RunOptions, RunReport, StateFile};
use tooljet_operator::source::{CacheConfig, SourceCache, default_cache_dir};
use tooljet_operator::sync::Mode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    // kube and reqwest both use rustls; with ring as the one process-wide provider, neither has
    // to guess (two compiled-in providers make rustls panic). Err means already installed.
    let _ = rustls::crypto::ring::default_provider().install_default();

    match cli.command {
        Command::Crds => print_crds(),
        Command::Reasons => print_text(&tooljet_operator::api::reasons_markdown()),
        Command::Run {
            install_crds,
            namespace,
            concurrency,
            cache_dir,
            metrics_addr,
            leader_elect,
            leader_election_namespace,
        } => run_controller(
            tooljet_operator::controller::RunOptions {
                namespace,
                concurrency,
                cache_dir: cache_dir.unwrap_or_else(tooljet_operator::source::default_cache_dir),
                install_crds,
            },
            tooljet_operator::controller::ServeOptions {
                metrics_addr: Some(metrics_addr),
                leader_election: leader_elect.then(|| {
                    tooljet_operator::process::leader::LeaderConfig::new(leader_election_namespace)
                }),
                webhook_secrets: tooljet_operator::process::webhook::WebhookSecrets::from_env(),
            },
        ),
        Command::Sync { input, cache_dir } => run_offline(input, cache_dir, Mode::Apply),
        Command::Plan { input } => run_offline(input, None, Mode::Plan),
        Command::Export {
            files,
            output,
            cache_dir,
        } => run_export(&files, output, cache_dir),
        Command::Diff(args) => run_diff(args),
    }
}

/// `export`: exit 0 when every AppExport succeeded, 1 when one failed, 2 when the input itself
/// is unusable.
fn run_export(files: &[PathBuf], output: ExportFormat, cache_dir: Option<PathBuf>) -> ExitCode {
    use tooljet_operator::offline_export;
    let runtime = match cli_runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let manifests = match Manifests::load(files) {
        Ok(m) if m.app_exports.is_empty() => {
            eprintln!(
                "error: no AppExport in the given files; pass the files that hold them with -f"
            );
            return ExitCode::from(2);
        }
        Ok(m) => m,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    let cache = source_cache(cache_dir);
    let results = runtime.block_on(offline_export::run(&manifests, &cache));
    let printed = match output {
        ExportFormat::Text => offline_export::summary(&results),
        ExportFormat::Json => serde_json::to_string_pretty(&results).unwrap_or_default() + "\n",
    };
    // A closed stdout (`| head`) must not turn a successful export into a failure.
    let _ = std::io::stdout().lock().write_all(printed.as_bytes());
    if results.iter().all(|r| r.ready) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The runtime of a one-shot command; exit code 2 when it cannot start.
fn cli_runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|error| {
            eprintln!("error: cannot start the async runtime: {error}");
            ExitCode::from(2)
        })
}

/// The git mirror cache of a one-shot command (`--cache-dir`, else the default directory).
fn source_cache(cache_dir: Option<PathBuf>) -> SourceCache {
    SourceCache::new(CacheConfig {
        dir: cache_dir.unwrap_or_else(default_cache_dir),
        ..CacheConfig::default()
    })
}

/// `diff`: exit 0 (1 with --exit-code when the app changed), 2 when the input is unusable.
fn run_diff(args: DiffArgs) -> ExitCode {
    use tooljet_operator::diff_command;
    use tooljet_operator::source::AppLocator;
    let runtime = match cli_runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let locator = match (args.app, args.path) {
        (Some(name), _) => AppLocator::ByName(name),
        (None, Some(path)) => AppLocator::Path(path),
        // clap requires one of them.
        (None, None) => return ExitCode::from(2),
    };
    let creds = match diff_command::credentials_from_files(&args.files, args.secret.as_deref()) {
        Ok(c) => c,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    let cache = source_cache(args.cache_dir);
    let report = runtime.block_on(diff_command::run(
        &cache, &args.repo, &creds, &locator, &args.from, &args.to,
    ));
    let report = match report {
        Ok(r) => r,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    let printed = match args.output {
        DiffFormat::Text => report.text(),
        DiffFormat::Json => serde_json::to_string_pretty(&report).unwrap_or_default() + "\n",
        DiffFormat::Markdown => report.markdown(),
    };
    // A closed stdout (`| head`) is not a failure of the comparison.
    let _ = std::io::stdout().lock().write_all(printed.as_bytes());
    if args.exit_code && !report.diff.is_empty() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Logs to stderr: JSON lines unless asked otherwise or writing to a terminal (as controller-runtime
/// and Flux do), ANSI colours only on a terminal.
fn init_tracing(format: Option<LogFormat>) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let terminal = std::io::stderr().is_terminal();
    let format = format.unwrap_or(if terminal {
        LogFormat::Text
    } else {
        LogFormat::Json
    });
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.with_ansi(terminal).init(),
        // Fields at the top level of each object, under the same names as in text.
        LogFormat::Json => logs.json().flatten_event(true).with_ansi(false).init(),
    }
}

fn print_crds() -> ExitCode {
    let yaml = match tooljet_operator::api::crds_yaml() {
        Ok(yaml) => yaml,
        Err(error) => {
            tracing::error!(%error, "cannot generate the CRDs");
            return ExitCode::FAILURE;
        }
    };
    print_text(&yaml)
}

fn print_text(text: &str) -> ExitCode {
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Ok(()) => ExitCode::SUCCESS,
        // e.g. a closed pipe (`| head`): nothing useful left to do.
        Err(error) => {
            tracing::error!(%error, "cannot write to stdout");
            ExitCode::FAILURE
        }
    }
}

/// `run`: the controller, against the kubeconfig's current context or the in-cluster config.
fn run_controller(
    opts: tooljet_operator::controller::RunOptions,
    serve: tooljet_operator::controller::ServeOptions,
) -> ExitCode {
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
        match tooljet_operator::controller::run_with(client, opts, serve).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                tracing::error!(%error, "controller stopped");
                ExitCode::FAILURE
            }
        }
    })
}

/// The summary of a `sync` or `plan` run: the AppImports, then the orphans of the state file
/// (in JSON, entries of the same array, with `orphan` in place of `report`).
fn offline_output(report: &RunReport, format: OutputFormat, mode: Mode, detail: bool) -> String {
    match format {
        OutputFormat::Text => {
            offline::summary(&report.results, mode, detail)
                + &offline::orphans_summary(&report.orphans, mode)
        }
        OutputFormat::Markdown => {
            offline::markdown(&report.results, mode) + &offline::orphans_markdown(&report.orphans)
        }
        OutputFormat::Json => {
            let mut all: Vec<serde_json::Value> = Vec::new();
            for r in &report.results {
                all.push(serde_json::to_value(r).unwrap_or_default());
            }
            for o in &report.orphans {
                all.push(serde_json::to_value(o).unwrap_or_default());
            }
            serde_json::to_string_pretty(&all).unwrap_or_default() + "\n"
        }
    }
}

/// `sync` and `plan`: exit 0 when every AppImport is ready, 1 when one is not (or pruning an
/// orphan failed), 2 when the input itself is unusable.
fn run_offline(input: ManifestInput, cache_dir: Option<PathBuf>, mode: Mode) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(2);
        }
    };
    // `plan` writes nothing anywhere: its git mirrors live in a directory removed on exit.
    let plan_dir =
        std::env::temp_dir().join(format!("tooljet-operator-plan-{}", std::process::id()));
    let dir = match mode {
        Mode::Plan => plan_dir.clone(),
        Mode::Apply => cache_dir.unwrap_or_else(default_cache_dir),
    };
    let code = runtime.block_on(async {
        let manifests = match Manifests::load(&input.files) {
            Ok(m) => m,
            Err(error) => {
                eprintln!("error: {error}");
                return ExitCode::from(2);
            }
        };
        let state = match StateFile::open(input.state.as_deref()) {
            Ok(s) => s,
            Err(error) => {
                eprintln!("error: {error}");
                return ExitCode::from(2);
            }
        };
        let cache = SourceCache::new(CacheConfig {
            dir,
            // One ref listing per repository for the whole run, shared by its AppImports.
            one_listing_per_run: true,
            ..CacheConfig::default()
        });
        let opts = RunOptions {
            mode,
            concurrency: usize::from(input.concurrency),
            prune: input.prune,
        };
        let report = match offline::run_with(&manifests, cache, &state, &opts).await {
            Ok(r) => r,
            Err(error) => {
                eprintln!("error: {error}");
                return ExitCode::from(2);
            }
        };
        let printed = offline_output(&report, input.output, mode, input.detail);
        // A closed stdout (`| head`) must not turn a successful sync into a failure.
        let _ = std::io::stdout().lock().write_all(printed.as_bytes());
        ExitCode::from(report.exit_code())
    });
    if mode == Mode::Plan {
        let _ = std::fs::remove_dir_all(&plan_dir);
    }
    code
}
