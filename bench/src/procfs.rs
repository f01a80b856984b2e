//! What the benchmark reads about a process from `/proc`: CPU time (user + system, all
//! threads, including exited ones) and resident memory, plus the machine's load average.
//! Linux only; every reader returns `None` where `/proc` does not answer.

/// Clock ticks per second of `/proc/<pid>/stat` times (`AT_CLKTCK` from the aux vector;
/// 100 on every Linux we know of, which is also the fallback).
pub fn clock_ticks() -> u64 {
    const AT_CLKTCK: u64 = 17;
    let Ok(raw) = std::fs::read("/proc/self/auxv") else { return 100 };
    let words: Vec<u64> = raw
        .chunks_exact(8)
        .map(|c| {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            u64::from_ne_bytes(b)
        })
        .collect();
    words.chunks_exact(2).find(|kv| kv[0] == AT_CLKTCK).map_or(100, |kv| kv[1].max(1))
}

/// CPU time of a process in clock ticks, all threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTicks {
    pub user: u64,
    /// In the kernel on the process's behalf (its system calls: on loopback, each socket write
    /// also runs the receiving side's TCP processing).
    pub system: u64,
}

impl CpuTicks {
    pub fn total(self) -> u64 {
        self.user + self.system
    }

    /// What was spent between `earlier` and `self`.
    pub fn since(self, earlier: CpuTicks) -> CpuTicks {
        CpuTicks { user: self.user.saturating_sub(earlier.user), system: self.system.saturating_sub(earlier.system) }
    }
}

/// User and system CPU time of a process in clock ticks.
pub fn cpu_ticks(pid: u32) -> Option<CpuTicks> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_cpu_ticks(&stat)
}

fn parse_cpu_ticks(stat: &str) -> Option<CpuTicks> {
    // The command name (field 2) may contain spaces and parentheses: fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // rest starts at field 3 (state); utime and stime are fields 14 and 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(CpuTicks { user: utime, system: stime })
}

/// Resident memory of a process in KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rss {
    /// All of it (`VmRSS`): anonymous memory plus the pages of mapped files (the binary's code
    /// and data above all) and shared memory.
    pub total: u64,
    /// Anonymous memory alone (`RssAnon`): the heap, the stacks; what the process allocated.
    pub anon: u64,
}

/// Resident memory (`VmRSS`, `RssAnon`) from one read of `/proc/<pid>/status`.
pub fn rss(pid: u32) -> Option<Rss> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_rss(&status)
}

fn parse_rss(status: &str) -> Option<Rss> {
    Some(Rss { total: status_field(status, "VmRSS:")?, anon: status_field(status, "RssAnon:").unwrap_or(0) })
}

/// Resident set size in KiB (`VmRSS`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    rss(pid).map(|r| r.total)
}

fn status_field(status: &str, name: &str) -> Option<u64> {
    status.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// `/proc/loadavg`'s first three numbers, e.g. `"0.52 0.31 0.20"`.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_an_awkward_name() {
        let stat = "4242 (tok (io) x) S 1 4242 4242 0 -1 4194560 500 0 0 0 250 37 0 0 20 0 3 0 1000 1 2 3";
        assert_eq!(parse_cpu_ticks(stat), Some(CpuTicks { user: 250, system: 37 }));
        assert_eq!(parse_cpu_ticks(stat).map(CpuTicks::total), Some(287));
        assert_eq!(parse_cpu_ticks("garbage"), None);
    }

    #[test]
    fn reads_this_process() {
        let me = std::process::id();
        assert!(rss_kib(me).is_some_and(|k| k > 0));
        assert!(cpu_ticks(me).is_some());
        assert_eq!(status_field("Name:\tx\nVmRSS:\t  1234 kB\n", "VmRSS:"), Some(1234));
        assert!(clock_ticks() >= 1);
        let r = rss(me).unwrap_or_default();
        assert!(r.anon > 0 && r.anon <= r.total, "{r:?}");
    }

    #[test]
    fn parses_total_and_anonymous_memory() {
        let status = "Name:\tx\nVmRSS:\t  1234 kB\nRssAnon:\t   1000 kB\nRssFile:\t    234 kB\n";
        assert_eq!(parse_rss(status), Some(Rss { total: 1234, anon: 1000 }));
        assert_eq!(parse_rss("VmRSS:\t 7 kB\n"), Some(Rss { total: 7, anon: 0 }), "a kernel without RssAnon");
        assert_eq!(parse_rss("Name:\tx\n"), None);
    }
}
