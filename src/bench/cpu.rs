//! Where a run's CPU goes: the server's threads by name, the load tool itself and the whole
//! machine, read from `/proc` before and after the run (Linux only; elsewhere there is no
//! figure). Thread CPU comes from `/proc/PID/task/TID/schedstat` (nanoseconds of run time),
//! context switches from each thread's `status`, the machine's busy and idle time and its
//! context switches from `/proc/stat`.

use std::collections::BTreeMap;

use serde::Serialize;

/// `/proc/stat` counts in USER_HZ, which is 100 on every Linux architecture this builds for.
const TICK_NS: f64 = 10_000_000.0;

/// One reading of a process's threads, by thread id. Growth is taken thread by thread and
/// only then summed by [`group`]: a sum taken by name first would shrink when a thread of
/// that name ends (a runtime shut down in between), hiding the work of the others.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Threads(pub BTreeMap<u32, Thread>);

/// One thread's name group, run time and context switches.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Thread {
    pub group: String,
    pub run_ns: u64,
    pub switches: u64,
}

/// One reading of the whole machine.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Machine {
    pub busy_ticks: u64,
    pub idle_ticks: u64,
    pub switches: u64,
}

/// A reading taken before a run, to compare with one after it.
#[derive(Debug, Clone)]
pub struct Sample {
    server_pid: Option<u32>,
    server: Option<Threads>,
    load_tool: Option<Threads>,
    machine: Option<Machine>,
}

/// CPU per operation of a run, in milliseconds (switches in counts).
#[derive(Debug, Serialize, PartialEq)]
pub struct PerOperation {
    /// The server's threads by name (`tokio-rt-worker`, `argon2`, `sqlx-sqlite-worker`, ...).
    pub server_ms: BTreeMap<String, f64>,
    pub server_switches: BTreeMap<String, f64>,
    /// This load tool, all its threads.
    pub load_tool_ms: Option<f64>,
    /// Every process on the machine (the server, the load tool, a database, anything else).
    pub machine_busy_ms: Option<f64>,
    pub machine_idle_ms: Option<f64>,
    pub machine_switches: Option<f64>,
}

/// The name a thread is counted under: its name without a trailing `-N` (`argon2-1` is
/// `argon2`). The kernel keeps 15 bytes of a name: `sqlx-sqlite-wor` is sqlx's worker.
pub fn group(name: &str) -> String {
    let name = name.trim();
    let name = match name.rsplit_once('-') {
        Some((head, tail))
            if !head.is_empty() && !tail.is_empty() && tail.bytes().all(|b| b.is_ascii_digit()) =>
        {
            head
        }
        _ => name,
    };
    match name {
        "sqlx-sqlite-wor" => "sqlx-sqlite-worker".to_owned(),
        other => other.to_owned(),
    }
}

/// Run time in nanoseconds: the first field of a `schedstat` file.
fn parse_schedstat(text: &str) -> Option<u64> {
    text.split_whitespace().next()?.parse().ok()
}

/// The number in field `name` of a `/proc/PID/status` text (`VmRSS:   20656 kB` is 20656).
pub fn status_field(status: &str, name: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Voluntary plus involuntary context switches from a `status` file.
fn parse_switches(status: &str) -> Option<u64> {
    Some(
        status_field(status, "voluntary_ctxt_switches")?
            + status_field(status, "nonvoluntary_ctxt_switches")?,
    )
}

/// The machine's busy and idle ticks (`cpu` line: idle and iowait are idle, steal is
/// neither) and its context switches (`ctxt`) from `/proc/stat`.
fn parse_machine(stat: &str) -> Option<Machine> {
    let cpu = stat.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: Vec<u64> = cpu
        .split_whitespace()
        .skip(1)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    // user nice system idle iowait irq softirq steal (guest time is inside user already).
    // Steal is time another guest of the host had this machine's cores: neither busy nor idle.
    let field = |i: usize| ticks.get(i).copied().unwrap_or(0);
    let idle = ticks.get(3)? + field(4);
    let busy = field(0) + field(1) + field(2) + field(5) + field(6);
    let switches = stat
        .lines()
        .find_map(|l| l.strip_prefix("ctxt "))?
        .trim()
        .parse()
        .ok()?;
    Some(Machine {
        busy_ticks: busy,
        idle_ticks: idle,
        switches,
    })
}

/// The threads of process `pid` (`"self"` for this one), or none when `/proc` cannot be read.
fn threads(pid: &str) -> Option<Threads> {
    let mut out = Threads::default();
    for entry in std::fs::read_dir(format!("/proc/{pid}/task")).ok()?.flatten() {
        let Some(tid) = entry.file_name().to_str().and_then(|t| t.parse().ok()) else {
            continue;
        };
        let dir = entry.path();
        // A thread may end between the listing and the reads: it is left out.
        let (Ok(name), Ok(schedstat), Ok(status)) = (
            std::fs::read_to_string(dir.join("comm")),
            std::fs::read_to_string(dir.join("schedstat")),
            std::fs::read_to_string(dir.join("status")),
        ) else {
            continue;
        };
        out.0.insert(
            tid,
            Thread {
                group: group(&name),
                run_ns: parse_schedstat(&schedstat).unwrap_or(0),
                switches: parse_switches(&status).unwrap_or(0),
            },
        );
    }
    Some(out)
}

fn machine() -> Option<Machine> {
    parse_machine(&std::fs::read_to_string("/proc/stat").ok()?)
}

impl Sample {
    pub fn take(server_pid: Option<u32>) -> Self {
        // The kernel adds a running thread's time to its `schedstat` at a tick or a switch. A
        // yield is a switch (or at least brings the count up to date) for the calling thread,
        // which in a short run in one thread may be the only one that ran: without it, such a
        // run (six discovery requests in the smoke test) read as no CPU at all.
        std::thread::yield_now();
        Self {
            server_pid,
            server: server_pid.and_then(|pid| threads(&pid.to_string())),
            load_tool: threads("self"),
            machine: machine(),
        }
    }

    /// What happened since `self` (to the same server), per operation; none without operations.
    pub fn since(&self, operations: u64) -> Option<PerOperation> {
        per_operation(self, &Self::take(self.server_pid), operations)
    }
}

/// Growth of `field` from `before` to `after`, thread by thread, summed by group, divided by
/// `operations` and scaled by `unit`. A thread that is gone afterwards is left out; one that
/// is new counts from zero.
fn growth(
    before: &Threads,
    after: &Threads,
    field: fn(&Thread) -> u64,
    operations: f64,
    unit: f64,
) -> BTreeMap<String, f64> {
    let mut sums: BTreeMap<String, u64> = BTreeMap::new();
    for (tid, thread) in &after.0 {
        let was = before.0.get(tid).map_or(0, field);
        *sums.entry(thread.group.clone()).or_default() += field(thread).saturating_sub(was);
    }
    sums.into_iter()
        .map(|(group, value)| (group, value as f64 / unit / operations))
        .filter(|(_, v)| *v > 0.0)
        .collect()
}

fn per_operation(before: &Sample, after: &Sample, operations: u64) -> Option<PerOperation> {
    if operations == 0 {
        return None;
    }
    let n = operations as f64;
    let (server_ms, server_switches) = match (&before.server, &after.server) {
        (Some(b), Some(a)) => (
            growth(b, a, |t| t.run_ns, n, 1e6),
            growth(b, a, |t| t.switches, n, 1.0),
        ),
        _ => Default::default(),
    };
    let load_tool_ms = match (&before.load_tool, &after.load_tool) {
        (Some(b), Some(a)) => Some(growth(b, a, |t| t.run_ns, n, 1e6).values().sum()),
        _ => None,
    };
    let machine = before.machine.zip(after.machine);
    let delta = |f: fn(&Machine) -> u64| machine.map(|(b, a)| f(&a).saturating_sub(f(&b)) as f64 / n);
    Some(PerOperation {
        server_ms,
        server_switches,
        load_tool_ms,
        machine_busy_ms: delta(|m| m.busy_ticks).map(|t| t * TICK_NS / 1e6),
        machine_idle_ms: delta(|m| m.idle_ticks).map(|t| t * TICK_NS / 1e6),
        machine_switches: delta(|m| m.switches),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_are_grouped_by_name_without_their_number() {
        assert_eq!(group("argon2-0\n"), "argon2");
        assert_eq!(group("argon2-11"), "argon2");
        assert_eq!(group("tokio-rt-worker"), "tokio-rt-worker");
        assert_eq!(group("sqlx-sqlite-wor"), "sqlx-sqlite-worker");
        assert_eq!(group("portcullis"), "portcullis");
        assert_eq!(group("-1"), "-1");
        assert_eq!(group("a-"), "a-");
        assert_eq!(group("pool-2a"), "pool-2a");
    }

    #[test]
    fn proc_files_are_read() {
        assert_eq!(parse_schedstat("194720061 39705944 362\n"), Some(194_720_061));
        assert_eq!(parse_schedstat(""), None);
        let status = "Name:\tx\nvoluntary_ctxt_switches:\t44\nnonvoluntary_ctxt_switches:\t15\n";
        assert_eq!(parse_switches(status), Some(59));
        assert_eq!(parse_switches("Name:\tx\n"), None);
        let memory = "VmHWM:\t   66256 kB\nVmRSS:\t   20656 kB\n";
        assert_eq!(status_field(memory, "VmRSS"), Some(20656));
        assert_eq!(status_field(memory, "VmHWM"), Some(66256));
        assert_eq!(status_field(memory, "VmRS"), None);
        assert_eq!(status_field(memory, "VmSwap"), None);
        let stat = "cpu  100 5 50 800 20 1 2 3 9 0\ncpu0 1 2 3 4 5 6 7 8\nctxt 12345\nbtime 1\n";
        assert_eq!(
            parse_machine(stat),
            Some(Machine {
                busy_ticks: 158,
                idle_ticks: 820,
                switches: 12345
            })
        );
        assert_eq!(parse_machine("cpu  x\nctxt 1\n"), None);
        assert_eq!(parse_machine("cpu  1 2 3 4\n"), None);
    }

    #[test]
    fn growth_is_per_operation() {
        let threads = |list: &[(u32, &str, u64)]| {
            Threads(
                list.iter()
                    .map(|&(tid, group, run_ns)| {
                        let thread = Thread {
                            group: group.to_owned(),
                            run_ns,
                            switches: run_ns / 1_000_000,
                        };
                        (tid, thread)
                    })
                    .collect(),
            )
        };
        let before = Sample {
            server_pid: Some(1),
            // Thread 3 ends during the run: its name's sum shrinks, thread 1's work still counts.
            server: Some(threads(&[
                (1, "tokio-rt-worker", 1_000_000),
                (2, "gone", 5_000_000),
                (3, "tokio-rt-worker", 30_000_000),
            ])),
            load_tool: Some(threads(&[(10, "main", 0)])),
            machine: Some(Machine {
                busy_ticks: 10,
                idle_ticks: 10,
                switches: 100,
            }),
        };
        let after = Sample {
            server_pid: Some(1),
            server: Some(threads(&[
                (1, "tokio-rt-worker", 21_000_000),
                (4, "argon2", 40_000_000),
            ])),
            load_tool: Some(threads(&[
                (10, "main", 2_000_000),
                (11, "tokio-rt-worker", 2_000_000),
            ])),
            machine: Some(Machine {
                busy_ticks: 16,
                idle_ticks: 12,
                switches: 300,
            }),
        };
        let got = per_operation(&before, &after, 10).expect("operations");
        assert_eq!(got.server_ms.get("tokio-rt-worker"), Some(&2.0));
        assert_eq!(got.server_ms.get("argon2"), Some(&4.0));
        assert!(!got.server_ms.contains_key("gone"));
        assert_eq!(got.server_switches.get("tokio-rt-worker"), Some(&2.0));
        assert_eq!(got.load_tool_ms, Some(0.4));
        assert_eq!(got.machine_busy_ms, Some(6.0));
        assert_eq!(got.machine_idle_ms, Some(2.0));
        assert_eq!(got.machine_switches, Some(20.0));
        assert_eq!(per_operation(&before, &after, 0), None);
    }
}
