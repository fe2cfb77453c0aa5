//! Two pieces of work side by side: the build's stages that need nothing
//! from each other run so, because each alone leaves one of a small
//! machine's cores idle for much of its time.

/// Runs `side` on a thread of its own while `main` runs on this one, and
/// returns both results (`side`'s, timed, as an error should it panic,
/// naming `what` it was doing).
pub fn beside<S: Send, M>(
    what: &str,
    side: impl FnOnce() -> S + Send,
    main: impl FnOnce() -> M,
) -> (anyhow::Result<(S, f64)>, M) {
    std::thread::scope(|scope| {
        let side = scope.spawn(|| {
            let started = std::time::Instant::now();
            let out = side();
            (out, started.elapsed().as_secs_f64())
        });
        let main = main();
        let side = side.join().map_err(|_| anyhow::anyhow!("{what} panicked"));
        (side, main)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_run_and_a_panic_on_the_side_is_an_error() {
        let (side, main) = beside("adding", || 2 + 2, || "main");
        assert_eq!((side.unwrap().0, main), (4, "main"));
        let (side, main) = beside("failing", || -> u8 { panic!("boom") }, || 7);
        assert_eq!(format!("{:#}", side.unwrap_err()), "failing panicked");
        assert_eq!(main, 7);
    }
}
