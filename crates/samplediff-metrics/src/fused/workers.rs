//! Chunks of work on a few threads, results in chunk order.
//!
//! Chunks are fixed by the data (never by the thread count) and their results come back in
//! chunk order, so merging them gives the same floating-point sums on 1 thread or 64: the
//! report is byte-identical across thread counts. Worker-local state (histograms of integer
//! counts) merges by addition, which does not depend on the order either.
//! On wasm32 (no threads without extra set-up) everything runs on the calling thread.

use std::sync::Mutex;

/// Run `work(local, chunk)` for every chunk in `0..chunks` on up to `threads` threads.
/// Returns the per-chunk results in chunk order and every worker's local state.
pub(crate) fn run<T, L>(
    chunks: usize,
    threads: usize,
    local: impl Fn() -> L + Sync,
    work: impl Fn(&mut L, usize) -> T + Sync,
) -> (Vec<T>, Vec<L>)
where
    T: Send,
    L: Send,
{
    let threads = threads.clamp(1, chunks.max(1));
    if threads == 1 || cfg!(target_arch = "wasm32") {
        let mut l = local();
        let out = (0..chunks).map(|c| work(&mut l, c)).collect();
        return (out, vec![l]);
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut parts: Vec<(Vec<(usize, T)>, L)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut l = local();
                    let mut done = Vec::new();
                    loop {
                        let c = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if c >= chunks {
                            break;
                        }
                        done.push((c, work(&mut l, c)));
                    }
                    (done, l)
                })
            })
            .collect();
        // A worker that panicked re-raises here, on the caller's thread, where the front ends'
        // panic boundaries catch it.
        handles.into_iter().map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))).collect()
    });
    let mut results: Vec<(usize, T)> = parts.iter_mut().flat_map(|(d, _)| d.drain(..)).collect();
    results.sort_unstable_by_key(|(c, _)| *c);
    (results.into_iter().map(|(_, t)| t).collect(), parts.into_iter().map(|(_, l)| l).collect())
}

/// Run independent `tasks` on up to `threads` threads; their results in task order.
pub(crate) fn each<T: Send>(threads: usize, tasks: Vec<impl FnOnce() -> T + Send>) -> Vec<T> {
    let slots: Vec<Mutex<Option<_>>> = tasks.into_iter().map(|t| Mutex::new(Some(t))).collect();
    let take = |c: usize| slots[c].lock().unwrap_or_else(|e| e.into_inner()).take().expect("each task runs once");
    run(slots.len(), threads, || (), |_, c| take(c)()).0
}

/// Threads to use by default: what the machine offers (1 where that is unknown or on wasm).
pub fn available_threads() -> usize {
    if cfg!(target_arch = "wasm32") {
        return 1;
    }
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests {
    #[test]
    fn results_come_back_in_chunk_order_whatever_the_threads() {
        for threads in [1, 2, 7] {
            let (out, locals) = super::run(
                100,
                threads,
                || 0u64,
                |l, c| {
                    *l += 1;
                    c * c
                },
            );
            assert_eq!(out, (0..100).map(|c| c * c).collect::<Vec<_>>());
            assert_eq!(locals.iter().sum::<u64>(), 100);
        }
    }

    #[test]
    fn tasks_run_once_each_results_in_order() {
        for threads in [1, 2, 7] {
            let tasks: Vec<_> = (0..10u64).map(|i| move || i * i).collect();
            assert_eq!(super::each(threads, tasks), (0..10u64).map(|i| i * i).collect::<Vec<_>>());
        }
    }
}
