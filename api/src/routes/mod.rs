//! The handlers, by resource.

pub mod access_log;
pub mod admin;
pub mod emergency;
pub mod events;
pub mod evidence;
pub mod fhir;
pub mod keys;
pub mod notifications;
pub mod patients;
pub mod service;

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::ApiError;

/// Runs blocking work (ledger reads and writes) off the async workers.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(format!("worker failed: {e}")))?
}

/// Appends in progress through [`blocking_write`].
static WRITES_IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// Runs a write that blocks briefly (an append, which waits for its group commit's
/// `fdatasync`). A lone write runs on this worker thread and holds it for the write's
/// duration (about half a millisecond): the runtime's other workers serve everything else
/// meanwhile, taking over the tasks queued on this one, and the write's path crosses no
/// thread. Handing the worker's tasks to another thread first (`block_in_place`) or the write
/// to the pool ([`blocking`]) costs thread wake-ups that, at one connection with patients
/// warm, made an append a quarter to a third slower (docs/performance.md). A runtime with one worker has no other to
/// serve meanwhile, so there the worker's tasks are handed over. While other writes are in
/// progress a write goes to the pool, so that at most one worker is ever held by a write,
/// concurrent writes never take the async workers from the reads, and they share their group
/// commits as before. Either way the write runs to its end once begun, also when the request's
/// time limit (30 s) passes meanwhile and it is answered 408: a retry with the same
/// `Idempotency-Key` then gives the write's outcome.
pub(crate) async fn blocking_write<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    blocking_counted(&WRITES_IN_FLIGHT, f).await
}

/// [`blocking_write`], counting the writes in progress in `in_flight`.
async fn blocking_counted<T: Send + 'static>(
    in_flight: &'static AtomicUsize,
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    use tokio::runtime::{Handle, RuntimeFlavor};
    struct InFlight(&'static AtomicUsize);
    impl Drop for InFlight {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::AcqRel);
        }
    }
    let alone = in_flight.fetch_add(1, Ordering::AcqRel) == 0;
    let _counted = InFlight(in_flight);
    let runtime = Handle::current();
    if alone && runtime.runtime_flavor() == RuntimeFlavor::MultiThread {
        if runtime.metrics().num_workers() > 1 {
            return f();
        }
        return tokio::task::block_in_place(f);
    }
    blocking(f).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread::ThreadId;

    fn thread() -> Result<ThreadId, ApiError> {
        Ok(std::thread::current().id())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lone_write_runs_on_its_worker_and_one_beside_another_in_the_pool() {
        static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);
        let worker = std::thread::current().id();
        assert_eq!(blocking_counted(&IN_FLIGHT, thread).await.unwrap(), worker);
        assert_eq!(IN_FLIGHT.load(Ordering::SeqCst), 0, "counted out again");

        // A first write held in progress: a second one goes to the pool.
        let (release, held) = std::sync::mpsc::channel::<()>();
        let first = tokio::spawn(blocking_counted(&IN_FLIGHT, move || {
            held.recv().ok();
            thread()
        }));
        while IN_FLIGHT.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        let second = blocking_counted(&IN_FLIGHT, thread).await.unwrap();
        assert_ne!(second, worker, "the second write ran in the pool");
        release.send(()).unwrap();
        first.await.unwrap().unwrap();
        assert_eq!(IN_FLIGHT.load(Ordering::SeqCst), 0);
    }

    /// A lone write that waits for a task spawned after it began: the task runs only if a
    /// worker other than the write's serves meanwhile.
    async fn lone_write_waiting_for_a_task(in_flight: &'static AtomicUsize) {
        let (done, ran) = std::sync::mpsc::channel::<()>();
        let write = tokio::spawn(blocking_counted(in_flight, move || {
            ran.recv_timeout(std::time::Duration::from_secs(10))
                .map_err(|_| {
                    ApiError::Internal("no task ran while the write held its worker".into())
                })
        }));
        while in_flight.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        tokio::spawn(async move { done.send(()).unwrap() });
        write.await.unwrap().unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn while_a_lone_write_holds_its_worker_another_serves_the_tasks() {
        static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);
        lone_write_waiting_for_a_task(&IN_FLIGHT).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn on_a_runtime_of_one_worker_a_lone_write_hands_the_tasks_over() {
        static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);
        lone_write_waiting_for_a_task(&IN_FLIGHT).await;
    }

    #[tokio::test(flavor = "current_thread")]
    async fn on_a_runtime_of_one_thread_a_write_goes_to_the_pool() {
        static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);
        let here = std::thread::current().id();
        assert_ne!(blocking_counted(&IN_FLIGHT, thread).await.unwrap(), here);
    }
}
