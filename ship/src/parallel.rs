//! Two pieces of one request's work at once (ADR 0024): a batch apply writes its changelog's SQL
//! while the server applies its rows, checks a large batch in two halves, and frees its spent
//! payloads while the server appends its entries (ADR 0025).

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

/// Run `here` on this thread while `spent` — what the caller no longer needs — is freed on a
/// scoped thread: a large batch's free costs the server's wait, not the caller's time. Should
/// no thread be had, `spent` is freed here after `here`.
pub fn drop_beside<A, T: Send>(here: impl FnOnce() -> A, spent: T) -> A {
    let slot = std::sync::Mutex::new(Some(spent));
    let (a, ()) = join(here, || {
        // A poisoned slot only means a panic beside, which `join` hands on anyway.
        let taken = match slot.lock() {
            Ok(mut slot) => slot.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        drop(taken);
    });
    a
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

    /// Counts its drops, and on which thread each happened.
    struct Spent(std::sync::Arc<std::sync::Mutex<Vec<std::thread::ThreadId>>>);

    impl Drop for Spent {
        fn drop(&mut self) {
            if let Ok(mut dropped) = self.0.lock() {
                dropped.push(std::thread::current().id());
            }
        }
    }

    #[test]
    fn what_is_spent_is_freed_once_beside_and_before_the_answer() {
        let dropped = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let spent = vec![Spent(dropped.clone()), Spent(dropped.clone())];
        let here_thread = std::thread::current().id();
        let answer = drop_beside(|| "applied", spent);
        assert_eq!(answer, "applied");
        let dropped = dropped.lock().unwrap().clone();
        assert_eq!(
            dropped.len(),
            2,
            "each value freed once, before the call returned"
        );
        assert!(
            dropped.iter().all(|t| *t != here_thread),
            "freed on the thread beside"
        );
    }

    #[test]
    fn a_panic_beside_reaches_the_caller() {
        let caught = std::panic::catch_unwind(|| join(|| (), || panic!("beside failed")));
        let message = caught.unwrap_err();
        assert_eq!(message.downcast_ref::<&str>(), Some(&"beside failed"));
    }
}
