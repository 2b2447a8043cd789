//! The main thread's registry: the engine, each server's app, open WebSockets.
//!
//! Rule: never hold a borrow of `STATE` while R code runs (the app may start or stop
//! servers); copy out what a call needs, drop the borrow, then call R.
//!
//! Why this is sound: the registry is a thread-local of the main thread; each app's env
//! is preserved while its server is registered and released once, when it is removed.
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use rookd_engine::{Door, Engine, LocalAddr, ServerHandle};

use crate::env::EnvOptions;
use crate::options::HostOps;
use crate::rapi::r::MainThread;
use crate::rapi::*;

/// An app's functions, kept alive in a preserved environment that is also the
/// environment the bridge evaluates `call(req)` in (so errors read "Error in call(req)").
#[derive(Clone, Copy)]
pub struct AppFns {
    pub eval_env: SEXP,
    pub has_on_ws_open: bool,
}

pub struct ServerEntry {
    pub handle: ServerHandle,
    pub app: AppFns,
    pub env_opts: EnvOptions,
    /// The host as the user gave it (for getHost()).
    pub host: String,
    /// Drain lag, SIGTERM and slow-request settings.
    pub ops: HostOps,
}

impl ServerEntry {
    pub fn port(&self) -> Option<u16> {
        match self.handle.local_addr() {
            LocalAddr::Tcp(a) => Some(a.port()),
            LocalAddr::Unix(_) => None,
        }
    }
}

#[derive(Default)]
pub struct State {
    pub engine: Option<Engine>,
    pub servers: BTreeMap<u64, ServerEntry>,
}

thread_local! {
    pub static STATE: RefCell<State> = RefCell::new(State::default());
}

/// The process that loaded the package and owns the engine (0: not yet recorded).
static OWNER_PID: AtomicU32 = AtomicU32::new(0);

/// Record this process as the engine's owner (package load, main thread).
pub fn set_owner() {
    OWNER_PID.store(std::process::id(), Ordering::SeqCst);
}

/// Is this the process that owns the engine? In a forked child (`parallel::mcparallel`,
/// `mclapply`) the answer is no the first time: the parent's engine has no threads
/// here, and its queued events are the parent's requests, which the child must never
/// run or answer. So the child forgets the parent's state, without dropping it (dropping
/// would wait for threads that do not exist in this process, and would close sockets the
/// parent still serves), and starts afresh as the owner of an empty state: a drain finds
/// no Door, and a server the child starts itself gets an engine of its own.
pub fn in_owner_process() -> bool {
    let me = std::process::id();
    let owner = OWNER_PID.load(Ordering::SeqCst);
    if owner == 0 || owner == me {
        return true;
    }
    if OWNER_PID.compare_exchange(owner, me, Ordering::SeqCst, Ordering::SeqCst).is_ok() {
        STATE.with(|s| std::mem::forget(std::mem::take(&mut *s.borrow_mut())));
    }
    false
}

/// The engine's Door; `None` when there is no engine, or in a forked child (see
/// [`in_owner_process`]), so a drain there does nothing.
pub fn door() -> Option<Arc<Door>> {
    if !in_owner_process() {
        return None;
    }
    STATE.with(|s| s.borrow().engine.as_ref().map(|e| Arc::clone(e.door())))
}

pub fn app_of(server: u64) -> Option<(AppFns, EnvOptions)> {
    STATE.with(|s| s.borrow().servers.get(&server).map(|e| (e.app, e.env_opts)))
}

pub fn ops_of(server: u64) -> Option<HostOps> {
    STATE.with(|s| s.borrow().servers.get(&server).map(|e| e.ops))
}

/// Forget a server whose last connection closed; its app may now be collected.
pub fn remove_server(_: MainThread, server: u64) {
    let entry = STATE.with(|s| s.borrow_mut().servers.remove(&server));
    if let Some(e) = entry {
        // Its last counters stay readable (a drain's summary reads them after the close).
        crate::ops::keep_final_stats(server, e.handle.metrics());
        // SAFETY: main thread (the token); eval_env was preserved when the server started.
        unsafe { R_ReleaseObject(e.app.eval_env) };
    }
}
