//! Reads a server's CPU time and memory from /proc while a benchmark runs (Linux only): CPU
//! seconds are utime+stime deltas, peak RSS is the highest VmRSS seen by a 250 ms sampler (VmHWM
//! would include start-up spikes of the whole process life).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// What the sampler saw.
#[derive(Debug, Clone)]
pub struct ProcUsage {
    pub cpu_seconds: f64,
    pub peak_rss: u64,
    pub end_rss: u64,
}

/// A background sampler of one process.
pub struct ProcSampler {
    pid: u32,
    cpu_start: f64,
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: std::thread::JoinHandle<()>,
}

/// utime+stime of `pid` in seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return 0.0 };
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    let hz = clk_tck();
    (ticks(11) + ticks(12)) / hz
}

#[allow(unsafe_code)]
fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if v > 0 { v as f64 } else { 100.0 }
}

/// Current VmRSS of `pid` in bytes.
pub fn rss_bytes(pid: u32) -> u64 {
    let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/status")) else { return 0 };
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

impl ProcSampler {
    pub fn start(pid: u32) -> ProcSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(rss_bytes(pid)));
        let (s, p) = (stop.clone(), peak.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                p.fetch_max(rss_bytes(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(250));
            }
        });
        ProcSampler { pid, cpu_start: cpu_seconds(pid), stop, peak, thread }
    }

    pub fn stop(self) -> ProcUsage {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
        let end_rss = rss_bytes(self.pid);
        ProcUsage {
            cpu_seconds: cpu_seconds(self.pid) - self.cpu_start,
            peak_rss: self.peak.load(Ordering::Relaxed).max(end_rss),
            end_rss,
        }
    }
}
