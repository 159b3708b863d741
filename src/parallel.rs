//! Per-file work in parallel: a pool of `--jobs` worker threads (rayon's work stealing keeps
//! them busy whatever the mix of small and large files, and never queues several large files
//! behind one thread while another idles), results returned in input order so manifests and
//! reports are byte-identical whatever the thread count, and a progress bar on a terminal.

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};
use rayon::prelude::*;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How work runs: worker count and whether progress may be shown.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Jobs {
    /// Worker threads; 0 means one per CPU.
    pub threads: usize,
    /// Show a progress bar on stderr when it is a terminal and the work takes more than a
    /// second. Off with `--quiet`.
    pub progress: bool,
}

/// Work becomes visible after this long; shorter runs never draw a bar.
const SHOW_AFTER: Duration = Duration::from_secs(1);

/// A pool and a progress bar for one run over `total` files.
pub struct Runner {
    /// `None` when no thread could be started: the work then runs on the calling thread.
    pool: Option<rayon::ThreadPool>,
    bar: ProgressBar,
    wants_bar: bool,
    shown: AtomicBool,
    started: Instant,
    bytes: AtomicU64,
}

impl Runner {
    /// A runner for `total` files.
    pub fn new(jobs: Jobs, total: usize, verb: &str) -> Runner {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(jobs.threads)
            .thread_name(|i| format!("packet-worker-{i}"))
            .build()
            .ok();
        let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::hidden());
        bar.set_style(
            ProgressStyle::with_template(&format!(
                "{verb} {{bar:30}} {{pos}}/{{len}} files, {{msg}} ({{per_sec}}, ETA {{eta}})"
            ))
            .expect("valid template"),
        );
        Runner {
            pool,
            bar,
            wants_bar: jobs.progress && std::io::stderr().is_terminal(),
            shown: AtomicBool::new(false),
            started: Instant::now(),
            bytes: AtomicU64::new(0),
        }
    }

    /// Runs `f` on every item on the pool; results come back in the order of `items`.
    pub fn map<I: Sync, T: Send>(&self, items: &[I], f: impl Fn(&I) -> T + Sync + Send) -> Vec<T> {
        match &self.pool {
            Some(pool) => pool.install(|| items.par_iter().map(&f).collect()),
            None => items.iter().map(&f).collect(),
        }
    }

    /// [`Runner::map`] with a state made by `init` for each batch of neighbouring items a
    /// worker takes on (an open directory kept from one file to the next, say), never shared
    /// between threads or kept past this call.
    pub fn map_init<I: Sync, S, T: Send>(
        &self,
        items: &[I],
        init: impl Fn() -> S + Sync + Send,
        f: impl Fn(&mut S, &I) -> T + Sync + Send,
    ) -> Vec<T> {
        match &self.pool {
            Some(pool) => pool.install(|| items.par_iter().map_init(&init, &f).collect()),
            None => {
                let mut state = init();
                items.iter().map(|i| f(&mut state, i)).collect()
            }
        }
    }

    /// Records one finished file of `bytes` bytes.
    pub fn done(&self, bytes: u64) {
        let total = self.bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if !self.wants_bar {
            return;
        }
        if !self.shown.load(Ordering::Relaxed)
            && self.started.elapsed() > SHOW_AFTER
            && !self.shown.swap(true, Ordering::Relaxed)
        {
            self.bar.set_draw_target(ProgressDrawTarget::stderr());
        }
        self.bar.inc(1);
        if self.shown.load(Ordering::Relaxed) {
            self.bar.set_message(HumanBytes(total).to_string());
        }
    }
}

/// Runs `f` on a pool of `jobs.threads` workers (one per CPU for 0), so the rayon work it
/// starts is bounded by `--jobs`; on the calling thread when no pool can be started.
pub fn in_pool<R: Send>(jobs: Jobs, f: impl FnOnce() -> R + Send) -> R {
    match rayon::ThreadPoolBuilder::new()
        .num_threads(jobs.threads)
        .thread_name(|i| format!("packet-worker-{i}"))
        .build()
    {
        Ok(pool) => pool.install(f),
        Err(_) => f(),
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_keep_input_order_whatever_the_thread_count() {
        let items: Vec<u64> = (0..10_000).collect();
        for threads in [1, 2, 7] {
            let r = Runner::new(
                Jobs {
                    threads,
                    progress: false,
                },
                items.len(),
                "test",
            );
            let out = r.map(&items, |i| {
                r.done(1);
                i * 3
            });
            assert_eq!(out, items.iter().map(|i| i * 3).collect::<Vec<_>>());
            assert_eq!(r.bytes.load(Ordering::Relaxed), 10_000);
        }
    }
}
