//! The I/O runtime: a small multi-threaded tokio runtime whose threads never see signals
//! (so Ctrl-C always reaches R's main thread).
use std::io;

use tokio::runtime::{Builder, Runtime};

pub fn build(worker_threads: usize) -> io::Result<Runtime> {
    Builder::new_multi_thread()
        .worker_threads(worker_threads.max(1))
        .max_blocking_threads(16)
        .thread_name("rookd-io")
        .on_thread_start(block_signals)
        .enable_all()
        .build()
}

/// Threads created from now on in this thread inherit the mask, so blocking here covers
/// both tokio's workers and its blocking pool.
fn block_signals() {
    // SAFETY: sigfillset initialises the set we own; pthread_sigmask only changes this
    // thread's mask. Failure leaves the default mask, which is merely less polite.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}
