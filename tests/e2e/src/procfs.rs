//! What the benchmarks read about processes from `/proc`: CPU time and memory.

use std::collections::HashMap;

/// CPU seconds (user + system) `root` has used so far; with `descendants`, also every process it started that is
/// still running (PostgreSQL's backends, the Kubernetes control plane's servers) and those they waited for.
pub fn cpu_seconds(root: u32, descendants: bool) -> f64 {
    struct Usage {
        parent: u32,
        own: u64,
        waited_children: u64,
    }
    let mut usage: HashMap<u32, Usage> = HashMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // The command name is in parentheses and may hold spaces: fields are counted after its end.
        let Some((_, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let number = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
        // ppid, utime, stime, cutime, cstime: fields 4 and 14-17 of proc(5), 1 and 11-14 here.
        let (Some(parent), Some(user), Some(system)) = (number(1), number(11), number(12)) else {
            continue;
        };
        let waited_children = number(13).unwrap_or(0) + number(14).unwrap_or(0);
        usage.insert(
            pid,
            Usage {
                parent: u32::try_from(parent).unwrap_or(0),
                own: user + system,
                waited_children,
            },
        );
    }
    let counted = |pid: u32| {
        let mut at = pid;
        loop {
            if at == root {
                return true;
            }
            if !descendants {
                return false;
            }
            match usage.get(&at) {
                Some(process) if process.parent != 0 && process.parent != at => at = process.parent,
                _ => return false,
            }
        }
    };
    let ticks: u64 = usage
        .iter()
        .filter(|(pid, _)| counted(**pid))
        .map(|(_, process)| {
            process.own
                + if descendants {
                    process.waited_children
                } else {
                    0
                }
        })
        .sum();
    // SAFETY: sysconf only reads a configuration value.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1);
    ticks as f64 / per_second as f64
}

/// Which memory figure of `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy)]
pub enum Memory {
    /// `VmRSS`: resident now.
    Resident,
    /// `VmHWM`: the most resident so far.
    Peak,
}

/// The figure in KiB; 0 when the process is gone.
pub fn memory_kib(pid: u32, which: Memory) -> u64 {
    let field = match which {
        Memory::Resident => "VmRSS:",
        Memory::Peak => "VmHWM:",
    };
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}
