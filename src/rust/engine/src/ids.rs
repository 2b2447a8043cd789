//! The names the engine and the host use for servers, requests and streamed bodies, and
//! where new ones come from. A leaf: it imports nothing of the crate, so every layer can
//! name things without importing the layer that makes them.
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerId(pub u64);

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct RequestId(pub u64);

/// Names a response body the host produces piece by piece.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct StreamId(pub u64);

/// Server ids are unique in the process (several engines may run in one, in tests).
static NEXT_SERVER: AtomicU64 = AtomicU64::new(1);

impl ServerId {
    pub(crate) fn next() -> ServerId {
        ServerId(NEXT_SERVER.fetch_add(1, Ordering::Relaxed))
    }
}

/// One server's request numbering. Ids are unique across servers: the server id sits in
/// the high bits (40 bits of requests per server).
#[derive(Debug)]
pub(crate) struct RequestIds {
    server: ServerId,
    next: AtomicU64,
}

impl RequestIds {
    pub(crate) fn new(server: ServerId) -> RequestIds {
        RequestIds { server, next: AtomicU64::new(1) }
    }

    pub(crate) fn next(&self) -> RequestId {
        RequestId((self.server.0 << 40) | self.next.fetch_add(1, Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_carry_their_server() {
        let ids = RequestIds::new(ServerId(3));
        assert_eq!(ids.next(), RequestId((3 << 40) | 1));
        assert_eq!(ids.next(), RequestId((3 << 40) | 2));
        assert_ne!(ServerId::next(), ServerId::next());
    }
}
