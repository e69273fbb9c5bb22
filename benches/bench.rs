//! Benchmarks of the sync engine against what teams do today (a script per app).
//! See BENCHMARKS.md. Not part of `cargo test`: run it with
//!
//! ```text
//! cargo bench --bench bench -- <one|many|thousand|cluster|diff|cli|scale|all> [--runs N] [--write]
//! ```
//!
//! It starts the ToolJet stand-in (in a child process, so its memory is not the engine's) and
//! `git daemon` servers itself. `--write` (with `all`) rewrites the results section of
//! BENCHMARKS.md and BENCHMARKS.svg from this run's measurements; scenario 4 (`cluster`, which
//! needs `TOOLJET_OPERATOR_E2E_KUBECONFIG`) has its own section, rewritten only when it ran;
//! scenarios 5 (`diff`) and 6 (`cli`) have their own sections too.

#[path = "bench/chart.rs"]
mod chart;
#[path = "bench/cli.rs"]
mod cli;
#[path = "bench/cluster.rs"]
mod cluster;
#[path = "bench/diff.rs"]
mod diff;
#[path = "bench/measure.rs"]
mod measure;
#[path = "bench/scale.rs"]
mod scale;
#[path = "bench/scenarios.rs"]
mod scenarios;
#[path = "bench/world.rs"]
mod world;

use std::path::Path;
use std::process::ExitCode;

use scenarios::Report;

type Fail = Box<dyn std::error::Error + Send + Sync>;

const USAGE: &str = "usage: cargo bench --bench bench -- <one|many|thousand|cluster|diff|cli|scale|all> [--runs N] [--write]";
const START: &str = "<!-- bench:results:start -->";
const END: &str = "<!-- bench:results:end -->";
const CLUSTER_START: &str = "<!-- bench:cluster:start -->";
const CLUSTER_END: &str = "<!-- bench:cluster:end -->";
const DIFF_START: &str = "<!-- bench:diff:start -->";
const DIFF_END: &str = "<!-- bench:diff:end -->";
const SCALE_START: &str = "<!-- bench:scale:start -->";
const SCALE_END: &str = "<!-- bench:scale:end -->";
/// The chart of scenario 6.
const SCALE_SVG: &str = "docs/bench-scale.svg";
const CLI_START: &str = "<!-- bench:cli:start -->";
const CLI_END: &str = "<!-- bench:cli:end -->";

fn main() -> ExitCode {
    if std::env::var_os(world::CHILD_ENV).is_some() {
        return match world::standin_child() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("stand-in child: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(repos) = std::env::var_os(scale::SCALE_ENV) {
        let run = || -> Result<(), Fail> {
            let repos = repos.to_string_lossy().parse()?;
            scale::child(repos, parse_args()?.runs)
        };
        return match run() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("scale child: {e}");
                ExitCode::FAILURE
            }
        };
    }
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}

struct Args {
    scenario: String,
    runs: usize,
    write: bool,
}

fn parse_args() -> Result<Args, Fail> {
    let mut args = Args {
        scenario: String::new(),
        runs: 5,
        write: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            // cargo bench passes --bench to every bench target.
            "--bench" => {}
            "--runs" => {
                let n = it.next().ok_or(USAGE)?;
                args.runs = n
                    .parse()
                    .map_err(|_| format!("--runs {n:?}: not a number"))?;
            }
            "--write" => args.write = true,
            s if !s.starts_with('-') && args.scenario.is_empty() => args.scenario = s.to_owned(),
            other => return Err(format!("unexpected argument {other:?}\n{USAGE}").into()),
        }
    }
    if args.scenario.is_empty() {
        return Err(USAGE.into());
    }
    if args.runs == 0 {
        return Err("--runs must be at least 1 (medians need 5)".into());
    }
    if args.write
        && !matches!(
            args.scenario.as_str(),
            "all" | "cluster" | "diff" | "cli" | "scale"
        )
    {
        return Err(
            "--write rewrites BENCHMARKS.md from a full run: use it with `all` (or `cluster`, `diff`, `cli`, `scale`)"
                .into(),
        );
    }
    Ok(args)
}

fn run() -> Result<(), Fail> {
    let args = parse_args()?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Runtime::new()?;
    let mut rep = Report::default();
    let started = std::time::Instant::now();
    let mut cluster_md = None;
    let mut diff_md = None;
    let mut cli_md = None;
    rt.block_on(async {
        let all = args.scenario == "all";
        let mut known = false;
        if all || args.scenario == "one" {
            known = true;
            scenarios::one(args.runs, &mut rep).await?;
        }
        if all || args.scenario == "many" {
            known = true;
            scenarios::many(10, args.runs, &mut rep).await?;
            scenarios::many(100, args.runs, &mut rep).await?;
        }
        if all || args.scenario == "thousand" {
            known = true;
            scenarios::thousand(args.runs, &mut rep).await?;
        }
        if all || args.scenario == "cluster" {
            known = true;
            cluster_md = cluster::cluster(args.runs).await?;
        }
        if all || args.scenario == "diff" {
            known = true;
            diff_md = Some(diff::scenario(args.runs)?);
        }
        if all || args.scenario == "cli" {
            known = true;
            // The script's pass over 100 apps takes about half a minute: at most 3 of them.
            cli_md = Some(cli::scenario(args.runs, args.runs.min(3))?);
        }
        if !known && args.scenario != "scale" {
            return Err(format!("unknown scenario {:?}\n{USAGE}", args.scenario).into());
        }
        Ok::<(), Fail>(())
    })?;
    // Scenario 6 runs its sizes in child processes of their own, outside this runtime.
    if args.scenario == "all" || args.scenario == "scale" {
        report_scale(&args)?;
    }
    if !matches!(args.scenario.as_str(), "cluster" | "diff" | "cli" | "scale") {
        report_engine(&args, &rep, started.elapsed())?;
    }
    if let Some(md) = &cli_md {
        let md = format!(
            "{md}\n\nRun: `cargo bench --bench bench -- {} --runs {}`.\n\nMachine:\n\n{}",
            args.scenario,
            args.runs,
            measure::machine()
        );
        println!("{md}");
        if args.write {
            write_section(CLI_START, CLI_END, &md)?;
        }
    }
    if let Some(md) = &diff_md {
        println!("{md}");
        if args.write {
            write_section(DIFF_START, DIFF_END, md)?;
        }
    }
    match &cluster_md {
        _ if matches!(args.scenario.as_str(), "diff" | "cli" | "scale") => {}
        Some(md) => {
            println!("{md}");
            if args.write {
                write_section(CLUSTER_START, CLUSTER_END, md)?;
            }
        }
        None => {
            println!("bench: scenario cluster: {}", cluster::SKIP_LINE);
            if args.write {
                eprintln!(
                    "bench: scenario 4 was skipped: its section of BENCHMARKS.md is left as committed"
                );
            }
        }
    }
    Ok(())
}

/// Runs scenario 6, prints its section and, with `--write`, puts it and its chart in place.
fn report_scale(args: &Args) -> Result<(), Fail> {
    let mut rep = Report::default();
    let (mut md, svg) = scale::scenario(args.runs, &mut rep)?;
    if rep.misses.is_empty() {
        md.push_str("\nEvery goal of this scenario was met.\n");
    } else {
        md.push_str("\nGoals missed in this run:\n\n");
        for m in &rep.misses {
            md.push_str(&format!("- {m}\n"));
        }
    }
    println!("{md}");
    if args.write {
        write_section(SCALE_START, SCALE_END, &md)?;
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(SCALE_SVG);
        std::fs::write(&path, svg)?;
        eprintln!("bench: wrote {SCALE_SVG}");
    }
    Ok(())
}

/// Prints the results of scenarios 1–3 and, with `--write`, puts them in BENCHMARKS.md.
fn report_engine(args: &Args, rep: &Report, took: std::time::Duration) -> Result<(), Fail> {
    let mut results = format!(
        "Machine:\n\n{}\nRun: `cargo bench --bench bench -- {} --runs {}` took {:.0} s.\n\n{}",
        measure::machine(),
        args.scenario,
        args.runs,
        took.as_secs_f64(),
        rep.markdown
    );
    if rep.misses.is_empty() {
        results.push_str("Every goal and expectation above was met.\n");
    } else {
        results.push_str("Goals or expectations missed in this run:\n\n");
        for m in &rep.misses {
            results.push_str(&format!("- {m}\n"));
        }
    }
    println!("{results}");
    if args.write {
        write_section(START, END, &results)?;
        write_chart(rep)?;
    }
    Ok(())
}

/// Replaces what lies between the markers `start` and `end` of BENCHMARKS.md.
fn write_section(start: &str, end: &str, content: &str) -> Result<(), Fail> {
    let doc_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("BENCHMARKS.md");
    let doc = std::fs::read_to_string(&doc_path)?;
    let (Some(a), Some(b)) = (doc.find(start), doc.find(end)) else {
        return Err(format!("{} lacks the markers {start} … {end}", doc_path.display()).into());
    };
    let updated = format!("{}{start}\n{content}\n{}", &doc[..a], &doc[b..]);
    std::fs::write(&doc_path, updated)?;
    eprintln!("bench: wrote the section {start} of BENCHMARKS.md");
    Ok(())
}

/// Rewrites BENCHMARKS.svg from scenarios 1–3.
fn write_chart(rep: &Report) -> Result<(), Fail> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let series = [
        chart::Series {
            label: "script: first import",
            color: "#c0392b",
            dashed: false,
            points: rep.base_first.clone(),
        },
        chart::Series {
            label: "script: re-run",
            color: "#c0392b",
            dashed: true,
            points: rep.base_rerun.clone(),
        },
        chart::Series {
            label: "operator: first import",
            color: "#2471a3",
            dashed: false,
            points: rep.engine_first.clone(),
        },
        chart::Series {
            label: "operator: nothing new",
            color: "#2471a3",
            dashed: true,
            points: rep.engine_noop.clone(),
        },
    ];
    let svg = chart::svg("Wall time against number of apps (medians)", &series);
    std::fs::write(root.join("BENCHMARKS.svg"), svg)?;
    eprintln!("bench: wrote BENCHMARKS.svg");
    Ok(())
}
