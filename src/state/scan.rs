//! Reading tables on several connections at once: a queue of parts (a whole table, or a
//! range of one), taken by the calling connection and by helper connections that each engine
//! opens so that they read the same instant; each part's row digests merged into its table's
//! multiset. The first failure stops the queue.

use super::encode::Multiset;
use std::io;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Reads every part of `work` (each `(table index, part)`) and returns, per table of
/// `tables`, the multiset of its rows or the first error met reading it.
///
/// `main` reads on the calling thread; up to `helpers - 1` threads each call `open_helper`
/// and, if it gives a connection, read with it too (one that cannot be opened leaves its share
/// to the others, so the result never depends on how many joined). `read` digests one part
/// on a connection; `spill` turns a failed spill while merging into the engine's error.
pub fn parts<C, P: Sync, E: Send>(
    tables: usize,
    work: &[(usize, P)],
    main: &mut C,
    helpers: usize,
    open_helper: impl Fn() -> Option<C> + Sync,
    read: impl Fn(&mut C, usize, &P) -> Result<Multiset, E> + Sync,
    spill: impl Fn(io::Error) -> E + Sync,
) -> Vec<Result<Multiset, E>> {
    let next = AtomicUsize::new(0);
    let merged: Mutex<Vec<Result<Multiset, E>>> =
        Mutex::new((0..tables).map(|_| Ok(Multiset::default())).collect());
    let scan = |conn: &mut C| {
        loop {
            let w = next.fetch_add(1, Ordering::Relaxed);
            let Some((i, part)) = work.get(w) else { break };
            let r = read(conn, *i, part);
            let mut merged = merged.lock().expect("no scan panics");
            let failed = match (r, &mut merged[*i]) {
                (Ok(set), Ok(into)) => match into.merge(set) {
                    Ok(()) => false,
                    Err(e) => {
                        merged[*i] = Err(spill(e));
                        true
                    }
                },
                (Err(e), _) => {
                    merged[*i] = Err(e);
                    true
                }
                (Ok(_), Err(_)) => true,
            };
            if failed {
                // Stop handing out work: the snapshot has failed.
                next.store(usize::MAX / 2, Ordering::Relaxed);
                break;
            }
        }
    };
    std::thread::scope(|s| {
        for _ in 1..helpers.min(work.len()) {
            let (scan, open_helper) = (&scan, &open_helper);
            s.spawn(move || {
                if let Some(mut helper) = open_helper() {
                    scan(&mut helper);
                }
            });
        }
        scan(main);
    });
    merged.into_inner().expect("no scan panics")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::encode::{Value, row_digest};

    #[test]
    fn parts_merge_to_the_whole_whatever_joins() {
        // Ten "rows" per table split into parts of three; the same digests whether helpers
        // open or not.
        let rows = |t: usize, r: std::ops::Range<usize>| {
            let mut m = Multiset::default();
            for i in r {
                m.add(row_digest(
                    &[Value::Integer((t * 100 + i) as i64)],
                    &mut Vec::new(),
                ))
                .unwrap();
            }
            m
        };
        let work: Vec<(usize, std::ops::Range<usize>)> = (0..2)
            .flat_map(|t| [(t, 0..3), (t, 3..6), (t, 6..10)])
            .collect();
        let run = |helpers: usize, open: bool| -> Vec<_> {
            parts(
                2,
                &work,
                &mut (),
                helpers,
                || open.then_some(()),
                |_, t, r: &std::ops::Range<usize>| Ok::<_, String>(rows(t, r.clone())),
                |e| e.to_string(),
            )
            .into_iter()
            .map(|m| m.unwrap().finish().unwrap())
            .collect()
        };
        let whole: Vec<_> = (0..2).map(|t| rows(t, 0..10).finish().unwrap()).collect();
        assert_eq!(run(1, false), whole);
        assert_eq!(run(4, true), whole);
        assert_eq!(run(4, false), whole);
        // A failing part is that table's error, and nothing passes for it.
        let failed = parts(
            2,
            &work,
            &mut (),
            1,
            || None::<()>,
            |_, t, r: &std::ops::Range<usize>| {
                if t == 1 && r.start == 3 {
                    Err("boom".to_string())
                } else {
                    Ok(rows(t, r.clone()))
                }
            },
            |e| e.to_string(),
        );
        assert_eq!(failed[1].as_ref().err().map(String::as_str), Some("boom"));
    }
}
