//! Scenario 6 (issue 20): 100, 1,000 and 10,000 AppImports over 1, 10 and 100 repositories of
//! 100 apps each, through one engine as the controller runs it (one git cache, one ToolJet
//! client per instance, AppImports synced 4 at a time). Each size runs in a child process of its
//! own (this program again, with [`SCALE_ENV`] set to the number of repositories), so that the
//! peak resident memory it reports is that size's alone; the child starts its own stand-in (a
//! process of its own, not counted) and one `git daemon` per repository (`git://`).

use std::fmt::Write as _;
use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use git_fixtures::tooljet::CREDIT_CARD;
use serde::{Deserialize, Serialize};

use tooljet_operator::source::Credentials;

use crate::Fail;
use crate::chart;
use crate::measure::{Spread, cpu_seconds, ms, reset_peak_rss, status_kib, status_kib_of};
use crate::scenarios::{CONCURRENCY, Report};
use crate::world::{AppRepo, Fleet, StandInProc, imports_of};

/// Set in the environment of a child that runs one size: the number of repositories.
pub const SCALE_ENV: &str = "TOOLJET_OPERATOR_BENCH_SCALE";
/// Apps per repository.
const PER_REPO: usize = 100;
/// Repositories per size: 100, 1,000 and 10,000 AppImports.
const SIZES: [usize; 3] = [1, 10, 100];
/// The child's answer is the one stdout line that starts with this.
const RESULT: &str = "scale-result ";
/// Goals at 10,000 AppImports (issue 20).
const PEAK_GOAL_MIB: f64 = 200.0;
const NOOP_GOAL: Duration = Duration::from_secs(10);

/// What one size measured (the child's answer, as JSON).
#[derive(Serialize, Deserialize, Default, Clone, Debug)]
pub struct Measured {
    pub repos: usize,
    pub apps: usize,
    /// Making the repositories and starting the servers (not part of any pass).
    pub setup_s: f64,
    pub first_s: f64,
    pub first_fetches: u64,
    pub first_listings: u64,
    pub first_requests: u64,
    pub first_writes: u64,
    /// CPU seconds of the first pass: this process, the stand-in, the git daemons.
    pub first_cpu: (f64, f64, f64),
    pub noop_s: Vec<f64>,
    /// Per no-op pass: remote ref listings, ToolJet requests, of which app listings.
    pub noop_listings: Vec<u64>,
    pub noop_requests: Vec<u64>,
    pub noop_app_lists: Vec<u64>,
    /// Over all no-op passes: fetches and ToolJet writes (both must be 0).
    pub noop_fetches: u64,
    pub noop_writes: u64,
    /// CPU seconds per no-op pass (medians): this process, the stand-in, the git daemons.
    pub cpu_engine_s: f64,
    pub cpu_standin_s: f64,
    pub cpu_git_s: f64,
    pub rss_start_kib: u64,
    pub rss_after_first_kib: u64,
    /// VmHWM at the end (reset at the start of the child's work).
    pub peak_kib: u64,
    pub standin_peak_kib: u64,
    /// One call at a time, after the passes (medians, ms): `SourceCache::resolve` reusing the
    /// ref listing (the engine's local git work per AppImport), `GET /api/apps/:id`, and a whole
    /// no-op `Engine::sync`.
    pub resolve_ms: f64,
    pub get_ms: f64,
    pub sync_ms: f64,
}

/// Entry point of a child process: measures `repos` repositories and prints the result.
pub fn child(repos: usize, runs: usize) -> Result<(), Fail> {
    let rt = tokio::runtime::Runtime::new()?;
    let measured = rt.block_on(measure(repos, runs))?;
    println!("{RESULT}{}", serde_json::to_string(&measured)?);
    Ok(())
}

/// CPU seconds of this process, of the stand-in, and of the git daemons' children.
fn cpu_now(standin: u32, daemons: &[u32]) -> (f64, f64, f64) {
    let own = cpu_seconds("self").map_or(0.0, |(s, _)| s);
    let tj = cpu_seconds(&standin.to_string()).map_or(0.0, |(s, _)| s);
    let git = daemons
        .iter()
        .filter_map(|p| cpu_seconds(&p.to_string()))
        .map(|(s, c)| s + c)
        .sum();
    (own, tj, git)
}

async fn measure(n_repos: usize, runs: usize) -> Result<Measured, Fail> {
    let setup = Instant::now();
    let repos = (0..n_repos)
        .map(|r| AppRepo::of(&format!("scale{r:03}"), PER_REPO, &[CREDIT_CARD.1]))
        .collect::<Result<Vec<_>, _>>()?;
    let urls: Vec<String> = repos.iter().map(|r| r.git_url.clone()).collect();
    let daemons: Vec<u32> = repos.iter().map(AppRepo::daemon_pid).collect();
    let mut standin = StandInProc::start()?;
    let imports = imports_of(&repos)?;
    let mut m = Measured {
        repos: n_repos,
        apps: imports.len(),
        setup_s: setup.elapsed().as_secs_f64(),
        ..Measured::default()
    };
    eprintln!(
        "bench: scale {} AppImports: set up in {:.1} s",
        m.apps, m.setup_s
    );
    reset_peak_rss();
    m.rss_start_kib = status_kib("VmRSS").unwrap_or(0);
    let mut fleet = Fleet::new(&standin, imports)?;
    let c0 = cpu_now(standin.pid(), &daemons);
    first_pass(&mut fleet, &mut standin, &urls, &mut m).await?;
    let c1 = cpu_now(standin.pid(), &daemons);
    m.first_cpu = (c1.0 - c0.0, c1.1 - c0.1, c1.2 - c0.2);
    let (mut engine, mut tj, mut git) = (vec![], vec![], vec![]);
    for _ in 0..runs {
        let c0 = cpu_now(standin.pid(), &daemons);
        noop_pass(&mut fleet, &mut standin, &urls, &mut m).await?;
        let c1 = cpu_now(standin.pid(), &daemons);
        engine.push(Duration::from_secs_f64(c1.0 - c0.0));
        tj.push(Duration::from_secs_f64(c1.1 - c0.1));
        git.push(Duration::from_secs_f64(c1.2 - c0.2));
    }
    m.cpu_engine_s = Spread::of(&engine).median.as_secs_f64();
    m.cpu_standin_s = Spread::of(&tj).median.as_secs_f64();
    m.cpu_git_s = Spread::of(&git).median.as_secs_f64();
    one_at_a_time(&mut fleet, 200, &mut m).await?;
    m.peak_kib = status_kib("VmHWM").unwrap_or(0);
    m.standin_peak_kib = status_kib_of(&standin.pid().to_string(), "VmHWM").unwrap_or(0);
    Ok(m)
}

async fn first_pass(
    fleet: &mut Fleet,
    standin: &mut StandInProc,
    urls: &[String],
    m: &mut Measured,
) -> Result<(), Fail> {
    let (w0, q0) = (standin.writes()?, standin.requests()?);
    let pass = fleet.pass(CONCURRENCY).await?;
    m.first_s = pass.wall.as_secs_f64();
    m.first_writes = (standin.writes()? - w0) as u64;
    m.first_requests = (standin.requests()? - q0) as u64;
    let git = fleet.git_stats(urls);
    m.first_fetches = git.fetches;
    m.first_listings = git.checks;
    m.rss_after_first_kib = status_kib("VmRSS").unwrap_or(0);
    let in_tooljet = standin.apps()?;
    if in_tooljet != m.apps {
        return Err(format!(
            "after the first pass ToolJet holds {in_tooljet} apps, not {}",
            m.apps
        )
        .into());
    }
    eprintln!(
        "bench: scale {} AppImports: first pass {:.1} s",
        m.apps, m.first_s
    );
    Ok(())
}

/// Where a no-op's time goes at this size: its parts timed one call at a time, over the first
/// `n` AppImports (spread over the repositories).
async fn one_at_a_time(fleet: &mut Fleet, n: usize, m: &mut Measured) -> Result<(), Fail> {
    let step = (fleet.imports.len() / n).max(1);
    let picked: Vec<usize> = (0..fleet.imports.len()).step_by(step).take(n).collect();
    let (mut resolve, mut get, mut sync) = (vec![], vec![], vec![]);
    for &i in &picked {
        let imp = &fleet.imports[i];
        let spec = imp.source_spec();
        let known = imp
            .state
            .last_applied_commit
            .as_ref()
            .map(|c| c.sha.clone());
        let t = Instant::now();
        fleet
            .source
            .resolve(&spec, &Credentials::Anonymous, known.as_deref())
            .await?;
        resolve.push(t.elapsed());
        let id = &imp.state.app.as_ref().ok_or("not imported")?.id;
        let t = Instant::now();
        fleet.client.get_app(id).await?;
        get.push(t.elapsed());
    }
    for &i in &picked {
        sync.push(fleet.sync_one(i).await?);
    }
    let ms_of = |v: &[Duration]| Spread::of(v).median.as_secs_f64() * 1000.0;
    (m.resolve_ms, m.get_ms, m.sync_ms) = (ms_of(&resolve), ms_of(&get), ms_of(&sync));
    Ok(())
}

/// A pass with nothing new, as the controller's passes come, `interval` apart: the reuse windows
/// of the previous pass are over, so every repository is listed again, and so is ToolJet.
async fn noop_pass(
    fleet: &mut Fleet,
    standin: &mut StandInProc,
    urls: &[String],
    m: &mut Measured,
) -> Result<(), Fail> {
    for url in urls {
        fleet.source.forget_ref_checks(url);
    }
    fleet.client.forget_shared_listings();
    let g0 = fleet.git_stats(urls);
    let (w0, q0, l0) = (standin.writes()?, standin.requests()?, standin.lists()?);
    let pass = fleet.pass(CONCURRENCY).await?;
    let g1 = fleet.git_stats(urls);
    if let Some(r) = pass.reasons.iter().find(|r| *r != "UpToDate") {
        return Err(format!("a pass with nothing new ended {r}").into());
    }
    m.noop_s.push(pass.wall.as_secs_f64());
    m.noop_listings.push(g1.checks - g0.checks);
    m.noop_fetches += g1.fetches - g0.fetches;
    m.noop_requests.push((standin.requests()? - q0) as u64);
    m.noop_app_lists.push((standin.lists()? - l0) as u64);
    m.noop_writes += (standin.writes()? - w0) as u64;
    eprintln!(
        "bench: scale {} AppImports: no-op pass {:.2} s",
        m.apps,
        pass.wall.as_secs_f64()
    );
    Ok(())
}

/// Runs every size in a child process; returns the section for BENCHMARKS.md and the chart.
pub fn scenario(runs: usize, rep: &mut Report) -> Result<(String, String), Fail> {
    let started = Instant::now();
    let mut all = Vec::new();
    for repos in SIZES {
        eprintln!(
            "bench: scenario scale, {} AppImports ({runs} no-op passes)",
            repos * PER_REPO
        );
        all.push(run_child(repos, runs)?);
    }
    let md = markdown(&all, runs, started.elapsed(), rep);
    Ok((md, svg(&all)))
}

fn run_child(repos: usize, runs: usize) -> Result<Measured, Fail> {
    let mut child = Command::new(std::env::current_exe()?)
        .env(SCALE_ENV, repos.to_string())
        .args(["scale", "--runs", &runs.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("the scale child has no stdout")?;
    let mut found = None;
    for line in std::io::BufReader::new(stdout).lines() {
        if let Some(json) = line?.strip_prefix(RESULT) {
            found = Some(serde_json::from_str::<Measured>(json)?);
        }
    }
    let status = child.wait()?;
    match found {
        Some(m) if status.success() => Ok(m),
        _ => Err(format!("the scale child for {repos} repositories failed ({status})").into()),
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

fn noop_spread(m: &Measured) -> Spread {
    Spread::of(&m.noop_s.iter().map(|s| secs(*s)).collect::<Vec<_>>())
}

fn median(values: &[u64]) -> u64 {
    crate::measure::median_u64(values)
}

/// The table of every size, the goals at the largest, and what limits them.
fn markdown(all: &[Measured], runs: usize, took: Duration, rep: &mut Report) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "### 6. 100 to 10,000 AppImports, one engine (concurrency {CONCURRENCY}, {runs} no-op passes each)\n"
    );
    let _ = writeln!(
        md,
        "| AppImports (repositories) | First pass (CPU: engine, stand-in, git) | Fetches | No-op pass, median (min–max) | Ref listings / no-op pass | ToolJet requests / no-op pass (per AppImport; app listings) | Peak RSS (after first pass) | CPU / no-op pass: engine, stand-in, git |\n|---|---|---|---|---|---|---|---|"
    );
    for m in all {
        let noop = noop_spread(m);
        let requests = median(&m.noop_requests);
        let _ = writeln!(
            md,
            "| {} ({}) | {} ({} writes; {:.1} s, {:.1} s, {:.1} s) | {} | {} | {} | {} ({:.4}; {}) | {:.1} MiB ({:.1} MiB) | {:.2} s, {:.2} s, {:.2} s |",
            m.apps,
            m.repos,
            ms(secs(m.first_s)),
            m.first_writes,
            m.first_cpu.0,
            m.first_cpu.1,
            m.first_cpu.2,
            m.first_fetches,
            noop.show(),
            median(&m.noop_listings),
            requests,
            requests as f64 / m.apps as f64,
            median(&m.noop_app_lists),
            mib(m.peak_kib),
            mib(m.rss_after_first_kib),
            m.cpu_engine_s,
            m.cpu_standin_s,
            m.cpu_git_s,
        );
    }
    let _ = writeln!(
        md,
        "\nOne call at a time (200 AppImports spread over the repositories, after the passes; medians):\n\n| AppImports | `SourceCache::resolve`, listing reused (local git work) | `GET /api/apps/:id` | whole no-op `Engine::sync` |\n|---|---|---|---|"
    );
    for m in all {
        let _ = writeln!(
            md,
            "| {} | {:.2} ms | {:.2} ms | {:.2} ms |",
            m.apps, m.resolve_ms, m.get_ms, m.sync_ms
        );
    }
    md.push('\n');
    if let Some(big) = all.last() {
        goals(&mut md, big, rep);
    }
    let _ = writeln!(
        md,
        "Run: `cargo bench --bench bench -- scale --runs {runs}` took {:.0} s (setting up the repositories included: {}).\n",
        took.as_secs_f64(),
        all.iter()
            .map(|m| format!("{:.0} s for {}", m.setup_s, m.apps))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(md, "Machine:\n\n{}", crate::measure::machine());
    md
}

fn goals(md: &mut String, m: &Measured, rep: &mut Report) {
    let n = m.apps;
    let peak = mib(m.peak_kib);
    let noop = noop_spread(m);
    let listings = median(&m.noop_listings);
    let rss_ok = rep.check(
        peak < PEAK_GOAL_MIB,
        format!("{n} AppImports: peak RSS under {PEAK_GOAL_MIB} MiB (got {peak:.1} MiB)"),
    );
    let noop_ok = rep.check(
        noop.median < NOOP_GOAL,
        format!(
            "{n} AppImports: no-op pass under {} s (got {})",
            NOOP_GOAL.as_secs(),
            ms(noop.median)
        ),
    );
    let fetch_ok = rep.check(
        m.first_fetches == m.repos as u64 && m.noop_fetches == 0,
        format!(
            "{n} AppImports: exactly {} fetches on the first pass, none after (got {}, then {})",
            m.repos, m.first_fetches, m.noop_fetches
        ),
    );
    let list_ok = rep.check(
        listings <= m.repos as u64 && m.noop_writes == 0,
        format!(
            "{n} AppImports: at most one ref listing per repository per no-op pass, no writes (got {listings}, {} writes)",
            m.noop_writes
        ),
    );
    let _ = writeln!(
        md,
        "| Goal at {n} AppImports (issue 20) | Result | Met |\n|---|---|---|"
    );
    let _ = writeln!(
        md,
        "| Peak RSS of the engine's process (VmHWM) under {PEAK_GOAL_MIB:.0} MiB | {peak:.1} MiB (the stand-in, a process of its own: {:.0} MiB) | {rss_ok} |",
        mib(m.standin_peak_kib)
    );
    let _ = writeln!(
        md,
        "| No-op pass under {} s on two cores | {} | {noop_ok} |",
        NOOP_GOAL.as_secs(),
        noop.show()
    );
    let _ = writeln!(
        md,
        "| Fetches: exactly one per repository | {} on the first pass, {} in the no-op passes | {fetch_ok} |",
        m.first_fetches, m.noop_fetches
    );
    let _ = writeln!(
        md,
        "| Ref listings per no-op pass: at most one per repository | {listings} (writes: {}) | {list_ok} |\n",
        m.noop_writes
    );
}

fn svg(all: &[Measured]) -> String {
    let point = |m: &Measured, s: f64| (m.apps as f64, s);
    let series = [
        chart::Series {
            label: "first pass",
            color: "#2471a3",
            dashed: false,
            points: all.iter().map(|m| point(m, m.first_s)).collect(),
        },
        chart::Series {
            label: "nothing new",
            color: "#2471a3",
            dashed: true,
            points: all
                .iter()
                .map(|m| point(m, noop_spread(m).median.as_secs_f64()))
                .collect(),
        },
    ];
    chart::svg(
        "One engine: wall time of a pass against AppImports",
        &series,
    )
}
