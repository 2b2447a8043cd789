//! Waking R: schedule a callback on later's global event loop (the Door's waker in
//! dispatch.rs schedules the drain; held.rs schedules releases). A leaf: it calls no
//! other bridge module.
//!
//! later runs its callbacks only when R is idle at top level (the console prompt, or an
//! event loop such as Shiny's / `service()` calling `later::run_now()`), never in the middle
//! of running R code: exactly the moments an app may run. `execLaterNative2` is safe to call
//! from any thread once it has been looked up, and called once, on the main thread.
//!
//! Why this is sound: `init` (main thread, a token) looks the entry point up and calls it
//! once there; `schedule` only calls it when set, with the signature later.h gives it.
use std::ffi::{c_double, c_int, c_void};
use std::sync::atomic::{AtomicPtr, Ordering};

use crate::rapi::r::MainThread;
use crate::rapi::R_GetCCallable;

type Callback = extern "C" fn(*mut c_void);
type ExecLater = unsafe extern "C" fn(Callback, *mut c_void, c_double, c_int);

const GLOBAL_LOOP: c_int = 0;

static EXEC_LATER: AtomicPtr<c_void> = AtomicPtr::new(std::ptr::null_mut());

/// Look up later's entry point. Main thread only; `loadNamespace("later")` must have run.
pub fn init(_: MainThread) -> Result<(), String> {
    if !EXEC_LATER.load(Ordering::SeqCst).is_null() {
        return Ok(());
    }
    // SAFETY: main thread (the token); both strings are NUL-terminated literals.
    let f = unsafe { R_GetCCallable(c"later".as_ptr(), c"execLaterNative2".as_ptr()) };
    if f.is_null() {
        return Err("the 'later' package does not export execLaterNative2 (need later >= 1.0)".into());
    }
    EXEC_LATER.store(f as *mut c_void, Ordering::SeqCst);
    // The first call must happen on the main thread: it lets later initialise itself.
    schedule(noop, 0.0);
    Ok(())
}

extern "C" fn noop(_: *mut c_void) {}

/// Ask later to run `cb` on the main thread after `secs`. Any thread.
pub fn schedule(cb: Callback, secs: f64) {
    let f = EXEC_LATER.load(Ordering::SeqCst);
    if f.is_null() {
        return;
    }
    // SAFETY: `f` is later's execLaterNative2 (looked up in `init`), whose signature is
    // `void (*)(void (*)(void*), void*, double, int)` (later.h).
    unsafe {
        let exec: ExecLater = std::mem::transmute::<*mut c_void, ExecLater>(f);
        exec(cb, std::ptr::null_mut(), secs, GLOBAL_LOOP);
    }
}
