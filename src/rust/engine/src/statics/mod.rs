//! Static paths: files served entirely by the engine, never by R.
//! (Contract used by the rest of the engine; the full implementation lives in this folder.)
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::Request;

use crate::service::HttpResponse;

/// The server's table of static paths; cheap to clone (shared), replaced whole on change.
#[derive(Clone, Default)]
pub struct StaticPaths {
    inner: Arc<Vec<()>>,
}

impl StaticPaths {
    /// Answer `req` from a static path if one matches; `None` passes it on to the app.
    pub async fn serve(&self, _req: &Request<Incoming>, _compression: bool) -> Option<HttpResponse> {
        if self.inner.is_empty() {
            return None;
        }
        None
    }
}
