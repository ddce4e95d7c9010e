//! Reading many small evidence files on every core: listings read one
//! config (and a few layer files) per item, and the cost is system calls
//! and JSON parsing, which spread over threads.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Items below this many are read on the calling thread: threads cost
/// more than they save on a handful of files.
const MIN_PER_THREAD: usize = 256;

/// Threads for reads that wait on the disk more than they compute
/// (hashing many small files of a cold root): a deeper queue for the
/// device, whatever the cores.
pub const IO_THREADS: usize = 32;

/// The cores this process may run on, found once (the standard library
/// reads the cgroup's CPU quota files for it on every call).
fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// `f` over `items`, in order, on up to one scoped thread per core.
pub fn map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    map_on(cores(), items, f)
}

/// `f` over a few large `items` (subtrees of a walk), in order, on one
/// thread per core however few they are.
pub fn map_units<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    spread(cores().min(items.len()).max(1), items, f)
}

/// Items per thread below which [`map_on`] starts no more threads: a
/// thread that waits on the disk pays for itself with a few files.
const MIN_PER_IO_THREAD: usize = 16;

/// [`map`] on up to `threads` threads (at least the cores), for reads
/// that wait on the disk: each thread takes at least [`MIN_PER_IO_THREAD`]
/// items, and more threads than cores only with [`MIN_PER_THREAD`] in all.
pub fn map_on<T: Sync, R: Send>(threads: usize, items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = if items.len() < MIN_PER_THREAD {
        1
    } else {
        threads
            .max(cores())
            .min(items.len() / MIN_PER_IO_THREAD)
            .max(1)
    };
    spread(threads, items, f)
}

/// An item that took this long waited on the disk: another thread is
/// started (up to the limit) to keep the device's queue deep.
const SLOW_ITEM: Duration = Duration::from_micros(500);

/// What the threads of one [`spread`] share.
struct Shared<R> {
    /// The next item not yet taken.
    next: AtomicUsize,
    /// Threads started so far.
    started: AtomicUsize,
    /// Each thread's results, with their items' indexes.
    runs: Mutex<Vec<Vec<(usize, R)>>>,
}

/// `f` over `items`, in order, on up to `threads` threads (the caller's
/// one of them), each taking the next item not yet taken: a thread that
/// started late or waited long takes fewer. One thread per core starts at
/// once; more (up to `threads`) only as items turn out to wait on the
/// disk, so that reads from the page cache do not pay for idle threads.
fn spread<T: Sync, R: Send>(threads: usize, items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    if threads <= 1 {
        return items.iter().map(f).collect();
    }
    let eager = threads.min(cores());
    let shared = Shared {
        next: AtomicUsize::new(0),
        started: AtomicUsize::new(eager),
        runs: Mutex::new(Vec::new()),
    };
    let f = &f;
    std::thread::scope(|s| {
        for _ in 1..eager {
            s.spawn(|| work(s, &shared, items, f, threads));
        }
        work(s, &shared, items, f, threads);
    });
    let runs = shared.runs.into_inner().unwrap_or_else(|e| e.into_inner());
    // Every index below the length was taken exactly once.
    let mut slots: Vec<Option<R>> = std::iter::repeat_with(|| None).take(items.len()).collect();
    for (i, r) in runs.into_iter().flatten() {
        slots[i] = Some(r);
    }
    slots.into_iter().flatten().collect()
}

/// One thread of [`spread`]: takes items until none is left.
fn work<'scope, 'env, T: Sync, R: Send, F: Fn(&T) -> R + Sync>(
    s: &'scope std::thread::Scope<'scope, 'env>,
    shared: &'scope Shared<R>,
    items: &'scope [T],
    f: &'scope F,
    threads: usize,
) {
    let mut done = Vec::new();
    loop {
        let i = shared.next.fetch_add(1, Ordering::Relaxed);
        let Some(item) = items.get(i) else {
            break;
        };
        let began = Instant::now();
        done.push((i, f(item)));
        if began.elapsed() > SLOW_ITEM && shared.started.fetch_add(1, Ordering::Relaxed) < threads {
            s.spawn(move || work(s, shared, items, f, threads));
        }
    }
    shared
        .runs
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(done);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_that_wait_bring_more_threads_quick_ones_do_not() {
        let threads_used = |wait: Duration| {
            let items: Vec<usize> = (0..MIN_PER_THREAD * 2).collect();
            let seen = Mutex::new(std::collections::HashSet::new());
            let out = map_on(IO_THREADS, &items, |i| {
                seen.lock().unwrap().insert(std::thread::current().id());
                std::thread::sleep(wait);
                i * 3
            });
            assert_eq!(out, items.iter().map(|i| i * 3).collect::<Vec<_>>());
            seen.into_inner().unwrap().len()
        };
        assert!(threads_used(Duration::ZERO) < IO_THREADS / 2);
        assert!(threads_used(SLOW_ITEM * 2) > cores().max(2));
    }

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
