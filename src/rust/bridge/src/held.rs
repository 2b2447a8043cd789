//! Large R vectors handed to the engine without copying.
//!
//! A response body or WebSocket message of `ZERO_COPY_MIN` bytes or more is not copied
//! out of R: the engine gets a `Bytes` that points into the R vector (a raw vector's
//! data, or a CHARSXP's bytes when they are already UTF-8), and the vector is kept alive
//! in a slab until the engine drops the `Bytes`.
//!
//! Why this is sound:
//! - R never moves an object, so the pointer stays valid while the object is reachable;
//!   the slab (a preserved list) keeps it reachable.
//! - The slab's reference raises the vector's reference count, so R code that modifies
//!   the vector afterwards (`x[1] <- 0`) modifies a copy, never the bytes being sent.
//!   CHARSXPs are immutable anyway.
//! - The engine may drop the `Bytes` on any thread, but only the main thread may touch
//!   the slab: a drop only queues the slab key and schedules a release on the main thread
//!   through later (the same door R is woken by; see `wake.rs`).
//!
//! Small payloads are copied: a copy of a few KiB is cheaper than the bookkeeping.
use std::cell::RefCell;
use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use bytes::Bytes;

use crate::rapi::r::MainThread;
use crate::rapi::*;
use crate::slab::SexpSlab;
use crate::wake;

/// Payloads at least this large are lent, not copied.
pub const ZERO_COPY_MIN: usize = 64 * 1024;

thread_local! {
    static HELD: RefCell<SexpSlab> = RefCell::new(SexpSlab::new());
}

static NEXT_KEY: AtomicU64 = AtomicU64::new(1);
static TO_RELEASE: Mutex<Vec<u64>> = Mutex::new(Vec::new());
static RELEASE_SCHEDULED: AtomicBool = AtomicBool::new(false);

/// Bytes inside an R object held in the slab under `key`.
struct Lent {
    key: u64,
    /// Address and length of the bytes; an address, not a pointer, so `Lent` is `Send`.
    addr: usize,
    len: usize,
}

impl AsRef<[u8]> for Lent {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `addr..addr+len` is the data of an R object kept alive (and unmodified,
        // see the module comment) in the slab until this `Lent` is dropped.
        unsafe { std::slice::from_raw_parts(self.addr as *const u8, self.len) }
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        TO_RELEASE.lock().unwrap_or_else(|e| e.into_inner()).push(self.key);
        if !RELEASE_SCHEDULED.swap(true, Ordering::AcqRel) {
            wake::schedule(release_callback, 0.0);
        }
    }
}

/// Lend `len` bytes at `data`, which belong to `owner`.
///
/// # Safety
/// `owner` is a live R object whose data (immutable from now on, see the module
/// comment) is `data..data+len`.
unsafe fn lend(mt: MainThread, owner: SEXP, data: *const u8, len: usize) -> Bytes {
    let key = NEXT_KEY.fetch_add(1, Ordering::Relaxed);
    HELD.with(|h| SexpSlab::insert_in(mt, h, key, owner)); // grows with no borrow held (r::guarded)
    Bytes::from_owner(Lent { key, addr: data as usize, len })
}

/// The bytes of a raw vector: lent if large, copied if small.
///
/// # Safety
/// `x` is a live RAWSXP.
pub unsafe fn raw_bytes(mt: MainThread, x: SEXP) -> Bytes {
    let n = Rf_xlength(x) as usize;
    if n == 0 {
        return Bytes::new();
    }
    let data = RAW(x) as *const u8;
    if n < ZERO_COPY_MIN {
        return Bytes::copy_from_slice(std::slice::from_raw_parts(data, n));
    }
    lend(mt, x, data, n)
}

/// The bytes of a CHARSXP (not NA) in UTF-8: lent if large and stored as UTF-8 (or
/// ASCII, or "bytes", which are sent as they are), else translated and copied.
///
/// # Safety
/// `c` is a live CHARSXP.
pub unsafe fn char_bytes(mt: MainThread, c: SEXP) -> Bytes {
    let n = Rf_xlength(c) as usize;
    let stored = R_CHAR(c);
    // translateCharUTF8 returns the stored bytes themselves when they need no translation.
    if n >= ZERO_COPY_MIN && (Rf_getCharCE(c) == CE_BYTES || Rf_translateCharUTF8(c) == stored) {
        return lend(mt, c, stored as *const u8, n);
    }
    Bytes::from(crate::rapi::r::char_utf8(mt, c).into_owned())
}

/// Let go of every object the engine has finished with.
fn release_now(mt: MainThread) {
    RELEASE_SCHEDULED.store(false, Ordering::Release);
    let keys = std::mem::take(&mut *TO_RELEASE.lock().unwrap_or_else(|e| e.into_inner()));
    if keys.is_empty() {
        return;
    }
    HELD.with(|h| {
        let mut slab = h.borrow_mut();
        for k in keys {
            slab.take(mt, k);
        }
    });
}

/// Let go now of whatever the engine has already dropped (package unload, after the
/// engine's threads have stopped). Objects still lent are kept: a thread that outlived
/// the shutdown may still read them.
pub fn release_dropped(mt: MainThread) {
    release_now(mt);
}

extern "C" fn release_callback(_: *mut c_void) {
    // SAFETY: later runs its callbacks on R's main thread.
    let _ = std::panic::catch_unwind(|| unsafe { MainThread::run(release_now) });
}

/// Objects currently lent to the engine (for tests and diagnostics).
pub fn lent_count() -> usize {
    HELD.with(|h| h.borrow().len())
}
