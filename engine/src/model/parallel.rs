//! Reading many small evidence files on every core: listings read one
//! config (and a few layer files) per item, and the cost is system calls
//! and JSON parsing, which spread over threads.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Items below this many are read on the calling thread: threads cost
/// more than they save on a handful of files.
const MIN_PER_THREAD: usize = 256;

/// Threads for reads that wait on the disk more than they compute
/// (hashing many small files of a cold root): a deeper queue for the
/// device, whatever the cores.
pub const IO_THREADS: usize = 32;

/// `f` over `items`, in order, on up to one scoped thread per core.
pub fn map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    map_on(cores, items, f)
}

/// `f` over a few large `items` (subtrees of a walk), in order, on one
/// thread per core however few they are.
pub fn map_units<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    spread(cores.min(items.len()).max(1), items, f)
}

/// Items per thread below which [`map_on`] starts no more threads: a
/// thread that waits on the disk pays for itself with a few files.
const MIN_PER_IO_THREAD: usize = 16;

/// [`map`] on up to `threads` threads (at least the cores), for reads
/// that wait on the disk: each thread takes at least [`MIN_PER_IO_THREAD`]
/// items, and more threads than cores only with [`MIN_PER_THREAD`] in all.
pub fn map_on<T: Sync, R: Send>(threads: usize, items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = if items.len() < MIN_PER_THREAD {
        1
    } else {
        threads
            .max(cores)
            .min(items.len() / MIN_PER_IO_THREAD)
            .max(1)
    };
    spread(threads, items, f)
}

/// `f` over `items`, in order, on `threads` threads (the caller's one of
/// them), each taking the next item not yet taken: a thread that started
/// late or waited long on the disk takes fewer, and none is left with a
/// long run of its own at the end.
fn spread<T: Sync, R: Send>(threads: usize, items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    if threads <= 1 {
        return items.iter().map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(i) else {
                return done;
            };
            done.push((i, f(item)));
        }
    };
    let runs: Vec<Vec<(usize, R)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (1..threads).map(|_| s.spawn(work)).collect();
        let mut runs = vec![work()];
        for h in handles {
            match h.join() {
                Ok(run) => runs.push(run),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        runs
    });
    // Every index below the length was taken exactly once.
    let mut slots: Vec<Option<R>> = std::iter::repeat_with(|| None).take(items.len()).collect();
    for (i, r) in runs.into_iter().flatten() {
        slots[i] = Some(r);
    }
    slots.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_whatever_the_split() {
        for n in [0, 1, 255, 256, 513, 10_000] {
            let items: Vec<usize> = (0..n).collect();
            assert_eq!(
                map(&items, |i| i * 2),
                (0..n).map(|i| i * 2).collect::<Vec<_>>()
            );
            assert_eq!(
                map_on(IO_THREADS, &items, |i| i + 1),
                (0..n).map(|i| i + 1).collect::<Vec<_>>()
            );
            assert_eq!(
                map_units(&items, |i| i + 3),
                (0..n).map(|i| i + 3).collect::<Vec<_>>()
            );
        }
    }
}
