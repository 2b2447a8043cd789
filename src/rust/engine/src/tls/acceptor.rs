//! A TLS server's current configuration, replaceable while it runs, and the handshake.
//!
//! Each accepted connection takes the configuration current at that moment (an `Arc`
//! clone under a short read lock); a reload builds the new one completely first (so a bad
//! file leaves the old one in place) and swaps it in: new connections get the new
//! certificate, connections already open keep theirs until they close.
//!
//! The handshake runs in the connection's own task, never in the accept loop, bounded by
//! `tls_handshake_timeout`: a client that sends garbage or nothing only costs its own task.
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::server::TlsStream;

use super::config::{self, TlsError, TlsSettings};
use super::info::TlsInfo;

#[derive(Debug, thiserror::Error)]
pub enum TlsReloadError {
    #[error("this server does not use TLS")]
    NotTls,
    #[error(transparent)]
    Load(#[from] TlsError),
}

pub(crate) struct TlsAcceptor {
    current: RwLock<Arc<rustls::ServerConfig>>,
    /// The files the current configuration was read from (what a bare reload re-reads).
    settings: Mutex<TlsSettings>,
    alpn_h2: bool,
}

impl TlsAcceptor {
    /// Load `settings`; the warnings are the host's to show (an expired certificate).
    pub(crate) fn new(settings: TlsSettings, alpn_h2: bool) -> Result<(Arc<TlsAcceptor>, Vec<String>), TlsError> {
        let loaded = config::load(&settings, alpn_h2)?;
        let me = TlsAcceptor { current: RwLock::new(loaded.config), settings: Mutex::new(settings), alpn_h2 };
        Ok((Arc::new(me), loaded.warnings))
    }

    /// Re-read the current files (`None`) or switch to new ones; on error nothing changes.
    pub(crate) fn reload(&self, settings: Option<TlsSettings>) -> Result<Vec<String>, TlsError> {
        let settings = match settings {
            Some(s) => s,
            None => self.settings.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        };
        let loaded = config::load(&settings, self.alpn_h2)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = loaded.config;
        *self.settings.lock().unwrap_or_else(|p| p.into_inner()) = settings;
        Ok(loaded.warnings)
    }

    fn current(&self) -> Arc<rustls::ServerConfig> {
        Arc::clone(&self.current.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// The handshake, within `timeout`; `None` if it failed or ran out (the caller just
    /// drops the socket: there is no one to tell).
    pub(crate) async fn handshake<IO>(&self, io: IO, timeout: Duration) -> Option<(TlsStream<IO>, Arc<TlsInfo>)>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let acceptor = tokio_rustls::TlsAcceptor::from(self.current());
        let stream = tokio::time::timeout(timeout, acceptor.accept(io)).await.ok()?.ok()?;
        let info = Arc::new(TlsInfo::from_connection(stream.get_ref().1));
        Some((stream, info))
    }
}
