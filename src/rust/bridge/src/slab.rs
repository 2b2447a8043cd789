//! Keeps R objects alive between events without R_PreserveObject's linear release and
//! without interning a symbol per key: one preserved list, slots reused through a free list.
//!
//! Why this is sound: `list` is null or a VECSXP preserved by this slab (released only
//! when replaced by a larger copy), and every index in `index` and `free` is below its
//! length; so reads and writes of its slots stay in bounds, and kept objects stay
//! reachable. Only the main thread (a token) touches it: slabs live in thread-locals.
use std::cell::RefCell;
use std::collections::HashMap;

use crate::rapi::r::MainThread;
use crate::rapi::*;

pub struct SexpSlab {
    list: SEXP,
    free: Vec<isize>,
    index: HashMap<u64, isize>,
}

impl SexpSlab {
    pub fn new() -> Self {
        SexpSlab { list: std::ptr::null_mut(), free: Vec::new(), index: HashMap::new() }
    }

    fn grow(&mut self, _: MainThread) {
        // SAFETY: main thread (the token); the new list is protected until preserved, and
        // the old list's slots are in bounds.
        let (old_len, new_len) = unsafe {
            let old_len = if self.list.is_null() { 0 } else { Rf_xlength(self.list) };
            let new_len = (old_len * 2).max(64);
            let list = Rf_protect(Rf_allocVector(VECSXP, new_len));
            for i in 0..old_len {
                SET_VECTOR_ELT(list, i, VECTOR_ELT(self.list, i));
            }
            R_PreserveObject(list);
            Rf_unprotect(1);
            if !self.list.is_null() {
                R_ReleaseObject(self.list);
            }
            self.list = list;
            (old_len, new_len)
        };
        self.free.extend((old_len..new_len).rev());
    }

    /// # Safety
    /// `x` is a live R object.
    pub unsafe fn insert(&mut self, mt: MainThread, key: u64, x: SEXP) {
        if let Some(&i) = self.index.get(&key) {
            SET_VECTOR_ELT(self.list, i, x);
            return;
        }
        if self.free.is_empty() {
            Rf_protect(x);
            self.grow(mt);
            Rf_unprotect(1);
        }
        if let Some(i) = self.free.pop() {
            SET_VECTOR_ELT(self.list, i, x);
            self.index.insert(key, i);
        }
    }

    /// The object kept under `key` (reachable while kept).
    pub fn get(&self, _: MainThread, key: u64) -> Option<SEXP> {
        // SAFETY: main thread (the token); `list` is the preserved list and `i` < its length.
        self.index.get(&key).map(|&i| unsafe { VECTOR_ELT(self.list, i) })
    }

    /// Remove and return; the caller must protect the result before allocating.
    pub fn take(&mut self, _: MainThread, key: u64) -> Option<SEXP> {
        let i = self.index.remove(&key)?;
        // SAFETY: main thread (the token); `list` is the preserved list and `i` < its length.
        let x = unsafe {
            let x = VECTOR_ELT(self.list, i);
            SET_VECTOR_ELT(self.list, i, R_NilValue);
            x
        };
        self.free.push(i);
        Some(x)
    }

    /// Insert into the slab in `cell`, allocating (when it must grow) with no borrow of
    /// `cell` held: an allocation failure is an R error (a longjmp), which would otherwise
    /// leave the cell borrowed for ever (see `rapi::r::guarded`).
    /// # Safety
    /// `x` is a live R object.
    pub unsafe fn insert_in(mt: MainThread, cell: &RefCell<SexpSlab>, key: u64, x: SEXP) {
        let (must_grow, old) = {
            let s = cell.borrow();
            (s.free.is_empty() && !s.index.contains_key(&key), s.list)
        };
        if must_grow {
            let old_len = if old.is_null() { 0 } else { Rf_xlength(old) };
            let new_len = (old_len * 2).max(64);
            Rf_protect(x);
            let list = Rf_protect(Rf_allocVector(VECSXP, new_len));
            for i in 0..old_len {
                SET_VECTOR_ELT(list, i, VECTOR_ELT(old, i));
            }
            R_PreserveObject(list);
            Rf_unprotect(2);
            let mut s = cell.borrow_mut();
            if !s.list.is_null() {
                R_ReleaseObject(s.list);
            }
            s.list = list;
            s.free.extend((old_len..new_len).rev());
        }
        // Cannot allocate now: a free slot exists (or the key has one).
        cell.borrow_mut().insert(mt, key, x);
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }
}
