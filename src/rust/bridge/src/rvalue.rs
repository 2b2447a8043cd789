//! Checked reads of R values into Rust, shared by the server options (options.rs) and the
//! static-path options (statics.rs): the one copy of "a single number or flag, not NA" and
//! "a character vector without NA". Callers word the error for their context.
//!
//! Why this is sound: each function checks the type and length of the live object it is
//! given before reading its data, so every read is in bounds and of the right type.
use crate::rapi::r::{self, MainThread};
use crate::rapi::*;

/// Why a value was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// Not a logical, integer or double vector of length one.
    NotOneNumber,
    /// A number or flag that is NA.
    Na,
    /// Not a character vector.
    NotCharacter,
    /// A character vector holding NA.
    HasNa,
}

/// A logical, integer or double of length one, not NA, as a double.
///
/// # Safety
/// `v` is a live R object.
pub unsafe fn number(_: MainThread, v: SEXP) -> Result<f64, Refused> {
    let t = type_of(v);
    if Rf_xlength(v) != 1 || !(t == REALSXP || t == INTSXP || t == LGLSXP) {
        return Err(Refused::NotOneNumber);
    }
    let x = match t {
        REALSXP => *REAL(v),
        // A logical is stored as an int, NA as NA_INTEGER.
        _ => match *INTEGER(v) {
            NA_INTEGER => f64::NAN,
            i => f64::from(i),
        },
    };
    if x.is_nan() {
        return Err(Refused::Na);
    }
    Ok(x)
}

/// TRUE or FALSE (or a number: non-zero is TRUE), not NA.
///
/// # Safety
/// As [`number`].
pub unsafe fn flag(mt: MainThread, v: SEXP) -> Result<bool, Refused> {
    number(mt, v).map(|x| x != 0.0)
}

/// The elements of a character vector, none NA, in UTF-8.
///
/// # Safety
/// As [`number`].
pub unsafe fn strings(mt: MainThread, v: SEXP) -> Result<Vec<String>, Refused> {
    if type_of(v) != STRSXP {
        return Err(Refused::NotCharacter);
    }
    (0..Rf_xlength(v))
        .map(|i| {
            let c = STRING_ELT(v, i);
            if c == R_NaString {
                Err(Refused::HasNa)
            } else {
                Ok(r::char_utf8(mt, c).into_owned())
            }
        })
        .collect()
}
