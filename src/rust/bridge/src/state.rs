//! The main thread's registry: the engine, each server's app, open WebSockets.
//!
//! Rule: never hold a borrow of `STATE` while R code runs (the app may start or stop
//! servers); copy out what a call needs, drop the borrow, then call R.
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::Arc;

use rookd_engine::{Door, Engine, LocalAddr, ServerHandle};

use crate::env::EnvOptions;
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

pub fn door() -> Option<Arc<Door>> {
    STATE.with(|s| s.borrow().engine.as_ref().map(|e| Arc::clone(e.door())))
}

pub fn app_of(server: u64) -> Option<(AppFns, EnvOptions)> {
    STATE.with(|s| s.borrow().servers.get(&server).map(|e| (e.app, e.env_opts)))
}

/// Forget a server whose last connection closed; its app may now be collected.
pub fn remove_server(server: u64) {
    let entry = STATE.with(|s| s.borrow_mut().servers.remove(&server));
    if let Some(e) = entry {
        // SAFETY: main thread; eval_env was preserved when the server started.
        unsafe { R_ReleaseObject(e.app.eval_env) };
    }
}
