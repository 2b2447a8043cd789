//! TLS on the R side: a `tlsConfig()` list read into the engine's [`TlsSettings`], and a
//! TLS connection's facts defined in a Rook env under mod_ssl's names.
//!
//! Why this is sound: main thread (a token); the list is checked to be a list before its
//! elements are read, each element's type and length are checked by `rvalue`, and every
//! value made for an env is protected until it is bound (`set`).
use std::path::PathBuf;

use extendr_api::prelude::Robj;
use extendr_api::{Error, GetSexp, Result};
use rookd_engine::{ClientAuth, TlsInfo, TlsSettings};

use crate::rapi::r::{self, MainThread};
use crate::rapi::*;
use crate::rvalue;

/// # Safety
/// `list` is a live R object.
unsafe fn one_string(mt: MainThread, list: SEXP, name: &str) -> Result<Option<String>> {
    let Some(v) = r::list_get(mt, list, name).filter(|v| !r::is_null(mt, *v)) else { return Ok(None) };
    match rvalue::strings(mt, v) {
        Ok(mut s) if s.len() <= 1 => Ok(s.pop().filter(|x| !x.is_empty())),
        _ => Err(Error::Other(format!("tls: `{name}` must be a single string"))),
    }
}

/// `NULL` → plain HTTP; a `tlsConfig()` (R/tls.R checks it first) → its settings.
pub fn settings(mt: MainThread, tls: &Robj) -> Result<Option<TlsSettings>> {
    // SAFETY: main thread; `tls` is alive for the call and checked to be a list.
    unsafe {
        let x = tls.get();
        if r::is_null(mt, x) {
            return Ok(None);
        }
        if type_of(x) != VECSXP {
            return Err(Error::Other("`tls` must be NULL or a tlsConfig()".into()));
        }
        let need = |name: &str| -> Result<PathBuf> {
            one_string(mt, x, name)?.map(PathBuf::from).ok_or_else(|| Error::Other(format!("tls: `{name}` is missing")))
        };
        let client_auth = match one_string(mt, x, "client_auth")?.as_deref() {
            None | Some("none") => ClientAuth::None,
            Some("optional") => ClientAuth::Optional,
            Some("required") => ClientAuth::Required,
            Some(other) => return Err(Error::Other(format!("tls: unknown client_auth {other:?}"))),
        };
        Ok(Some(TlsSettings {
            cert_file: need("cert")?,
            key_file: need("key")?,
            client_ca_file: one_string(mt, x, "client_ca")?.map(PathBuf::from),
            client_auth,
        }))
    }
}

/// # Safety
/// `env` is a live environment.
unsafe fn set(mt: MainThread, env: SEXP, name: &str, value: &str) {
    let v = Rf_protect(r::string(mt, value));
    Rf_defineVar(r::sym(mt, name), v, env);
    Rf_unprotect(1);
}

/// `HTTPS`, `rook.url_scheme` and the `SSL_*` variables of a TLS request.
///
/// # Safety
/// `env` is a live environment; runs R's allocator (the caller is guarded, as env::build).
pub unsafe fn define_env(mt: MainThread, env: SEXP, url_scheme: SEXP, info: &TlsInfo) {
    Rf_defineVar(url_scheme, Rf_protect(r::string(mt, "https")), env);
    Rf_unprotect(1);
    set(mt, env, "HTTPS", "on");
    set(mt, env, "SSL_PROTOCOL", info.protocol);
    set(mt, env, "SSL_CIPHER", &info.cipher);
    if let Some(sni) = &info.sni {
        set(mt, env, "SSL_TLS_SNI", sni);
    }
    match &info.client {
        Some(c) => {
            set(mt, env, "SSL_CLIENT_VERIFY", "SUCCESS");
            set(mt, env, "SSL_CLIENT_S_DN", &c.subject_dn);
            set(mt, env, "SSL_CLIENT_I_DN", &c.issuer_dn);
            set(mt, env, "SSL_CLIENT_M_SERIAL", &c.serial);
            set(mt, env, "SSL_CLIENT_V_END", &c.not_after);
        }
        None => set(mt, env, "SSL_CLIENT_VERIFY", "NONE"),
    }
}
