//! The command line: `run`, `crds`, `sync`, `plan`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Imports ToolJet apps from git into ToolJet instances, declaratively, per environment.
///
/// In a cluster, `run` reconciles AppImport and ToolJetInstance objects. Without a cluster
/// (CI pipelines), `sync` and `plan` do the same from manifest files. Logs go to stderr;
/// set RUST_LOG (e.g. `RUST_LOG=tooljet_operator=debug`) to change the level.
#[derive(Debug, Parser)]
#[command(name = "tooljet-operator", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log format on stderr: `json` (one object per line, for log collectors) or `text`.
    /// Default: text on a terminal, json otherwise (as in a pod). Field names are the same in both;
    /// colours only on a terminal.
    #[arg(long, global = true, value_enum, env = "TOOLJET_OPERATOR_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the controller against the current kubeconfig context, or the in-cluster config.
    ///
    /// Watches AppImports and ToolJetInstances, imports apps from git into ToolJet and reports
    /// progress in their status, until SIGTERM or Ctrl-C.
    Run {
        /// Apply the CRDs (server-side apply) before starting.
        #[arg(long)]
        install_crds: bool,
        /// Watch only this namespace (default: all namespaces).
        #[arg(long, short = 'n', value_name = "NS")]
        namespace: Option<String>,
        /// How many AppImports are reconciled at the same time.
        #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..))]
        concurrency: u16,
        /// Directory for the shared git mirrors (kept between runs so update checks stay cheap).
        #[arg(long, value_name = "DIR")]
        cache_dir: Option<PathBuf>,
        /// Address of the HTTP server: GET /metrics, /healthz, /readyz and POST /hooks/{github,gitlab,generic}.
        ///
        /// Webhook routes are enabled by env WEBHOOK_GITHUB_SECRET, WEBHOOK_GITLAB_TOKEN and
        /// WEBHOOK_GENERIC_TOKEN (404 while unset).
        #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:8080")]
        metrics_addr: SocketAddr,
        /// Run the controllers only while holding the Lease `tooljet-operator` (for several replicas).
        #[arg(long)]
        leader_elect: bool,
        /// Namespace of the leader election Lease (default: env POD_NAMESPACE, else `default`).
        #[arg(
            long,
            value_name = "NS",
            env = "POD_NAMESPACE",
            default_value = "default"
        )]
        leader_election_namespace: String,
    },
    /// Print both CustomResourceDefinitions as multi-document YAML (the files in crds/ are this output).
    ///
    /// Install them with: tooljet-operator crds | kubectl apply --server-side -f -
    Crds,
    /// Print the reference of every condition and Event reason, with what it means (Markdown;
    /// docs/reasons.md is this output).
    Reasons,
    /// One-shot sync without a cluster: read manifests from files, sync, print the result.
    ///
    /// Reads AppImport, ToolJetInstance and Secret manifests (multi-document YAML; Secret `data`
    /// or `stringData`), applies each AppImport to its instance, prints a summary and exits
    /// non-zero when any import failed. For CI pipelines.
    Sync {
        #[command(flatten)]
        input: ManifestInput,
        /// Directory for the shared git mirrors (kept between runs so update checks stay cheap).
        #[arg(long, value_name = "DIR")]
        cache_dir: Option<PathBuf>,
    },
    /// Like `sync`, but only says what it would do; writes nothing anywhere.
    Plan {
        #[command(flatten)]
        input: ManifestInput,
    },
}

/// The inputs `sync` and `plan` share.
#[derive(Debug, clap::Args)]
pub struct ManifestInput {
    /// Manifest files (AppImport, ToolJetInstance, Secret); repeat -f or list several.
    #[arg(short = 'f', long = "file", value_name = "FILE", required = true, num_args = 1..)]
    pub files: Vec<PathBuf>,
    /// File that keeps the sync state between runs (what the controller keeps in status).
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Output format of the summary.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// A short human summary.
    Text,
    /// One JSON document.
    Json,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn sync_takes_several_files_state_and_output() {
        let cli = Cli::try_parse_from([
            "tooljet-operator",
            "sync",
            "-f",
            "a.yaml",
            "b.yaml",
            "-f",
            "c.yaml",
            "--state",
            "s.json",
            "-o",
            "json",
        ])
        .expect("parses");
        let Command::Sync { input, cache_dir } = cli.command else {
            panic!("expected sync, got {:?}", cli.command);
        };
        assert_eq!(input.files.len(), 3);
        assert_eq!(input.state, Some(PathBuf::from("s.json")));
        assert_eq!(input.output, OutputFormat::Json);
        assert_eq!(cache_dir, None);
    }

    #[test]
    fn plan_requires_a_file_and_run_refuses_zero_concurrency() {
        assert!(Cli::try_parse_from(["tooljet-operator", "plan"]).is_err());
        assert!(Cli::try_parse_from(["tooljet-operator", "run", "--concurrency", "0"]).is_err());
        let cli =
            Cli::try_parse_from(["tooljet-operator", "run", "--install-crds", "-n", "team-a"])
                .expect("parses");
        let Command::Run {
            install_crds,
            namespace,
            concurrency,
            ..
        } = cli.command
        else {
            panic!("expected run, got {:?}", cli.command);
        };
        assert!(install_crds);
        assert_eq!(namespace.as_deref(), Some("team-a"));
        assert_eq!(concurrency, 4);
    }

    #[test]
    fn run_serves_on_8080_and_elects_a_leader_on_request() {
        let cli = Cli::try_parse_from(["tooljet-operator", "run"]).expect("parses");
        let Command::Run {
            metrics_addr,
            leader_elect,
            ..
        } = cli.command
        else {
            panic!("expected run, got {:?}", cli.command);
        };
        assert_eq!(metrics_addr.to_string(), "0.0.0.0:8080");
        assert!(!leader_elect);
        let cli = Cli::try_parse_from([
            "tooljet-operator",
            "run",
            "--metrics-addr",
            "127.0.0.1:9090",
            "--leader-elect",
            "--leader-election-namespace",
            "ops",
        ])
        .expect("parses");
        let Command::Run {
            metrics_addr,
            leader_elect,
            leader_election_namespace,
            ..
        } = cli.command
        else {
            panic!("expected run, got {:?}", cli.command);
        };
        assert_eq!(metrics_addr.port(), 9090);
        assert!(leader_elect);
        assert_eq!(leader_election_namespace, "ops");
        assert!(
            Cli::try_parse_from(["tooljet-operator", "run", "--metrics-addr", "nope"]).is_err()
        );
    }
}
