//! Order-preserving parallel map for the per-series work of a query (reading a series' chunks and
//! sliding its windows). Series are independent until an aggregation or binary operator combines
//! them, so a selection of many series is split over a few scoped threads, the calling thread
//! included. Threads are scoped to the call rather than pooled: a query that has enough series to
//! be worth splitting runs for milliseconds, against tens of microseconds to start a thread.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// Maps `items` with `f` on up to `threads` threads, keeping the input order and dropping `None`s.
/// The first error stops the other threads at their next item and is returned.
pub fn par_filter_map<T, R, E>(
    items: Vec<T>,
    threads: usize,
    f: impl Fn(T) -> Result<Option<R>, E> + Sync,
) -> Result<Vec<R>, E>
where
    T: Send,
    R: Send,
    E: Send,
{
    let threads = threads.clamp(1, items.len().max(1));
    if threads == 1 {
        let mut out = Vec::with_capacity(items.len());
        for it in items {
            if let Some(r) = f(it)? {
                out.push(r);
            }
        }
        return Ok(out);
    }
    let n = items.len();
    // Items are handed out one at a time: series differ a lot in size, so fixed slices would
    // leave one thread idle while another works through the big ones.
    let queue = Mutex::new(items.into_iter().enumerate());
    let failed = AtomicBool::new(false);
    let first_error: Mutex<Option<(usize, E)>> = Mutex::new(None);
    let work = || {
        let mut mine: Vec<(usize, R)> = Vec::new();
        loop {
            if failed.load(Ordering::Relaxed) {
                break;
            }
            let next = queue.lock().unwrap_or_else(|e| e.into_inner()).next();
            let Some((i, item)) = next else { break };
            match f(item) {
                Ok(Some(r)) => mine.push((i, r)),
                Ok(None) => {}
                Err(e) => {
                    failed.store(true, Ordering::Relaxed);
                    let mut slot = first_error.lock().unwrap_or_else(|e| e.into_inner());
                    // Keep the error of the earliest item, like the sequential loop would.
                    if slot.as_ref().is_none_or(|(j, _)| i < *j) {
                        *slot = Some((i, e));
                    }
                    break;
                }
            }
        }
        mine
    };
    let mut parts: Vec<Vec<(usize, R)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (1..threads).map(|_| s.spawn(work)).collect();
        let mut parts = vec![work()];
        for h in handles {
            match h.join() {
                Ok(p) => parts.push(p),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        parts
    });
    if let Some((_, e)) = first_error.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(e);
    }
    let mut all: Vec<(usize, R)> = Vec::with_capacity(n);
    for p in &mut parts {
        all.append(p);
    }
    all.sort_unstable_by_key(|(i, _)| *i);
    Ok(all.into_iter().map(|(_, r)| r).collect())
}

/// Threads a query may use for per-series work by default: the machine's cores.
pub fn default_parallelism() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_and_drops_nones() {
        for threads in [1, 2, 4, 16] {
            let got: Vec<u32> =
                par_filter_map((0..1000u32).collect(), threads, |x| Ok::<_, ()>((x % 3 != 0).then_some(x * 2)))
                    .unwrap();
            let want: Vec<u32> = (0..1000u32).filter(|x| x % 3 != 0).map(|x| x * 2).collect();
            assert_eq!(got, want, "threads={threads}");
        }
    }

    #[test]
    fn returns_the_earliest_error() {
        for threads in [1, 2, 3] {
            let got = par_filter_map((0..500u32).collect(), threads, |x| if x >= 100 { Err(x) } else { Ok(Some(x)) });
            // Every item below 100 succeeds, so whichever thread fails first, item 100's error
            // (or a later one that was handed out before the stop) comes back; the earliest wins.
            let e = got.unwrap_err();
            assert!(e >= 100, "{e}");
            if threads == 1 {
                assert_eq!(e, 100);
            }
        }
    }

    #[test]
    fn empty_input() {
        let got: Vec<u8> = par_filter_map(Vec::<u8>::new(), 4, |x| Ok::<_, ()>(Some(x))).unwrap();
        assert!(got.is_empty());
    }
}
