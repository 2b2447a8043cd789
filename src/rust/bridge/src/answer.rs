//! Answering the engine: send a response, or release what a body holds when it will
//! never be sent (the client left). Shared by the drain and by promise settling.
use rookd_engine::{Body, Response};
use tokio::sync::oneshot;

use crate::rapi::r::MainThread;
use crate::stream;

/// Send the response; if the client has left meanwhile, release what its body holds
/// (a streamed body's generator, an owned file) instead of leaking it.
pub fn send_or_release(mt: MainThread, reply: oneshot::Sender<Response>, resp: Response) {
    if let Err(resp) = reply.send(resp) {
        release_body(mt, resp.body);
    }
}

/// Release a body that will never be sent.
pub fn release_body(mt: MainThread, body: Body) {
    match body {
        Body::Stream(id) => stream::end(mt, id),
        Body::File { path, owned: true } => {
            let _ = std::fs::remove_file(path);
        }
        _ => {}
    }
}
