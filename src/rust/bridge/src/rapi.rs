//! The slice of R's C API the hot path uses, declared here with plain C types.
//!
//! Everything in this module may only be called on R's main thread (the bridge only calls
//! it from `.Call` entry points and from the drain, which later runs on the main thread).
//!
//! Why this is sound: the declarations match R's headers (Rinternals.h, R_ext/*.h) in
//! C types; every raw function is `unsafe` to call and each call site says why it holds.
//! The helpers in [`r`] that need only "main thread" take a [`r::MainThread`] token (see
//! main_thread.rs) and are safe; those that read an `SEXP` stay `unsafe fn` with the
//! object's liveness (and type) as their `# Safety` condition.
#![allow(non_upper_case_globals, non_snake_case)]
// SEXP is a pointer to an opaque struct: passing it to C is sound whatever the struct holds.
#![allow(improper_ctypes)]
use std::ffi::{c_char, c_double, c_int, c_void};

pub use extendr_ffi::SEXP;

pub const NILSXP: c_int = 0;
pub const CLOSXP: c_int = 3;
pub const ENVSXP: c_int = 4;
pub const SPECIALSXP: c_int = 7;
pub const BUILTINSXP: c_int = 8;
pub const LGLSXP: c_int = 10;
pub const INTSXP: c_int = 13;
pub const REALSXP: c_int = 14;
pub const STRSXP: c_int = 16;
pub const VECSXP: c_int = 19;
pub const EXTPTRSXP: c_int = 22;
pub const RAWSXP: c_int = 24;

pub const CE_UTF8: c_int = 1;
pub const CE_BYTES: c_int = 3;
pub const NA_INTEGER: c_int = i32::MIN;

extern "C" {
    pub static mut R_NilValue: SEXP;
    pub static mut R_GlobalEnv: SEXP;
    pub static mut R_BaseEnv: SEXP;
    pub static mut R_EmptyEnv: SEXP;
    pub static mut R_NamesSymbol: SEXP;
    pub static mut R_ClassSymbol: SEXP;
    pub static mut R_NaString: SEXP;
    pub static mut R_UnboundValue: SEXP;

    #[link_name = "TYPEOF"]
    pub fn type_of(x: SEXP) -> c_int;
    pub fn Rf_xlength(x: SEXP) -> isize;
    pub fn Rf_protect(x: SEXP) -> SEXP;
    pub fn Rf_unprotect(n: c_int);
    /// PROTECT `x` and store in `*index` its slot: the stack's height before the push.
    pub fn R_ProtectWithIndex(x: SEXP, index: *mut c_int);
    pub fn R_PreserveObject(x: SEXP);
    pub fn R_ReleaseObject(x: SEXP);

    pub fn Rf_allocVector(t: c_int, n: isize) -> SEXP;
    pub fn Rf_mkCharLenCE(s: *const c_char, len: c_int, enc: c_int) -> SEXP;
    pub fn Rf_ScalarString(x: SEXP) -> SEXP;
    pub fn Rf_ScalarInteger(x: c_int) -> SEXP;
    pub fn Rf_ScalarLogical(x: c_int) -> SEXP;
    pub fn Rf_ScalarReal(x: c_double) -> SEXP;
    pub fn Rf_install(s: *const c_char) -> SEXP;
    pub fn Rf_lang1(f: SEXP) -> SEXP;
    pub fn Rf_lang2(f: SEXP, a: SEXP) -> SEXP;
    pub fn Rf_lang3(f: SEXP, a: SEXP, b: SEXP) -> SEXP;
    pub fn Rf_lang4(f: SEXP, a: SEXP, b: SEXP, c: SEXP) -> SEXP;

    pub fn STRING_ELT(x: SEXP, i: isize) -> SEXP;
    pub fn SET_STRING_ELT(x: SEXP, i: isize, v: SEXP);
    pub fn VECTOR_ELT(x: SEXP, i: isize) -> SEXP;
    pub fn SET_VECTOR_ELT(x: SEXP, i: isize, v: SEXP) -> SEXP;
    pub fn R_CHAR(x: SEXP) -> *const c_char;
    pub fn Rf_translateCharUTF8(x: SEXP) -> *const c_char;
    pub fn Rf_getCharCE(x: SEXP) -> c_int;
    pub fn LOGICAL(x: SEXP) -> *mut c_int;
    pub fn INTEGER(x: SEXP) -> *mut c_int;
    pub fn REAL(x: SEXP) -> *mut c_double;
    pub fn RAW(x: SEXP) -> *mut u8;
    pub fn Rf_inherits(x: SEXP, class: *const c_char) -> c_int;
    pub fn Rf_getAttrib(x: SEXP, name: SEXP) -> SEXP;
    pub fn Rf_setAttrib(x: SEXP, name: SEXP, v: SEXP) -> SEXP;

    pub fn R_NewEnv(parent: SEXP, hash: c_int, size: c_int) -> SEXP;
    pub fn Rf_defineVar(sym: SEXP, v: SEXP, env: SEXP);
    pub fn Rf_findVarInFrame(env: SEXP, sym: SEXP) -> SEXP;
    pub fn Rf_shallow_duplicate(x: SEXP) -> SEXP;
    pub fn SET_CLOENV(x: SEXP, env: SEXP);

    pub fn R_tryEval(call: SEXP, env: SEXP, error: *mut c_int) -> SEXP;

    pub fn R_MakeExternalPtr(p: *mut c_void, tag: SEXP, prot: SEXP) -> SEXP;
    pub fn R_ExternalPtrTag(s: SEXP) -> SEXP;
    pub fn R_ExternalPtrAddr(s: SEXP) -> *mut c_void;
    pub fn R_ClearExternalPtr(s: SEXP);
    pub fn R_RegisterCFinalizerEx(s: SEXP, f: Option<unsafe extern "C" fn(SEXP)>, onexit: c_int);

    /// Runs `fun(data)` in a new top-level context: an R error or interrupt inside jumps
    /// back here (after R printed the message) and the result is 0 (FALSE). Not in
    /// extendr-ffi 0.9, so declared here (R_ext/Boolean.h: Rboolean is a C enum, an int).
    pub fn R_ToplevelExec(fun: Option<unsafe extern "C" fn(*mut c_void)>, data: *mut c_void) -> c_int;

    pub fn R_GetCCallable(package: *const c_char, name: *const c_char) -> *const c_void;
    pub fn REprintf(fmt: *const c_char, ...);

    /// R's list of input handlers: file descriptors its event loop watches while it waits
    /// (at the console prompt, in `Sys.sleep()` and other waits) and the function it calls
    /// when one is readable (R_ext/eventloop.h; not in extendr-ffi 0.9).
    pub static mut R_InputHandlers: *mut InputHandler;
    pub fn addInputHandler(
        handlers: *mut InputHandler,
        fd: c_int,
        handler: Option<extern "C" fn(*mut c_void)>,
        activity: c_int,
    ) -> *mut InputHandler;
    pub fn removeInputHandler(handlers: *mut *mut InputHandler, it: *mut InputHandler) -> c_int;
}

/// R's `InputHandler` (R_ext/eventloop.h), only ever handled by pointer.
#[repr(C)]
pub struct InputHandler {
    _opaque: [u8; 0],
}

/// Main-thread helpers over raw SEXPs.
pub mod r {
    use super::*;
    pub use crate::main_thread::MainThread;

    /// A CHARSXP in UTF-8 from Rust text (unprotected: protect it before allocating).
    /// Like every allocation, an out-of-memory R error here leaves by a longjmp (see
    /// `guarded`). Text holding NUL is cut there by R.
    pub fn mkchar(_: MainThread, s: &str) -> SEXP {
        let len = c_int::try_from(s.len()).unwrap_or(c_int::MAX);
        // SAFETY: main thread (the token); `s` is valid for `len` bytes.
        unsafe { Rf_mkCharLenCE(s.as_ptr().cast(), len, CE_UTF8) }
    }

    /// A character vector of length one (unprotected).
    pub fn string(mt: MainThread, s: &str) -> SEXP {
        let c = mkchar(mt, s);
        // SAFETY: main thread; `c` is a fresh CHARSXP, which ScalarString protects.
        unsafe { Rf_ScalarString(c) }
    }

    /// The symbol `name` (symbols are never collected). Names reach here from the bridge
    /// or are checked first (R refuses names over 10,000 bytes with an R error).
    pub fn sym(_: MainThread, name: &str) -> SEXP {
        let c = std::ffi::CString::new(name).unwrap_or_default();
        // SAFETY: main thread; `c` is NUL-terminated.
        unsafe { Rf_install(c.as_ptr()) }
    }

    /// # Safety
    /// `x` is a live R object.
    pub unsafe fn is_null(_: MainThread, x: SEXP) -> bool {
        type_of(x) == NILSXP
    }

    /// Element `name` of a named list, or None.
    ///
    /// # Safety
    /// `list` is a live R object.
    pub unsafe fn list_get(mt: MainThread, list: SEXP, name: &str) -> Option<SEXP> {
        if type_of(list) != VECSXP {
            return None;
        }
        let names = Rf_getAttrib(list, R_NamesSymbol);
        if type_of(names) != STRSXP {
            return None;
        }
        let n = Rf_xlength(list);
        for i in 0..n {
            let nm = STRING_ELT(names, i);
            if nm != R_NaString && cstr(mt, nm) == name {
                return Some(VECTOR_ELT(list, i));
            }
        }
        None
    }

    /// For `c(file = path)`: the value of the element named `name` of a character vector.
    ///
    /// # Safety
    /// `x` is a live R object.
    pub unsafe fn list_get_names_first(mt: MainThread, x: SEXP, name: &str) -> Option<String> {
        if type_of(x) != STRSXP || Rf_xlength(x) != 1 {
            return None;
        }
        let names = Rf_getAttrib(x, R_NamesSymbol);
        if type_of(names) != STRSXP || STRING_ELT(names, 0) == R_NaString || cstr(mt, STRING_ELT(names, 0)) != name {
            return None;
        }
        let v = STRING_ELT(x, 0);
        (v != R_NaString).then(|| char_utf8(mt, v).into_owned())
    }

    /// The bytes of a CHARSXP, converted to UTF-8 (R strings may be latin1 or native).
    ///
    /// # Safety
    /// `c` is a live CHARSXP (not `NA_character_`'s), which outlives `'a`.
    pub unsafe fn char_utf8<'a>(_: MainThread, c: SEXP) -> std::borrow::Cow<'a, str> {
        // "bytes" strings cannot be translated (R would raise an error, a longjmp through
        // Rust frames): take their bytes as they are.
        let p = if Rf_getCharCE(c) == CE_BYTES { R_CHAR(c) } else { Rf_translateCharUTF8(c) };
        std::ffi::CStr::from_ptr(p).to_string_lossy()
    }

    /// The bytes of a CHARSXP as stored (names are ASCII in practice).
    ///
    /// # Safety
    /// As [`char_utf8`].
    pub unsafe fn cstr<'a>(_: MainThread, c: SEXP) -> std::borrow::Cow<'a, str> {
        std::ffi::CStr::from_ptr(R_CHAR(c)).to_string_lossy()
    }

    /// Print to R's stderr (the console in GUIs). `%` in text is safe: passed as an argument.
    pub fn eprint(_: MainThread, text: &str) {
        let c = std::ffi::CString::new(text.replace('\0', "")).unwrap_or_default();
        // SAFETY: main thread (the token); the format string is a literal.
        unsafe { REprintf(c"%s".as_ptr(), c.as_ptr()) };
    }

    /// Run `f` under R's unwind protection (`R_ToplevelExec`): `None` if an R error or
    /// interrupt (or a panic) cut it short. R has then printed the error on stderr and
    /// reset its own state (the protect stack, the context stack); the caller answers the
    /// event and releases what it owns.
    ///
    /// Why this is sound: R leaves `f` by a longjmp to the context `R_ToplevelExec` set
    /// up, skipping the Rust frames of `f` and the trampoline without running their
    /// destructors. Skipping a destructor only leaks; it never runs code twice or on freed
    /// memory. So `f` must own nothing whose drop matters (capture references; keep the
    /// answer channels in the caller's frame and take them only once no R call follows)
    /// and must never hold a `RefCell` borrow across an R call (a skipped borrow guard
    /// would leave the cell borrowed for ever). `Protect` inside `f` is fine: R restores
    /// the protect stack to its height at the context's start. A panic is caught inside
    /// the trampoline, so it never unwinds into R's C frames. The rules on `f` are about
    /// leaks and stuck borrows, not memory safety: with the token, this is a safe fn.
    pub fn guarded<T, F: FnOnce() -> T>(_: MainThread, f: F) -> Option<T> {
        struct Job<F, T> {
            f: Option<F>,
            out: Option<T>,
        }
        unsafe extern "C" fn trampoline<T, F: FnOnce() -> T>(data: *mut c_void) {
            // SAFETY: `data` is the `Job` on `guarded`'s frame, alive for this call.
            let job = &mut *(data as *mut Job<F, T>);
            if let Some(f) = job.f.take() {
                job.out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).ok();
            }
        }
        let mut job = Job { f: Some(f), out: None };
        // SAFETY: main thread (the token); `job` outlives the call, and the trampoline
        // matches its type.
        let ok = unsafe { R_ToplevelExec(Some(trampoline::<T, F>), (&mut job as *mut Job<F, T>).cast()) };
        if ok == 0 {
            None
        } else {
            job.out
        }
    }

    /// A symbol to tag external pointers with, checked on every use (see `tagged_addr`).
    /// Callers cache it (`cached_tag`): symbols are never collected.
    pub fn tag(_: MainThread, name: &std::ffi::CStr) -> SEXP {
        // SAFETY: main thread (the token); `name` is NUL-terminated.
        unsafe { Rf_install(name.as_ptr()) }
    }

    /// `tag(name)`, looked up once per `cell`.
    pub fn cached_tag(
        mt: MainThread,
        cell: &'static std::thread::LocalKey<std::cell::Cell<SEXP>>,
        name: &std::ffi::CStr,
    ) -> SEXP {
        let t = cell.with(|c| c.get());
        if !t.is_null() {
            return t;
        }
        let t = tag(mt, name);
        cell.with(|c| c.set(t));
        t
    }

    /// The address in external pointer `x` if `x` is one tagged `tag`: `Err(())` if `x`
    /// is something else (another kind of pointer, or not a pointer at all), `Ok(null)`
    /// if it is ours but already cleared.
    ///
    /// # Safety
    /// `x` is a live R object.
    pub unsafe fn tagged_addr(_: MainThread, x: SEXP, tag: SEXP) -> Result<*mut c_void, ()> {
        if type_of(x) != EXTPTRSXP || R_ExternalPtrTag(x) != tag {
            return Err(());
        }
        Ok(R_ExternalPtrAddr(x))
    }

    /// The PROTECT stack's height now (R has no getter: push a slot, read its index, pop).
    pub fn protect_depth(_: MainThread) -> c_int {
        let mut i: c_int = 0;
        // SAFETY: main thread (the token); one slot pushed and popped at once.
        unsafe {
            R_ProtectWithIndex(R_NilValue, &mut i);
            Rf_unprotect(1);
        }
        i
    }

    /// Pop what was left on the PROTECT stack above `depth`, and say how many.
    ///
    /// For after an event: C code that an app called may return with objects still
    /// PROTECTed (R then warns "stack imbalance"); each is left there for good, and after
    /// ~50,000 R fails with "protection stack overflow", so a client repeating a request
    /// could bring R down. Why this is sound: the caller measured `depth` before the
    /// event and every PROTECT taken since by the bridge itself is already released
    /// (`Protect` guards dropped), so the slots above `depth` belong to calls that have
    /// returned, which cannot use them any more; dropping them is what R does itself when
    /// an error unwinds to a top-level context.
    ///
    /// # Safety
    /// No `Protect` guard or other PROTECT of the caller's taken after `depth` was measured
    /// is still alive.
    pub unsafe fn restore_protect_depth(mt: MainThread, depth: c_int) -> c_int {
        let extra = protect_depth(mt) - depth;
        if extra > 0 {
            Rf_unprotect(extra);
        }
        extra.max(0)
    }

    /// PROTECT for the length of a scope. Made with the token, so it exists only on the
    /// main thread (and, holding a `MainThread`, cannot leave it).
    pub struct Protect<'a>(c_int, MainThread<'a>);

    impl<'a> Protect<'a> {
        pub fn new(mt: MainThread<'a>) -> Self {
            Protect(0, mt)
        }
        /// # Safety
        /// `x` is a live R object (or R_NilValue).
        pub unsafe fn add(&mut self, x: SEXP) -> SEXP {
            Rf_protect(x);
            self.0 += 1;
            x
        }
    }

    impl Drop for Protect<'_> {
        fn drop(&mut self) {
            if self.0 > 0 {
                // SAFETY: balanced with the protects taken by `add` on this thread.
                unsafe { Rf_unprotect(self.0) };
            }
        }
    }
}
