//! The command line: `run`, `crds`, `sync`, `plan`, `export`, `diff`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use tooljet_operator::sync::DEFAULT_CONCURRENCY;

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
        #[arg(long, value_name = "N", default_value_t = DEFAULT_CONCURRENCY, value_parser = clap::value_parser!(u16).range(1..))]
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
    /// One-shot AppExport without a cluster: export apps from ToolJet, commit, push.
    ///
    /// Reads AppExport, ToolJetInstance and Secret manifests (as `sync` does), exports each
    /// AppExport's apps from its instance and pushes one commit per AppExport to its branch when
    /// an app changed (never a force push; secrets never leave ToolJet). Exit code 0 when every
    /// AppExport succeeded (committed or already up to date), 1 when one failed, 2 when the input
    /// itself is unusable.
    Export {
        /// Manifest files (AppExport, ToolJetInstance, Secret); repeat -f or list several.
        #[arg(short = 'f', long = "file", value_name = "FILE", required = true, num_args = 1..)]
        files: Vec<PathBuf>,
        /// Output format of the summary.
        #[arg(short = 'o', long = "output", value_enum, default_value_t = ExportFormat::Text)]
        output: ExportFormat,
        /// Directory for the shared git mirrors (kept between runs so later exports fetch little).
        #[arg(long, value_name = "DIR")]
        cache_dir: Option<PathBuf>,
    },
    /// What changes inside an app between two commits: pages, components, queries, events,
    /// data sources and settings, in ToolJet's terms.
    ///
    /// FROM and TO are branches, tags or full commit shas. Ids and timestamps that ToolJet
    /// regenerates on every export are not changes. Exit code 0 (1 with --exit-code when the
    /// app changed), 2 when the input is unusable (unknown ref, app not found, bad bundle).
    Diff(DiffArgs),
}

/// The arguments of `diff`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["app", "path"])))]
pub struct DiffArgs {
    /// Repository URL (https://, ssh://, git://, file:// or user@host:path).
    #[arg(long, value_name = "URL")]
    pub repo: String,
    /// The app by its name in ToolJet Git Sync's `.meta/meta.json`.
    #[arg(long, value_name = "NAME")]
    pub app: Option<String>,
    /// The app as an export bundle at this path in the repository.
    #[arg(long, value_name = "PATH")]
    pub path: Option<String>,
    /// The older commit: a branch, a tag or a full commit sha.
    #[arg(value_name = "FROM")]
    pub from: String,
    /// The newer commit: a branch, a tag or a full commit sha.
    #[arg(value_name = "TO")]
    pub to: String,
    /// Output: `text`, `json`, or `markdown` (a collapsible block for a pull-request comment).
    #[arg(short = 'o', long = "output", value_enum, default_value_t = DiffFormat::Text)]
    pub output: DiffFormat,
    /// Exit with 1 when the app changed (as `git diff --exit-code`).
    #[arg(long)]
    pub exit_code: bool,
    /// Manifest files holding the Secret with the git credentials (as `sync -f` reads them).
    #[arg(short = 'f', long = "file", value_name = "FILE", num_args = 1.., requires = "secret")]
    pub files: Vec<PathBuf>,
    /// Name of the Secret in the -f files with the git credentials (username+password, token, or
    /// identity+known_hosts, as an AppImport's `source.secretRef`).
    #[arg(long, value_name = "NAME", requires = "files")]
    pub secret: Option<String>,
    /// Directory for the shared git mirrors (kept between runs so later diffs fetch little).
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
}

/// Output formats of `diff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DiffFormat {
    /// One change per line.
    Text,
    /// One JSON document.
    Json,
    /// Markdown with a collapsible `<details>` block, for a pull-request comment.
    Markdown,
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
    /// Print the whole diff of each app that changes (pages, components, queries, ...), not
    /// only its one-line summary (text output; json and markdown always have it).
    #[arg(long)]
    pub detail: bool,
    /// How many AppImports are synced at the same time (promotion order is kept: an AppImport
    /// promoted from another one starts after it). The controller's default.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_CONCURRENCY, value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: u16,
    /// Remove AppImports that the state file knows but the files no longer hold, as their last
    /// recorded deletionPolicy says (Delete: the app is deleted from ToolJet; Retain: forgotten,
    /// the app stays). Without it they are listed and kept. With `plan`: what would be removed.
    #[arg(long)]
    pub prune: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// A short human summary.
    Text,
    /// One JSON document.
    Json,
    /// Markdown for a pull-request comment: one line per AppImport, a collapsible block with
    /// what changes inside each app.
    Markdown,
}

/// Output of `export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// A line per AppExport, then one per app.
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
        assert_eq!(
            input.concurrency, DEFAULT_CONCURRENCY,
            "the controller's default"
        );
        assert!(!input.prune);
    }

    #[test]
    fn sync_and_plan_take_concurrency_and_prune() {
        for verb in ["sync", "plan"] {
            let cli = Cli::try_parse_from([
                "tooljet-operator",
                verb,
                "-f",
                "a.yaml",
                "--concurrency",
                "16",
                "--prune",
            ])
            .expect("parses");
            let (Command::Sync { input, .. } | Command::Plan { input }) = cli.command else {
                panic!("expected {verb}, got {:?}", cli.command);
            };
            assert_eq!((input.concurrency, input.prune), (16, true), "{verb}");
            let zero = [
                "tooljet-operator",
                verb,
                "-f",
                "a.yaml",
                "--concurrency",
                "0",
            ];
            assert!(Cli::try_parse_from(zero).is_err(), "{verb}");
        }
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
        assert_eq!(concurrency, DEFAULT_CONCURRENCY);
    }

    #[test]
    fn diff_takes_an_app_or_a_path_two_revisions_and_a_format() {
        let cli = Cli::try_parse_from([
            "tooljet-operator",
            "diff",
            "--repo",
            "https://git.example/apps.git",
            "--app",
            "Orders",
            "main",
            "feature",
            "-o",
            "markdown",
        ])
        .expect("parses");
        let Command::Diff(args) = cli.command else {
            panic!("expected diff, got {:?}", cli.command);
        };
        assert_eq!(args.app.as_deref(), Some("Orders"));
        assert_eq!((args.from.as_str(), args.to.as_str()), ("main", "feature"));
        assert_eq!(args.output, DiffFormat::Markdown);
        assert!(!args.exit_code && args.files.is_empty() && args.secret.is_none());
        let base = ["tooljet-operator", "diff", "--repo", "r", "a", "b"];
        // Exactly one of --app and --path.
        assert!(Cli::try_parse_from(base).is_err());
        let both = [&base[..], &["--app", "x", "--path", "y.json"]].concat();
        assert!(Cli::try_parse_from(both).is_err());
        // A Secret needs the files it is in, and files need the Secret's name.
        let secret = [&base[..], &["--path", "y.json", "--secret", "git"]].concat();
        assert!(Cli::try_parse_from(secret).is_err());
        let files = [&base[..], &["--path", "y.json", "-f", "s.yaml"]].concat();
        assert!(Cli::try_parse_from(files).is_err());
        let ok = [
            &base[..],
            &["--path", "y.json", "-f", "s.yaml", "--secret", "git"],
        ]
        .concat();
        assert!(Cli::try_parse_from(ok).is_ok());
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
