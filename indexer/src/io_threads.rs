//! One pool of threads for work that waits on the disk, not the CPU.
//!
//! A nightly build reads and renames tens of thousands of small files in
//! folders whose entries are not cached: a registry just cloned, the
//! previous site's loose blobs, the module pages' folders. On rayon's usual
//! pool (a thread a core) the disk saw two requests at once and the cores
//! sat idle between them (the registry load took 57 s at 100,000 users;
//! regenerating 50,000 module pages and moving them into the site left the
//! two cores a quarter busy for half a minute at 1,000,000 modules). Many
//! requests in flight let the device serve them together.
//!
//! Work here should free what it allocates: memory allocated on a thread
//! that then sits idle is not handed back when another thread frees it
//! (mimalloc collects such frees on the owning thread).

/// Threads in the pool: requests the disk is given at once.
const IO_THREADS: usize = 16;

/// Runs `run` on the I/O pool (its `par_iter`s spread over the pool's
/// threads); on the caller's pool when the threads cannot be started.
pub fn on_io_threads<T: Send>(run: impl FnOnce() -> T + Send) -> T {
    static POOL: std::sync::OnceLock<Option<rayon::ThreadPool>> = std::sync::OnceLock::new();
    let pool = POOL.get_or_init(|| {
        (rayon::ThreadPoolBuilder::new())
            .num_threads(IO_THREADS)
            .thread_name(|i| format!("io-{i}"))
            .build()
            .ok()
    });
    match pool {
        Some(pool) => pool.install(run),
        None => run(),
    }
}

/// Looks each path up (its folders and its own entry, present or not) on
/// the I/O threads, ahead of renames onto them. Linux lets one rename
/// between folders run at a time on a file system; a rename that looks up
/// an uncached folder reads the disk while every other one waits, so many
/// renames on many threads still read one folder at a time. Looked up
/// first, many at once, the entries are cached when the renames come.
pub fn look_up_ahead<P: AsRef<std::path::Path> + Sync>(paths: &[P]) {
    use rayon::prelude::*;
    on_io_threads(|| {
        paths.par_iter().for_each(|p| {
            let _ = std::fs::symlink_metadata(p);
        })
    });
}

/// Reads `files` into the page cache on the I/O threads, into nothing
/// (no file is held whole, nothing outlives the read). A file that cannot
/// be read, or is no regular file, is left for its reader to report.
pub fn read_into_cache(files: &[std::path::PathBuf]) {
    use rayon::prelude::*;
    on_io_threads(|| {
        files.par_iter().for_each(|path| {
            let _ = mlld_fsutil::open_regular(path)
                .and_then(|mut f| std::io::copy(&mut f, &mut std::io::sink()));
        })
    });
}

#[cfg(test)]
mod tests {
    use rayon::prelude::*;

    #[test]
    fn work_runs_on_the_io_threads_in_parallel() {
        let names: Vec<Option<String>> = super::on_io_threads(|| {
            (0..64)
                .into_par_iter()
                .map(|_| std::thread::current().name().map(str::to_string))
                .collect()
        });
        assert!(
            names
                .iter()
                .all(|n| n.as_deref().is_some_and(|n| n.starts_with("io-")))
        );
        // Blocking work in flight at once: every thread of the pool can wait together.
        let in_flight = std::sync::atomic::AtomicUsize::new(0);
        let most = std::sync::atomic::AtomicUsize::new(0);
        super::on_io_threads(|| {
            (0..super::IO_THREADS).into_par_iter().for_each(|_| {
                use std::sync::atomic::Ordering::SeqCst;
                let now = in_flight.fetch_add(1, SeqCst) + 1;
                most.fetch_max(now, SeqCst);
                std::thread::sleep(std::time::Duration::from_millis(50));
                in_flight.fetch_sub(1, SeqCst);
            })
        });
        assert!(
            most.into_inner() > 2,
            "more than two requests in flight at once"
        );
    }
}
