//! R's main thread as a type: holding a [`MainThread`] proves the code runs on the thread
//! R runs on, the only one that may call R's C API.
//!
//! Why this is sound:
//! - A token is made only by [`MainThread::run`], which is `unsafe`: its caller promises
//!   it is on R's main thread. It is called only at the bridge's entry points, which R
//!   itself calls on its main thread: the callbacks later runs (the drain, the release of
//!   lent vectors), `rookd_init`, and through [`MainThread::dot_call`] the other
//!   `#[extendr]` (`.Call`) functions, which also check the thread.
//! - The token is neither `Send` nor `Sync` (it holds a raw-pointer marker), so neither it
//!   nor a closure capturing it can reach an I/O thread.
//! - Its lifetime is bound to the closure given to `run` (a higher-ranked lifetime), so it
//!   cannot be kept in a static or a thread-local to be used after the entry point returned.
//!
//! What a token does not prove: that an `SEXP` is alive, or of the type a function
//! expects. Functions that need that stay `unsafe fn` and say so under `# Safety`.
use std::marker::PhantomData;
use std::sync::OnceLock;
use std::thread::ThreadId;

/// R's main thread: the first thread a token was made on (`rookd_init`, run by
/// `.onLoad`, makes the first one).
static R_MAIN: OnceLock<ThreadId> = OnceLock::new();

/// Proof of running on R's main thread, for the length of an entry point. `Copy`: pass
/// it by value.
#[derive(Clone, Copy)]
pub struct MainThread<'a>(PhantomData<*const &'a ()>);

impl MainThread<'_> {
    /// Run `f` with a token.
    ///
    /// # Safety
    /// The calling thread is R's main thread.
    pub unsafe fn run<T>(f: impl for<'a> FnOnce(MainThread<'a>) -> T) -> T {
        R_MAIN.get_or_init(|| std::thread::current().id());
        f(MainThread(PhantomData))
    }

    /// Run `f` with a token in a `#[extendr]` function (R calls them through `.Call`, on
    /// its main thread). Safe because it checks: on any thread other than the one
    /// `rookd_init` ran on it panics before making a token (extendr turns the panic into
    /// an R error; no I/O thread ever calls an `#[extendr]` function).
    pub fn dot_call<T>(f: impl for<'a> FnOnce(MainThread<'a>) -> T) -> T {
        let here = std::thread::current().id();
        if R_MAIN.get().is_some_and(|main| *main != here) {
            panic!("rookd: an R entry point ran on a thread other than R's main thread");
        }
        // SAFETY: `.Call` runs on R's main thread, and the check above refuses any other
        // thread once the main one is known.
        unsafe { Self::run(f) }
    }
}
