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
//!    else stirs later: at an idle prompt, for ever. So every wake-up also arms a small
//!    thread of this module's ([`poke_unless_drained`]): if no drain has begun within a
//!    few milliseconds, it pokes, and the handler drains. A request is then lost only if
//!    both paths fail, and one that later's path forgets waits milliseconds, not for ever.
//!    Loops that never let R's event loop poll file descriptors (`service()`,
//!    `later::run_now()`) are served by the first path alone, as before.
//!
//! When the handler runs while R cannot run apps (inside `Sys.sleep()`, or an app's own
//! wait), it consumes the poke and asks for both paths again (a later callback, and the
//! repoker armed anew), so that a drain owed at that moment does not rest on later alone
//! either.
//!
//! Cost per wake-up: a short uncontended lock to arm the repoker (the Door asks for a
//! wake-up once per burst, not per event). The repoker thread wakes at most once per
//! deadline, and pokes (one write; on R's thread one read) only when later was late or
//! lost. Poking at once on every wake-up instead was measured: +20 % CPU per request at
//! the idle prompt in lock-step (R woke twice per request).
//!
//! Why this is sound: `init` (main thread, a token) looks the entry point up and calls it
//! once there; `schedule` only calls it when set, with the signature later.h gives it.
//! The input handler is added and removed only on the main thread (a token), with a file
//! descriptor this module owns for the life of the process (the socket pair is never
//! closed, so R never watches a closed or reused descriptor); the handler function is an
//! `extern "C" fn` of this library, which stays mapped for the life of the process (lib.rs).
//! The poke socket and the repoker are leaked boxes behind atomic pointers, never freed,
//! so a pointer read from them is valid for ever; the fork handler registered with
//! `pthread_atfork` does one atomic store, which is async-signal-safe.
use std::cell::Cell;
use std::ffi::{c_double, c_int, c_void};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
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

/// Drains begun on R's thread (counted by dispatch.rs before each drain clears the Door's
/// flag): the repoker pokes only when none has begun since the wake-up it was armed for.
static DRAINS_BEGUN: AtomicU64 = AtomicU64::new(0);

/// A drain is about to begin (main thread, before it clears the Door's flag: a wake-up
/// asked for after that sees this count, and is answered by this drain or a later one).
pub fn drain_begins(_: MainThread) {
    DRAINS_BEGUN.fetch_add(1, Ordering::SeqCst);
}

/// A poke owed at `at`, unless a drain begins first (the count is then past `drains`).
#[derive(Clone, Copy)]
struct Armed {
    at: Instant,
    drains: u64,
}

/// The thread that pokes when a wake-up has gone unanswered, and what it waits for.
struct Repoker {
    due: Mutex<Option<Armed>>,
    changed: Condvar,
}

/// This process's repoker (null before the first use, and in a forked child, whose copy
/// of the parent's has no thread: see `forget_repoker_in_child`).
static REPOKER: AtomicPtr<Repoker> = AtomicPtr::new(std::ptr::null_mut());
static REPOKER_START: Mutex<()> = Mutex::new(());

/// Poke R after `delay` unless a drain begins before then (any thread; a lock held for a
/// few instructions, never a wait): the fallback for a wake-up that later loses, and
/// for one the input handler could not act on. One armed deadline at a time: a wake-up
/// that finds an earlier one still owed (no drain since) leaves it, one that finds it
/// answered arms a new one; the thread wakes only when a deadline passes, so at most
/// once per `delay` however many wake-ups there are, and never while nothing is asked.
pub fn poke_unless_drained(delay: Duration) {
    let drains = DRAINS_BEGUN.load(Ordering::SeqCst);
    let Some(r) = repoker() else {
        poke();
        return;
    };
    let mut due = r.due.lock().unwrap_or_else(|e| e.into_inner());
    match *due {
        Some(a) if a.drains == drains => {}
        current => {
            *due = Some(Armed { at: Instant::now() + delay, drains });
            if current.is_none() {
                r.changed.notify_one();
            }
        }
    }
}

fn repoker() -> Option<&'static Repoker> {
    // SAFETY: REPOKER is null or a leaked Box that is never freed.
    if let Some(r) = unsafe { REPOKER.load(Ordering::Acquire).as_ref() } {
        return Some(r);
    }
    let _start = REPOKER_START.lock().unwrap_or_else(|e| e.into_inner());
    // SAFETY: as above.
    if let Some(r) = unsafe { REPOKER.load(Ordering::Acquire).as_ref() } {
        return Some(r);
    }
    static AT_FORK: std::sync::Once = std::sync::Once::new();
    AT_FORK.call_once(|| {
        // SAFETY: registers a child handler that only stores to an atomic (see it).
        unsafe {
            libc::pthread_atfork(None, None, Some(forget_repoker_in_child));
        }
    });
    let r: &'static Repoker = Box::leak(Box::new(Repoker { due: Mutex::new(None), changed: Condvar::new() }));
    std::thread::Builder::new().name("rookd-repoke".into()).spawn(move || repoke_loop(r)).ok()?;
    REPOKER.store(std::ptr::from_ref(r).cast_mut(), Ordering::Release);
    Some(r)
}

/// In a forked child the parent's repoker thread does not exist: forget it, so the
/// child's first wake-up starts one of its own. Runs in the child right after `fork`,
/// where only async-signal-safe work is allowed: one atomic store.
extern "C" fn forget_repoker_in_child() {
    REPOKER.store(std::ptr::null_mut(), Ordering::Release);
}

fn repoke_loop(r: &'static Repoker) {
    let mut due = r.due.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        match *due {
            None => due = r.changed.wait(due).unwrap_or_else(|e| e.into_inner()),
            Some(a) => {
                let now = Instant::now();
                if now >= a.at {
                    *due = None;
                    if DRAINS_BEGUN.load(Ordering::SeqCst) == a.drains {
                        poke();
                    }
                } else {
                    due = r.changed.wait_timeout(due, a.at - now).unwrap_or_else(|e| e.into_inner()).0;
                }
            }
        }
    }
}
