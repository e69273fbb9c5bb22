//! Scenario 6 (issue 20): the command line at 100 apps, as a CI pipeline runs it. The real binary
//! (`tooljet-operator sync -f`), one manifest of 100 AppImports of one repository served by
//! `git daemon`, against the baseline script looped over the same apps. It reads the run's own
//! count of ref listings and fetches per repository from its log (`git traffic of this run`).

use std::fmt::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::Fail;
use crate::measure::{Spread, median_u64};
use crate::world::{API_KEY, AppRepo, StandInProc, baseline};

const OPERATOR: &str = env!("CARGO_BIN_EXE_tooljet-operator");
/// AppImports (apps) in the manifest.
const APPS: usize = 100;

/// One `sync -f` as measured.
struct CliPass {
    wall: Duration,
    listings: u64,
    fetches: u64,
    writes: u64,
}

/// The manifest: the API key's Secret, the instance and one AppImport per app.
fn manifest(standin: &StandInProc, apps: &AppRepo) -> String {
    let mut yaml = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: tj}}\nstringData: {{api-key: {API_KEY}}}\n---\n\
         apiVersion: gitops.tooljet.dev/v1alpha1\nkind: ToolJetInstance\nmetadata: {{name: tooljet}}\n\
         spec:\n  url: {}\n  environment: development\n  workspaceId: {}\n  \
         auth: {{adminApiKey: {{secretRef: {{name: tj, key: api-key}}}}}}\n",
        standin.base_url, standin.workspace_id
    );
    for (i, name) in apps.names.iter().enumerate() {
        let _ = write!(
            yaml,
            "---\napiVersion: gitops.tooljet.dev/v1alpha1\nkind: AppImport\nmetadata: {{name: app-{:03}}}\n\
             spec:\n  environment: development\n  appName: {name}\n  \
             source: {{url: \"{}\", ref: {{branch: master}}, app: {name}}}\n",
            i + 1,
            apps.git_url
        );
    }
    yaml
}

/// Runs `sync -f` once in `dir` (state file and git cache kept there between passes).
fn sync(dir: &Path, standin: &mut StandInProc, git_url: &str) -> Result<CliPass, Fail> {
    let writes = standin.writes()?;
    let start = Instant::now();
    let out = Command::new(OPERATOR)
        .args(["sync", "-f"])
        .arg(dir.join("apps.yaml"))
        .arg("--state")
        .arg(dir.join("state.json"))
        .arg("--cache-dir")
        .arg(dir.join("cache"))
        .args(["-o", "json", "--log-format", "json"])
        .env("RUST_LOG", "tooljet_operator=info")
        .stdin(Stdio::null())
        .output()?;
    let wall = start.elapsed();
    if !out.status.success() {
        return Err(format!(
            "sync -f failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stdout)
        )
        .into());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let traffic = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["message"] == "git traffic of this run" && l["url"] == git_url)
        .ok_or("sync -f logged no git traffic for the repository")?;
    Ok(CliPass {
        wall,
        listings: traffic["listings"].as_u64().unwrap_or(u64::MAX),
        fetches: traffic["fetches"].as_u64().unwrap_or(u64::MAX),
        writes: (standin.writes()? - writes) as u64,
    })
}

/// Scenario 6: first and no-op pass of `sync -f` over 100 AppImports, `runs` times, and the
/// baseline script's first pass over the same apps `base_runs` times, interleaved (run 1 of
/// each, then run 2, ...) so that a busy spell of the shared machine weighs on both sides.
pub fn scenario(runs: usize, base_runs: usize) -> Result<String, Fail> {
    eprintln!("bench: scenario cli, {APPS} apps ({runs} runs, baseline {base_runs} runs)");
    let apps = AppRepo::new("cli100", APPS)?;
    let mut first = Vec::new();
    let mut noop = Vec::new();
    let mut base = Vec::new();
    let mut per_app = Vec::new();
    for run in 0..runs.max(base_runs) {
        if run < runs {
            let mut standin = StandInProc::start()?;
            let dir = tempfile::tempdir()?;
            std::fs::write(dir.path().join("apps.yaml"), manifest(&standin, &apps))?;
            first.push(sync(dir.path(), &mut standin, &apps.git_url)?);
            noop.push(sync(dir.path(), &mut standin, &apps.git_url)?);
        }
        if run < base_runs {
            let standin = StandInProc::start()?;
            let start = Instant::now();
            for name in &apps.names {
                per_app.push(baseline(&standin, &apps.git_url, name, name, false)?);
            }
            base.push(start.elapsed());
        }
    }
    Ok(table(runs, &first, &noop, &base, &per_app))
}

fn table(
    runs: usize,
    first: &[CliPass],
    noop: &[CliPass],
    base: &[Duration],
    per_app: &[Duration],
) -> String {
    let spread = |p: &[CliPass]| Spread::of(&p.iter().map(|p| p.wall).collect::<Vec<_>>());
    let counts = |p: &[CliPass], f: fn(&CliPass) -> u64| {
        let v: Vec<u64> = p.iter().map(f).collect();
        let (lo, hi) = (v.iter().min(), v.iter().max());
        match (lo, hi) {
            (Some(lo), Some(hi)) if lo != hi => format!("{} ({lo}–{hi})", median_u64(&v)),
            _ => median_u64(&v).to_string(),
        }
    };
    let (f, n, b) = (spread(first), spread(noop), Spread::of(base));
    let ratio = |x: Duration, y: Duration| x.as_secs_f64() / y.as_secs_f64().max(1e-9);
    let first_ratio = ratio(b.median, f.median);
    let noop_listings = noop.iter().map(|p| p.listings).max().unwrap_or(u64::MAX);
    let met = |ok: bool| if ok { "yes" } else { "**no**" };
    let mut md = format!(
        "### 7. The command line at {APPS} apps (`sync -f`, {runs} runs; baseline {} runs)\n\n\
         | Pass | Wall median (min–max) | Ref listings | Fetches | ToolJet writes |\n|---|---|---|---|---|\n",
        base.len()
    );
    for (name, pass, s) in [("first pass", first, f), ("nothing new", noop, n)] {
        let _ = writeln!(
            md,
            "| `sync -f`: {name} | {} | {} | {} | {} |",
            s.show(),
            counts(pass, |p| p.listings),
            counts(pass, |p| p.fetches),
            counts(pass, |p| p.writes),
        );
    }
    let _ = writeln!(
        md,
        "| Baseline script: first pass (per app {}) | {} | {APPS} shallow clones | {APPS} | {APPS} |\n",
        Spread::of(per_app).show(),
        b.show()
    );
    let _ = writeln!(
        md,
        "| Goal (issue 20) | Result | Met |\n|---|---|---|\n\
         | First pass at least 30× faster than the script (medians) | {first_ratio:.1}× | {} |\n\
         | Nothing new: at most 1 ref listing for the repository | {noop_listings} (the highest of {runs} runs) | {} |",
        met(first_ratio >= 30.0),
        met(noop_listings <= 1),
    );
    md
}
