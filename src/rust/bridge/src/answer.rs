//! Answering the engine: send a response, or release what a body holds when it will
//! never be sent (the client left). Shared by the drain and by promise settling.
use rookd_engine::{Body, Response};
use tokio::sync::oneshot;

use crate::stream;

/// Send the response; if the client has left meanwhile, release what its body holds
/// (a streamed body's generator, an owned file) instead of leaking it.
pub fn send_or_release(reply: oneshot::Sender<Response>, resp: Response) {
    if let Err(resp) = reply.send(resp) {
        release_body(resp.body);
    }
}

/// Release a body that will never be sent. Main thread.
pub fn release_body(body: Body) {
    match body {
        // SAFETY: main thread (every caller is on the drain or a .Call).
        Body::Stream(id) => unsafe { stream::end(id) },
        Body::File { path, owned: true } => {
            let _ = std::fs::remove_file(path);
        }
        _ => {}
    }
}

