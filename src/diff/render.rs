//! An [`AppDiff`] for people: a one-line summary (bounded, for status and Events), a full text
//! rendering (command line) and markdown (a pull-request comment, one `<details>` per app).

use std::fmt::Write as _;

use serde_json::Value;

use super::compare::{AppDiff, Change, ComponentDiff, EventDiff, Status};

/// Longest value shown in a change.
const VALUE_CHARS: usize = 80;
/// Characters kept before the first difference when a long value is shown around it.
const CONTEXT_CHARS: usize = 20;
/// The summary never exceeds this many characters.
pub const SUMMARY_MAX_CHARS: usize = 300;

/// `s` cut to at most `max` characters, `…` marking the cut.
pub(crate) fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// ToolJet wraps most settings as `{"value": X}` (with `fxActive` when it is an expression
/// toggle); show X.
fn unwrap(v: &Value) -> &Value {
    match v {
        Value::Object(o)
            if o.contains_key("value") && o.keys().all(|k| k == "value" || k == "fxActive") =>
        {
            &o["value"]
        }
        _ => v,
    }
}

fn json(v: &Value) -> String {
    serde_json::to_string(unwrap(v)).unwrap_or_default()
}

/// A value as compact JSON, shortened.
pub(crate) fn short(v: &Value) -> String {
    shorten(&json(v), VALUE_CHARS)
}

/// Both values shortened; when both are long and start alike, both are shown from a little
/// before where they first differ, so the shortened forms still show the difference.
pub(crate) fn short_pair(a: &Value, b: &Value) -> (String, String) {
    let (x, y) = (json(a), json(b));
    if x.chars().count() <= VALUE_CHARS && y.chars().count() <= VALUE_CHARS {
        return (x, y);
    }
    let common = x.chars().zip(y.chars()).take_while(|(p, q)| p == q).count();
    if common <= VALUE_CHARS / 2 {
        return (shorten(&x, VALUE_CHARS), shorten(&y, VALUE_CHARS));
    }
    let skip = common - CONTEXT_CHARS;
    let from = |s: &str| {
        let rest: String = s.chars().skip(skip).collect();
        format!("…{}", shorten(&rest, VALUE_CHARS - 1))
    };
    (from(&x), from(&y))
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

impl AppDiff {
    /// How many event handlers changed anywhere in the app.
    fn event_count(&self) -> usize {
        self.events.len()
            + self
                .pages
                .iter()
                .map(|p| {
                    p.events.len() + p.components.iter().map(|c| c.events.len()).sum::<usize>()
                })
                .sum::<usize>()
            + self.queries.iter().map(|q| q.events.len()).sum::<usize>()
    }

    /// One line, e.g. `2 pages, 5 components, 1 query changed`; `no change` when empty. At most
    /// [`SUMMARY_MAX_CHARS`] characters (it goes into status and Events).
    pub fn summary(&self) -> String {
        if self.is_empty() {
            return "no change".to_string();
        }
        let components: usize = self.pages.iter().map(|p| p.components.len()).sum();
        let parts: Vec<String> = [
            (self.settings.len(), "setting", "settings"),
            (self.pages.len(), "page", "pages"),
            (components, "component", "components"),
            (self.queries.len(), "query", "queries"),
            (self.event_count(), "event", "events"),
            (self.data_sources.len(), "data source", "data sources"),
        ]
        .into_iter()
        .filter(|(n, _, _)| *n > 0)
        .map(|(n, one, many)| plural(n, one, many))
        .collect();
        shorten(&format!("{} changed", parts.join(", ")), SUMMARY_MAX_CHARS)
    }

    /// The whole diff as indented text, one change per line.
    pub fn text(&self) -> String {
        let mut out = format!("app {}: {}\n", quoted(&self.app), self.summary());
        if !self.settings.is_empty() {
            out.push_str("  settings\n");
            changes_text(&mut out, &self.settings, 4);
        }
        for p in &self.pages {
            let _ = match (&p.status, &p.renamed_from) {
                (_, Some(old)) => writeln!(
                    out,
                    "  ~ page {} (renamed from {})",
                    quoted(&p.name),
                    quoted(old)
                ),
                (s, None) => writeln!(out, "  {} page {}", mark(*s), quoted(&p.name)),
            };
            changes_text(&mut out, &p.changes, 6);
            events_text(&mut out, &p.events, 6);
            for c in &p.components {
                component_text(&mut out, c);
            }
        }
        if !self.queries.is_empty() {
            out.push_str("  queries\n");
        }
        for q in &self.queries {
            let _ = writeln!(
                out,
                "    {} query {} ({})",
                mark(q.status),
                q.name,
                source(&q.kind, &q.data_source)
            );
            changes_text(&mut out, &q.changes, 8);
            events_text(&mut out, &q.events, 8);
        }
        if !self.data_sources.is_empty() {
            out.push_str("  data sources\n");
        }
        for d in &self.data_sources {
            let _ = writeln!(out, "    {} {} ({})", mark(d.status), d.name, d.kind);
            changes_text(&mut out, &d.changes, 8);
        }
        if !self.events.is_empty() {
            out.push_str("  other events\n");
            events_text(&mut out, &self.events, 4);
        }
        out
    }

    /// A collapsible block for a pull-request comment: the summary visible, the changes inside.
    pub fn markdown(&self) -> String {
        let mut out = format!(
            "<details>\n<summary><b>{}</b>: {}</summary>\n\n",
            html(&self.app),
            html(&self.summary())
        );
        if self.is_empty() {
            out.push_str("Nothing changes inside the app.\n");
        }
        if !self.settings.is_empty() {
            out.push_str("**Settings**\n\n");
            changes_md(&mut out, &self.settings, 0);
            out.push('\n');
        }
        for p in &self.pages {
            let _ = match (&p.status, &p.renamed_from) {
                (_, Some(old)) => writeln!(
                    out,
                    "**Page {}** (renamed from {})\n",
                    code(&p.name),
                    code(old)
                ),
                (s, None) => writeln!(out, "**Page {}** ({})\n", code(&p.name), word(*s)),
            };
            changes_md(&mut out, &p.changes, 0);
            events_md(&mut out, &p.events, 0);
            for c in &p.components {
                let _ = writeln!(
                    out,
                    "- {} component {} ({})",
                    word(c.status),
                    code(&c.name),
                    html(&c.component_type)
                );
                changes_md(&mut out, &c.changes, 1);
                events_md(&mut out, &c.events, 1);
            }
            out.push('\n');
        }
        if !self.queries.is_empty() {
            out.push_str("**Queries**\n\n");
            for q in &self.queries {
                let _ = writeln!(
                    out,
                    "- {} query {} ({})",
                    word(q.status),
                    code(&q.name),
                    html(&source(&q.kind, &q.data_source))
                );
                changes_md(&mut out, &q.changes, 1);
                events_md(&mut out, &q.events, 1);
            }
            out.push('\n');
        }
        if !self.data_sources.is_empty() {
            out.push_str("**Data sources**\n\n");
            for d in &self.data_sources {
                let _ = writeln!(
                    out,
                    "- {} data source {} ({})",
                    word(d.status),
                    code(&d.name),
                    html(&d.kind)
                );
                changes_md(&mut out, &d.changes, 1);
            }
            out.push('\n');
        }
        if !self.events.is_empty() {
            out.push_str("**Other events**\n\n");
            events_md(&mut out, &self.events, 0);
            out.push('\n');
        }
        out.push_str("</details>\n");
        out
    }
}

fn source(kind: &str, data_source: &str) -> String {
    match (kind.is_empty(), data_source.is_empty()) {
        (_, true) => kind.to_string(),
        (true, false) => data_source.to_string(),
        (false, false) => format!("{kind}, {data_source}"),
    }
}

fn mark(s: Status) -> char {
    match s {
        Status::Added => '+',
        Status::Removed => '-',
        Status::Changed => '~',
    }
}

fn word(s: Status) -> &'static str {
    match s {
        Status::Added => "added",
        Status::Removed => "removed",
        Status::Changed => "changed",
    }
}

/// A name in double quotes, control characters escaped.
fn quoted(s: &str) -> String {
    format!("{s:?}")
}

fn change_line(c: &Change) -> String {
    match (&c.from, &c.to) {
        (Some(f), Some(t)) => format!("~ {}: {f} → {t}", c.field),
        (None, Some(t)) => format!("+ {}: {t}", c.field),
        (Some(f), None) => format!("- {}: {f}", c.field),
        (None, None) => format!("~ {}", c.field),
    }
}

fn changes_text(out: &mut String, changes: &[Change], indent: usize) {
    for c in changes {
        let _ = writeln!(out, "{:indent$}{}", "", change_line(c));
    }
}

fn events_text(out: &mut String, events: &[EventDiff], indent: usize) {
    for e in events {
        let _ = writeln!(
            out,
            "{:indent$}{} event {}: {}",
            "",
            mark(e.status),
            e.event,
            e.action
        );
        changes_text(out, &e.changes, indent + 4);
    }
}

fn component_text(out: &mut String, c: &ComponentDiff) {
    let _ = writeln!(
        out,
        "      {} component {} ({})",
        mark(c.status),
        c.name,
        c.component_type
    );
    changes_text(out, &c.changes, 10);
    events_text(out, &c.events, 10);
}

/// Text safe inside HTML and markdown prose.
pub(crate) fn html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '*' | '_' | '`' | '[' | ']' | '\\' | '|' => {
                out.push('\\');
                out.push(ch);
            }
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A markdown code span holding `s` whatever backticks it contains.
fn code(s: &str) -> String {
    let s: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let longest = s.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest + 1);
    let pad = if s.starts_with('`') || s.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{s}{pad}{fence}")
}

fn changes_md(out: &mut String, changes: &[Change], depth: usize) {
    let indent = "  ".repeat(depth);
    for c in changes {
        let _ = match (&c.from, &c.to) {
            (Some(f), Some(t)) => writeln!(
                out,
                "{indent}- {}: {} → {}",
                code(&c.field),
                code(f),
                code(t)
            ),
            (None, Some(t)) => writeln!(out, "{indent}- {} added: {}", code(&c.field), code(t)),
            (Some(f), None) => {
                writeln!(
                    out,
                    "{indent}- {} removed (was {})",
                    code(&c.field),
                    code(f)
                )
            }
            (None, None) => writeln!(out, "{indent}- {}", code(&c.field)),
        };
    }
}

fn events_md(out: &mut String, events: &[EventDiff], depth: usize) {
    let indent = "  ".repeat(depth);
    for e in events {
        let _ = writeln!(
            out,
            "{indent}- {} event {}: {}",
            word(e.status),
            code(&e.event),
            code(&e.action)
        );
        changes_md(out, &e.changes, depth + 1);
    }
}
