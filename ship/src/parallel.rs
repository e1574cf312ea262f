//! Two pieces of one request's work at once (ADR 0024): a batch apply writes its changelog's SQL
//! while the server applies its rows, and checks a large batch in two halves.

/// Run `here` on this thread and `beside` on a scoped thread of its own, and return both
/// results. Should no thread be had (the process at its limit), `beside` runs here after
/// `here`: the same results, one after the other. A panic on either thread reaches the caller.
pub fn join<A, B>(here: impl FnOnce() -> A, beside: impl Fn() -> B + Sync) -> (A, B)
where
    B: Send,
{
    std::thread::scope(|s| {
        let handle = std::thread::Builder::new().spawn_scoped(s, &beside);
        let a = here();
        let b = match handle {
            Ok(handle) => handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            Err(e) => {
                tracing::debug!(error = %e, "no thread to be had: the work runs here");
                beside()
            }
        };
        (a, b)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_run_and_each_result_comes_back_in_its_place() {
        let here_thread = std::thread::current().id();
        let (a, (b, beside_thread)) = join(|| 1 + 1, || ("b", std::thread::current().id()));
        assert_eq!((a, b), (2, "b"));
        assert_ne!(
            beside_thread, here_thread,
            "beside ran on a thread of its own"
        );
    }

    #[test]
    fn a_panic_beside_reaches_the_caller() {
        let caught = std::panic::catch_unwind(|| join(|| (), || panic!("beside failed")));
        let message = caught.unwrap_err();
        assert_eq!(message.downcast_ref::<&str>(), Some(&"beside failed"));
    }
}
