//! Waking R, by two independent paths (the Door's waker in dispatch.rs uses both; held.rs
//! schedules releases through the first). A leaf: it calls no other bridge module.
//!
//! 1. **later's loop** ([`schedule`]): later runs its callbacks only when R is idle at top
//!    level (the console prompt, or an event loop such as Shiny's / `service()` calling
//!    `later::run_now()`), never in the middle of running R code: exactly the moments an
//!    app may run. `execLaterNative2` is safe to call from any thread once it has been
//!    looked up, and called once, on the main thread.
//! 2. **rookd's own input handler** ([`poke`]): a socket pair whose read end R's event
//!    loop watches while R waits at the console prompt. later wakes its own input handler
//!    through a pipe and a timer thread of its own, and that wake-up can be lost on a busy
//!    machine (measured: about one in 15,000 lock-step requests at the idle prompt with both
//!    cores busy, with later 1.3.0), after which the scheduled drain waits until something
//!    else stirs later: at an idle prompt, for ever. The poke is a second wake that does not
//!    go through later, so a drain is lost only if both are. Loops that never let R's
//!    event loop poll file descriptors (`service()`, `later::run_now()`) are served by the
//!    first path alone, as before.
//!
//! When the handler runs while R cannot run apps (inside `Sys.sleep()`, or an app's own
//! wait), it consumes the poke and asks for both paths again: a later callback, and a
//! new poke shortly after ([`poke_after`], from a small thread of this module's), so
//! that a drain owed at that moment does not rest on later alone either.
//!
//! The poke costs one non-blocking one-byte `write` per wake-up (the Door asks for a
//! wake-up once per burst, not per event; a poke already unread is not repeated) and, on
//! R's thread, one `read` when the handler runs.
//!
//! Why this is sound: `init` (main thread, a token) looks the entry point up and calls it
//! once there; `schedule` only calls it when set, with the signature later.h gives it.
//! The input handler is added and removed only on the main thread (a token), with a file
//! descriptor this module owns for the life of the process (the socket pair is never
//! closed, so R never watches a closed or reused descriptor); the handler function is an
//! `extern "C" fn` of this library, which stays mapped for the life of the process (lib.rs).
use std::cell::Cell;
use std::ffi::{c_double, c_int, c_void};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::rapi::r::MainThread;
use crate::rapi::{addInputHandler, removeInputHandler, InputHandler, R_GetCCallable, R_InputHandlers};

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

/// The poke socket pair: the engine's threads write to `tx`, R's event loop watches `rx`.
/// One per process (a forked child that starts a server makes its own; the parent's stays
/// the parent's), leaked: never closed, so R never watches a closed or reused descriptor.
struct PokeSocket {
    tx: UnixStream,
    rx: UnixStream,
    pid: u32,
}

static POKE: AtomicPtr<PokeSocket> = AtomicPtr::new(std::ptr::null_mut());
/// A poke was written and not yet taken by the handler: no need to write another.
static POKED: AtomicBool = AtomicBool::new(false);

/// R's `activity` number for the handler (later uses 20 and 21, R's console 1).
const POKE_ACTIVITY: c_int = 47;

thread_local! {
    /// The registered handler (main thread only), with the process that registered it: a
    /// forked child inherits R's handler list and this value, but not the right to use it.
    static HANDLER: Cell<Option<(*mut InputHandler, u32)>> = const { Cell::new(None) };
}

fn poke_socket() -> Option<&'static PokeSocket> {
    // SAFETY: POKE is null or a leaked Box that is never freed.
    unsafe { POKE.load(Ordering::SeqCst).as_ref() }
}

/// This process's socket pair, made on first use.
fn own_poke_socket() -> Result<&'static PokeSocket, String> {
    let me = std::process::id();
    if let Some(s) = poke_socket().filter(|s| s.pid == me) {
        return Ok(s);
    }
    let (tx, rx) = UnixStream::pair().map_err(|e| format!("rookd: could not make its wake-up socket: {e}"))?;
    tx.set_nonblocking(true).map_err(|e| e.to_string())?;
    rx.set_nonblocking(true).map_err(|e| e.to_string())?;
    let sock: &'static PokeSocket = Box::leak(Box::new(PokeSocket { tx, rx, pid: me }));
    POKED.store(false, Ordering::SeqCst);
    POKE.store(std::ptr::from_ref(sock).cast_mut(), Ordering::SeqCst);
    Ok(sock)
}

/// Have R's event loop call `handler` on the main thread whenever [`poke`] was called.
/// Main thread; idempotent.
pub fn install_input_handler(mt: MainThread, handler: extern "C" fn(*mut c_void)) -> Result<(), String> {
    let me = std::process::id();
    match HANDLER.with(|h| h.get()) {
        Some((_, pid)) if pid == me => return Ok(()),
        // A forked child: its copy of R's list still holds the parent's handler.
        Some(_) => remove_input_handler(mt),
        None => {}
    }
    let sock = own_poke_socket()?;
    // SAFETY: main thread (the token); `R_InputHandlers` is R's list head, and the
    // descriptor stays open for the life of the process.
    let h = unsafe { addInputHandler(R_InputHandlers, sock.rx.as_raw_fd(), Some(handler), POKE_ACTIVITY) };
    if h.is_null() {
        return Err("rookd: R refused its input handler".into());
    }
    HANDLER.with(|c| c.set(Some((h, me))));
    Ok(())
}

/// Take the handler off R's list (package unload, or a forked child that found the
/// parent's). Main thread. R's loop reads the next handler before calling one, so a
/// handler may remove itself.
pub fn remove_input_handler(_: MainThread) {
    if let Some((h, _)) = HANDLER.with(|c| c.take()) {
        // SAFETY: main thread; `h` was returned by addInputHandler on R's list and has not
        // been removed since (taken out of HANDLER just now).
        unsafe {
            removeInputHandler(&raw mut R_InputHandlers, h);
        }
    }
}

/// Is the handler this process registered still current? `false` in a forked child, whose
/// copy of R's list still holds the parent's: the child must not read the parent's pokes.
pub fn handler_is_ours(_: MainThread) -> bool {
    HANDLER.with(|c| c.get()).is_some_and(|(_, pid)| pid == std::process::id())
}

/// Make R's event loop call the input handler soon. Any thread; never blocks.
pub fn poke() {
    let Some(sock) = poke_socket() else { return };
    if POKED.swap(true, Ordering::SeqCst) {
        return;
    }
    // A full socket buffer (WouldBlock) already holds unread pokes: nothing is lost.
    let _ = (&sock.tx).write(&[1u8]);
}

/// Take every poke written so far (the handler, first thing). Main thread. The flag is
/// cleared before the bytes are read, so a poke that comes after this call writes a new
/// byte and the handler runs again: none is lost.
pub fn take_pokes(_: MainThread) {
    POKED.store(false, Ordering::SeqCst);
    let Some(sock) = poke_socket() else { return };
    let mut buf = [0u8; 64];
    loop {
        match (&sock.rx).read(&mut buf) {
            Ok(n) if n == buf.len() => continue,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            _ => break,
        }
    }
}

/// The thread that pokes again after a delay, and the deadline it waits for.
struct Repoker {
    due: Mutex<Option<Instant>>,
    changed: Condvar,
    pid: u32,
}

static REPOKER: OnceLock<Mutex<Option<&'static Repoker>>> = OnceLock::new();

/// Poke again after `delay` (any thread; never blocks for long): the handler's answer to
/// a poke it could not act on. Deadlines asked for meanwhile are merged (the earliest
/// wins), so a loop of nested pokes costs one wake-up of the thread per `delay`.
pub fn poke_after(delay: Duration) {
    let Some(r) = repoker() else {
        return;
    };
    let at = Instant::now() + delay;
    let mut due = r.due.lock().unwrap_or_else(|e| e.into_inner());
    if due.is_none_or(|d| at < d) {
        *due = Some(at);
        r.changed.notify_one();
    }
}

/// This process's repoker, started on first use (a forked child starts its own: the
/// parent's thread does not exist there).
fn repoker() -> Option<&'static Repoker> {
    let me = std::process::id();
    let slot = REPOKER.get_or_init(|| Mutex::new(None));
    let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(r) = *slot {
        if r.pid == me {
            return Some(r);
        }
    }
    let r: &'static Repoker = Box::leak(Box::new(Repoker { due: Mutex::new(None), changed: Condvar::new(), pid: me }));
    std::thread::Builder::new().name("rookd-repoke".into()).spawn(move || repoke_loop(r)).ok()?;
    *slot = Some(r);
    Some(r)
}

fn repoke_loop(r: &'static Repoker) {
    let mut due = r.due.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        match *due {
            None => due = r.changed.wait(due).unwrap_or_else(|e| e.into_inner()),
            Some(at) => {
                let now = Instant::now();
                if now >= at {
                    *due = None;
                    poke();
                } else {
                    due = r.changed.wait_timeout(due, at - now).unwrap_or_else(|e| e.into_inner()).0;
                }
            }
        }
    }
}
