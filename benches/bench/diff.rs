//! Scenario 5: the semantic diff of the largest fixture bundle against an edited copy that a
//! re-export also re-keyed (every id and timestamp new), in process, no I/O.

use std::time::{Duration, Instant};

use git_fixtures::tooljet::{
    BASE64, CODE_EXPLAINER, CREDIT_CARD, ORDERS_DASHBOARD, ORDERS_REPORT, rekeyed,
};
use serde_json::{Value, json};
use tooljet_operator::diff::{diff, same_app};

use crate::Fail;
use crate::measure::{Spread, ms};

/// Goal of issue 17: a diff of the largest fixture in under 50 ms.
const GOAL: Duration = Duration::from_millis(50);
/// Diffs per `--runs` unit (each one is a few hundred microseconds).
const PER_RUN: usize = 200;

/// The edit: a component's text, a query's option, the icon, and a new component.
fn edited(bundle: &[u8]) -> Result<Value, Fail> {
    let mut b: Value = serde_json::from_slice(&rekeyed(bundle, 17))?;
    let app = &mut b["app"][0]["definition"]["appV2"];
    app["icon"] = json!("bench");
    let components = app["components"].as_array_mut().ok_or("no components")?;
    let mut copy = components.first().ok_or("no component")?.clone();
    copy["id"] = json!("0e0e0e0e-0000-4000-8000-0000000000b1");
    copy["name"] = json!("bench_component");
    components.push(copy);
    if let Some(c) = components
        .iter_mut()
        .find(|c| c["properties"]["text"].is_object())
    {
        c["properties"]["text"]["value"] = json!("edited by the benchmark");
    }
    if let Some(q) = app["dataQueries"]
        .as_array_mut()
        .and_then(|q| q.first_mut())
    {
        q["options"]["runOnPageLoad"] = json!(false);
    }
    Ok(b)
}

/// Runs the scenario; returns its section of BENCHMARKS.md.
pub fn scenario(runs: usize) -> Result<String, Fail> {
    let fixtures = [
        ("ai-powered-code-explainer.json", CODE_EXPLAINER.1),
        ("base64-encoder-decoder.json", BASE64.1),
        ("credit-card-test-data-generator.json", CREDIT_CARD.1),
        ("orders-dashboard.json", ORDERS_DASHBOARD.1),
        ("orders-report.json", ORDERS_REPORT.1),
    ];
    let (name, bytes) = fixtures
        .into_iter()
        .max_by_key(|(_, b)| b.len())
        .ok_or("no fixture")?;
    let a: Value = serde_json::from_slice(bytes)?;
    let b = edited(bytes)?;
    let result = diff(&a, &b)?;
    if result.is_empty() || same_app(&a, &b)? {
        return Err("the edited copy shows no change: the scenario measures nothing".into());
    }
    let iterations = runs * PER_RUN;
    let time = |f: &dyn Fn() -> Result<(), Fail>| -> Result<Spread, Fail> {
        let mut samples = Vec::with_capacity(iterations);
        for _ in 0..iterations {
            let t = Instant::now();
            f()?;
            samples.push(t.elapsed());
        }
        Ok(Spread::of(&samples))
    };
    let d = time(&|| {
        std::hint::black_box(diff(&a, &b)?);
        Ok(())
    })?;
    let same = time(&|| {
        std::hint::black_box(same_app(&a, &b)?);
        Ok(())
    })?;
    let render = time(&|| {
        std::hint::black_box((result.summary(), result.text(), result.markdown()));
        Ok(())
    })?;
    let met = if d.median < GOAL { "yes" } else { "**no**" };
    Ok(format!(
        "### 5. What changes inside an app (`diff`)\n\n\
         Run: `cargo bench --bench bench -- diff --runs {runs}` ({iterations} iterations of each \
         row, one thread, in process).\n\n\
         | What | Median (min–max) | Goal | Met |\n|---|---|---|---|\n\
         | `diff::diff` of `{name}` ({} bytes, the largest fixture) against an edited copy with every id and timestamp regenerated: both normalised and compared | {} | < {} | {met} |\n\
         | `diff::same_app` of the same two (the export issue's \"is this a change?\") | {} | – | – |\n\
         | Rendering that diff: `summary()` + `text()` + `markdown()` | {} | – | – |\n\n\
         The diff found: {}.\n\nMachine:\n\n{}",
        bytes.len(),
        d.show(),
        ms(GOAL),
        same.show(),
        render.show(),
        result.summary(),
        crate::measure::machine(),
    ))
}
