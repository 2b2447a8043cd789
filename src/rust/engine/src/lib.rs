//! rookd-engine: the HTTP/1.1 and WebSocket server behind the rookd R package.
//!
//! It knows nothing of R. A host (rookd's extendr bridge, or a test) creates an [`Engine`]
//! with a [`Waker`], starts servers, and answers the [`Event`]s
//! that come through the [`Door`] on its own main thread.
//!
//! The modules form layers that only import downwards; `src/rust/README.md` draws the map.
pub mod access_log;
pub mod body;
mod body_in;
pub mod budget;
pub mod compress;
pub mod config;
pub(crate) mod conn;
pub mod door;
pub mod error;
pub mod event;
pub mod forwarded;
pub mod http_response;
pub mod ids;
pub mod listener;
pub mod metrics;
pub mod ops;
pub mod pool;
pub mod proxy_protocol;
mod request_slot;
pub mod response;
mod runtime;
pub mod server;
mod service;
mod shared;
pub mod statics;
pub mod tls;
pub mod uri;
pub mod ws;

/// The per-connection clock (header and keep-alive timeouts), at its former path.
pub use conn::clock as conn_clock;

use std::sync::Arc;
use std::time::Duration;

pub use config::{H2Config, ServerConfig, WsConfig};
pub use door::{Door, Waker};
pub use error::EngineError;
pub use event::{Event, HeadersVerdict, RequestHead, RequestId, ServerId};
pub use listener::{BindTarget, LocalAddr};
pub use response::{Body, Response, ResponseError};
pub use server::{AppCaps, ServerHandle};
pub use statics::{StaticPaths, StaticPathsHandle};
pub use tls::{ClientAuth, TlsInfo, TlsSettings};

/// The I/O runtime and the Door; one per host process.
pub struct Engine {
    rt: tokio::runtime::Runtime,
    door: Arc<Door>,
    budget: Arc<budget::ByteBudget>,
}

impl Engine {
    pub fn new(worker_threads: usize, waker: Waker) -> Result<Engine, EngineError> {
        let rt = runtime::build(worker_threads).map_err(EngineError::Runtime)?;
        Ok(Engine { rt, door: Door::new(waker), budget: budget::ByteBudget::new() })
    }

    pub fn door(&self) -> &Arc<Door> {
        &self.door
    }

    /// Bytes of request bodies and WebSocket messages held for the host right now.
    pub fn inflight_bytes(&self) -> usize {
        self.budget.used()
    }

    pub fn runtime(&self) -> &tokio::runtime::Handle {
        self.rt.handle()
    }

    /// Bind (on this thread, so a busy port is an immediate error) and start serving.
    pub fn start_server(
        &self,
        target: &BindTarget,
        config: ServerConfig,
        caps: AppCaps,
        statics: StaticPaths,
    ) -> Result<ServerHandle, EngineError> {
        self.start_server_tls(target, config, caps, statics, None).map(|(h, _)| h)
    }

    /// As [`Engine::start_server`], over TLS when `tls` is given; also returns warnings
    /// about the certificate (expired, not yet valid) for the host to show.
    pub fn start_server_tls(
        &self,
        target: &BindTarget,
        config: ServerConfig,
        caps: AppCaps,
        statics: StaticPaths,
        tls: Option<TlsSettings>,
    ) -> Result<(ServerHandle, Vec<String>), EngineError> {
        let (rt, door, budget) = (self.rt.handle(), Arc::clone(&self.door), Arc::clone(&self.budget));
        server::start(rt, door, budget, target, config, caps, statics, tls)
    }

    /// Stop the runtime's threads, giving tasks a moment to finish.
    pub fn shutdown(self, timeout: Duration) {
        self.rt.shutdown_timeout(timeout);
    }
}
