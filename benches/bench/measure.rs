//! Medians, memory of this process, and a description of the machine.

use std::time::Duration;

/// Median, min and max of some durations.
#[derive(Clone, Copy, Debug, Default)]
pub struct Spread {
    pub median: Duration,
    pub min: Duration,
    pub max: Duration,
    pub n: usize,
}

impl Spread {
    pub fn of(samples: &[Duration]) -> Spread {
        let mut s = samples.to_vec();
        s.sort();
        let n = s.len();
        if n == 0 {
            return Spread::default();
        }
        let median = if n % 2 == 1 {
            s[n / 2]
        } else {
            (s[n / 2 - 1] + s[n / 2]) / 2
        };
        Spread {
            median,
            min: s[0],
            max: s[n - 1],
            n,
        }
    }

    /// `median (min–max)` in a unit that suits the magnitude.
    pub fn show(&self) -> String {
        format!("{} ({}–{})", ms(self.median), ms(self.min), ms(self.max))
    }
}

/// Milliseconds with a precision that suits the magnitude.
pub fn ms(d: Duration) -> String {
    let v = d.as_secs_f64() * 1000.0;
    if v >= 100.0 {
        format!("{v:.0} ms")
    } else if v >= 10.0 {
        format!("{v:.1} ms")
    } else {
        format!("{v:.2} ms")
    }
}

/// Median of plain numbers (counts per run).
pub fn median_u64(values: &[u64]) -> u64 {
    let mut v = values.to_vec();
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

/// A field of /proc/self/status in KiB (`VmHWM` is the peak resident set, `VmRSS` the current).
pub fn status_kib(field: &str) -> Option<u64> {
    status_kib_of("self", field)
}

/// The same for another process (`pid` as a string, or `self`).
pub fn status_kib_of(pid: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
}

/// Resets the peak resident set (`VmHWM`) to the current one, so a scenario measures its own
/// peak even after others ran in this process. Linux ≥ 4.0.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Cores, memory, CPU model, kernel and git version, as a Markdown list.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")?
                .split_once(':')
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    let mem_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|r| r.split_whitespace().next()?.parse::<u64>().ok())
        })
        .unwrap_or(0);
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let git = std::process::Command::new("git")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    format!(
        "- CPU: {model}, {cores} cores available (`nproc`)\n- Memory: {:.1} GiB\n- Linux {}, {git}\n- Built with `cargo bench` (release profile: thin LTO)\n",
        mem_kib as f64 / 1024.0 / 1024.0,
        kernel.trim(),
    )
}

/// CPU time of process `pid` (a number, or `self`) in seconds: its own (user + system) and that
/// of its reaped children (`cutime` + `cstime`), from `/proc/<pid>/stat` (in USER_HZ = 100 ticks
/// a second, fixed by the kernel's ABI).
pub fn cpu_seconds(pid: &str) -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(4)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    let [utime, stime, cutime, cstime] = fields[..] else {
        return None;
    };
    Some((
        (utime + stime) as f64 / 100.0,
        (cutime + cstime) as f64 / 100.0,
    ))
}
