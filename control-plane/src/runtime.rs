//! Tokio runtimes of their own for work that must not queue behind the agent streams' tasks on the main runtime:
//! the agent port's TLS handshakes (at a lower CPU priority) and the REST API (at the process's own).
//!
//! A task on a busy runtime waits for its turn behind every task queued before it; on threads of its own it
//! waits only for the kernel's scheduler, which favours a thread that has been sleeping (an API waiting for
//! requests) over threads that have been busy (thousands of streams being set up after a replica restart).

use tracing::warn;

/// A multi-threaded runtime on named threads, optionally at a lower priority than the rest of the process.
pub struct DedicatedRuntime {
    // An `Option` only so that `Drop` can take it: a runtime dropped inside another runtime's task must be shut
    // down in the background.
    runtime: Option<tokio::runtime::Runtime>,
}

impl DedicatedRuntime {
    /// `nice_increment`: added to each thread's nice value (0 keeps the process's priority; 19 is the lowest).
    pub fn new(name: &str, threads: usize, nice_increment: libc::c_int) -> std::io::Result<Self> {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder
            .worker_threads(threads)
            .thread_name(name)
            .enable_all();
        if nice_increment > 0 {
            let name = name.to_owned();
            builder.on_thread_start(move || lower_this_threads_priority(&name, nice_increment));
        }
        Ok(Self {
            runtime: Some(builder.build()?),
        })
    }

    pub fn handle(&self) -> &tokio::runtime::Handle {
        self.runtime
            .as_ref()
            .expect("present until dropped")
            .handle()
    }
}

impl Drop for DedicatedRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn lower_this_threads_priority(name: &str, increment: libc::c_int) {
    // On Linux the nice value belongs to the thread, so this leaves the process's other threads as they are.
    // Relative to the thread's own value (inherited from the process), as `nice` would do; 19 is the lowest.
    // SAFETY: plain system calls on the calling thread's id; no memory is passed.
    let result = unsafe {
        let thread = libc::gettid() as libc::id_t;
        let current = libc::getpriority(libc::PRIO_PROCESS, thread);
        libc::setpriority(libc::PRIO_PROCESS, thread, (current + increment).min(19))
    };
    if result != 0 {
        warn!(
            thread = name,
            error = %std::io::Error::last_os_error(),
            "cannot lower the priority of a thread; its work competes with the API for CPU"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn this_threads_nice() -> libc::c_int {
        // SAFETY: plain system calls on the calling thread's id.
        unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
    }

    async fn nice_and_name_on(runtime: &DedicatedRuntime) -> (libc::c_int, Option<String>) {
        runtime
            .handle()
            .spawn(async {
                (
                    this_threads_nice(),
                    std::thread::current().name().map(str::to_owned),
                )
            })
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn threads_run_at_the_priority_asked_for_and_leave_the_callers_alone() {
        let before = this_threads_nice();
        let lowered = DedicatedRuntime::new("lowered", 2, 10).unwrap();
        let same = DedicatedRuntime::new("same", 1, 0).unwrap();
        assert_eq!(
            nice_and_name_on(&lowered).await,
            ((before + 10).min(19), Some("lowered".to_owned()))
        );
        assert_eq!(
            nice_and_name_on(&same).await,
            (before, Some("same".to_owned()))
        );
        assert_eq!(
            this_threads_nice(),
            before,
            "the caller's thread is left as it was"
        );
        // Dropped inside this runtime's task without panicking.
        drop((lowered, same));
    }
}
