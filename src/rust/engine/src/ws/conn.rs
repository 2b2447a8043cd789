//! The host's handle on one WebSocket ([`WsConnection`]) and the queues behind it.
//!
//! Every method the host calls (on R's main thread) only touches atomics, a short mutex and
//! unbounded channel sends: none blocks on the network, none panics.
//!
//! ## Outgoing bound
//! Messages queue towards the writer task, counted in `queued` bytes until written to the
//! socket. A send that would take the backlog past `max_outgoing_bytes` is refused and the
//! connection is closed with 1008 (policy violation): a client that does not read fast
//! enough must not make the server hold unbounded memory. The close frame jumps the queue
//! (what was queued is dropped). A single message larger than the bound is still accepted
//! when nothing is queued, so a big message is not refused merely for its size.
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit};

use super::close;
use crate::ids::ServerId;

/// Pongs that may wait to be written at once; further pings go unanswered meanwhile.
const MAX_PENDING_PONGS: usize = 32;

/// Host → writer, in order.
pub(crate) enum Outgoing {
    Text(Bytes),
    Binary(Bytes),
    Close(u16, String),
}

/// Reader/engine → writer, ahead of queued messages.
pub(crate) enum Control {
    Pong(Bytes),
    Close(u16, String),
    /// The peer is gone: stop without writing anything more.
    Abort,
}

/// Held by an [`Event::WsMessage`](crate::event::Event::WsMessage) until the host drops
/// it (after handling the message). A connection has `max_inflight_messages` credits;
/// when all are out, the reader stops reading, so TCP flow control slows the client down
/// instead of messages piling up in memory.
pub struct WsCredit(#[allow(dead_code)] pub(crate) OwnedSemaphorePermit);

impl std::fmt::Debug for WsCredit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WsCredit")
    }
}

/// Who started the closing handshake, with what; decides the code reported in
/// [`Event::WsClosed`](crate::event::Event::WsClosed).
#[derive(Clone, Debug)]
struct CloseRecord {
    code: u16,
    reason: String,
}

pub(crate) struct Receivers {
    pub out: mpsc::UnboundedReceiver<Outgoing>,
    pub ctrl: mpsc::UnboundedReceiver<Control>,
}

/// One WebSocket connection as the host sees it.
pub struct WsConnection {
    /// Unique over the process (the id of the upgrade request).
    pub id: u64,
    pub server: ServerId,
    subprotocol: Option<String>,
    compressed: bool,
    out_tx: mpsc::UnboundedSender<Outgoing>,
    ctrl_tx: mpsc::UnboundedSender<Control>,
    queued: AtomicUsize,
    max_outgoing: usize,
    /// Pongs queued and not yet written: bounded so a peer that pings without reading
    /// cannot grow the control queue (RFC 6455 §5.5.3 lets us answer only some pings).
    pending_pongs: AtomicUsize,
    /// Set once a close is under way (either side) or the connection is gone: sends are
    /// refused from then on.
    closing: AtomicBool,
    record: Mutex<Option<CloseRecord>>,
    /// Wakes the reader and supervisor when a close starts from elsewhere.
    closing_tx: watch::Sender<bool>,
}

impl WsConnection {
    pub(crate) fn new(
        id: u64,
        server: ServerId,
        subprotocol: Option<String>,
        compressed: bool,
        max_outgoing: usize,
    ) -> (Arc<WsConnection>, Receivers) {
        let (out_tx, out) = mpsc::unbounded_channel();
        let (ctrl_tx, ctrl) = mpsc::unbounded_channel();
        let (closing_tx, _) = watch::channel(false);
        let conn = WsConnection {
            id,
            server,
            subprotocol,
            compressed,
            out_tx,
            ctrl_tx,
            queued: AtomicUsize::new(0),
            max_outgoing,
            pending_pongs: AtomicUsize::new(0),
            closing: AtomicBool::new(false),
            record: Mutex::new(None),
            closing_tx,
        };
        (Arc::new(conn), Receivers { out, ctrl })
    }

    /// Queue a text message. False (and nothing sent) if the connection is closing or
    /// closed, or if this send overflowed the outgoing bound (the connection then closes
    /// with 1008).
    pub fn send_text(&self, text: String) -> bool {
        let data = Bytes::from(text.into_bytes());
        let len = data.len();
        self.enqueue(Outgoing::Text(data), len)
    }

    /// Queue a text message given as bytes; false without sending if they are not UTF-8.
    pub fn send_text_bytes(&self, data: Bytes) -> bool {
        if std::str::from_utf8(&data).is_err() {
            return false;
        }
        let len = data.len();
        self.enqueue(Outgoing::Text(data), len)
    }

    /// Queue a binary message (see [`send_text`](Self::send_text) for the result).
    pub fn send_binary(&self, data: Bytes) -> bool {
        let len = data.len();
        self.enqueue(Outgoing::Binary(data), len)
    }

    /// Start the closing handshake after the messages already queued. Codes that may not
    /// be sent (outside 1000-1003, 1007-1014, 3000-4999) become 1000; the reason is cut to
    /// fit a control frame. A no-op if a close is already under way.
    pub fn close(&self, code: u16, reason: &str) {
        let code = if close::is_valid_wire_code(code) { code } else { close::NORMAL };
        self.close_locally(code, reason, false);
    }

    /// True once a close has started (from either side) or the connection is gone.
    pub fn is_closed(&self) -> bool {
        self.closing.load(Ordering::SeqCst)
    }

    /// The subprotocol agreed in the handshake, if any.
    pub fn subprotocol(&self) -> Option<&str> {
        self.subprotocol.as_deref()
    }

    /// Whether permessage-deflate was agreed.
    pub fn is_compressed(&self) -> bool {
        self.compressed
    }

    /// Bytes queued towards the client and not yet written to the socket.
    pub fn queued_bytes(&self) -> usize {
        self.queued.load(Ordering::SeqCst)
    }

    fn enqueue(&self, msg: Outgoing, len: usize) -> bool {
        if self.is_closed() {
            return false;
        }
        let before = self.queued.fetch_add(len, Ordering::SeqCst);
        if before > 0 && before.saturating_add(len) > self.max_outgoing {
            self.queued.fetch_sub(len, Ordering::SeqCst);
            self.close_locally(close::POLICY, "outgoing queue full", true);
            return false;
        }
        if self.out_tx.send(msg).is_err() {
            self.queued.fetch_sub(len, Ordering::SeqCst);
            return false;
        }
        true
    }

    fn lock_record(&self) -> std::sync::MutexGuard<'_, Option<CloseRecord>> {
        // A poisoned lock only means a panic elsewhere; the record itself is always valid.
        self.record.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Start a close from our side, unless one is already under way. `urgent`: ahead of
    /// queued messages (errors, overflow, shutdown), else after them (the host's close).
    pub(crate) fn close_locally(&self, code: u16, reason: &str, urgent: bool) {
        {
            let mut rec = self.lock_record();
            if rec.is_some() {
                return;
            }
            *rec = Some(CloseRecord { code, reason: reason.to_owned() });
        }
        self.closing.store(true, Ordering::SeqCst);
        // If the writer is gone the connection is over anyway: nothing to do.
        if urgent {
            let _ = self.ctrl_tx.send(Control::Close(code, reason.to_owned()));
        } else {
            let _ = self.out_tx.send(Outgoing::Close(code, reason.to_owned()));
        }
        self.closing_tx.send_replace(true);
    }

    /// The peer sent a close frame: record it if it started the handshake, and echo its
    /// code (1000 when it had none) ahead of anything queued.
    pub(crate) fn peer_closed(&self, code: u16, reason: String) {
        {
            let mut rec = self.lock_record();
            if rec.is_none() {
                *rec = Some(CloseRecord { code, reason });
            }
        }
        self.closing.store(true, Ordering::SeqCst);
        let echo = if code == close::NO_STATUS { close::NORMAL } else { code };
        let _ = self.ctrl_tx.send(Control::Close(echo, String::new()));
        self.closing_tx.send_replace(true);
    }

    /// Answer a ping, unless `MAX_PENDING_PONGS` answers are still waiting to be written.
    pub(crate) fn pong(&self, payload: Bytes) {
        if self.pending_pongs.fetch_add(1, Ordering::SeqCst) >= MAX_PENDING_PONGS {
            self.pending_pongs.fetch_sub(1, Ordering::SeqCst);
            return;
        }
        if self.ctrl_tx.send(Control::Pong(payload)).is_err() {
            self.pending_pongs.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// A pong left the queue (written, or dropped with the connection).
    pub(crate) fn pong_done(&self) {
        self.pending_pongs.fetch_sub(1, Ordering::SeqCst);
    }

    pub(crate) fn abort_writer(&self) {
        let _ = self.ctrl_tx.send(Control::Abort);
    }

    /// Bytes of queued messages now written to the socket.
    pub(crate) fn wrote(&self, bytes: usize) {
        if bytes > 0 {
            self.queued.fetch_sub(bytes, Ordering::SeqCst);
        }
    }

    pub(crate) fn closing_rx(&self) -> watch::Receiver<bool> {
        self.closing_tx.subscribe()
    }

    /// The connection is over: refuse further sends and say how it ended. The code is that
    /// of the close frame that started the closing handshake (the peer's, 1005 if it had
    /// none, or ours), or 1006 if the connection ended without one.
    pub(crate) fn finish(&self) -> (u16, String) {
        self.closing.store(true, Ordering::SeqCst);
        match self.lock_record().clone() {
            Some(r) => (r.code, r.reason),
            None => (close::ABNORMAL, String::new()),
        }
    }
}

impl std::fmt::Debug for WsConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsConnection")
            .field("id", &self.id)
            .field("server", &self.server)
            .field("closed", &self.is_closed())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(max: usize) -> (Arc<WsConnection>, Receivers) {
        WsConnection::new(7, ServerId(1), None, false, max)
    }

    #[test]
    fn sends_queue_and_count_bytes() {
        let (c, mut rx) = conn(100);
        assert!(c.send_text("hello".into()));
        assert!(c.send_binary(Bytes::from_static(b"abc")));
        assert!(!c.send_text_bytes(Bytes::from_static(b"\xff")));
        assert_eq!(c.queued_bytes(), 8);
        assert!(matches!(rx.out.try_recv(), Ok(Outgoing::Text(_))));
        c.wrote(5);
        assert_eq!(c.queued_bytes(), 3);
    }

    #[test]
    fn overflow_closes_with_1008_ahead_of_the_queue() {
        let (c, mut rx) = conn(10);
        // One oversized message is fine on an empty queue...
        assert!(c.send_binary(Bytes::from(vec![0; 50])));
        // ...but not on top of a backlog.
        assert!(!c.send_binary(Bytes::from(vec![0; 1])));
        assert!(c.is_closed());
        assert!(matches!(rx.ctrl.try_recv(), Ok(Control::Close(1008, _))));
        assert!(!c.send_text("late".into()));
        assert_eq!(c.finish().0, 1008);
    }

    #[test]
    fn first_close_wins_and_sends_become_no_ops() {
        let (c, mut rx) = conn(100);
        c.close(1005, "bad code from the host");
        c.close(4000, "second");
        c.peer_closed(1001, "peer".into());
        assert!(c.is_closed());
        assert!(!c.send_text("x".into()));
        assert!(matches!(rx.out.try_recv(), Ok(Outgoing::Close(1000, _))));
        assert!(rx.out.try_recv().is_err());
        assert!(matches!(rx.ctrl.try_recv(), Ok(Control::Close(1001, _))));
        assert_eq!(c.finish(), (1000, "bad code from the host".to_owned()));
    }

    #[test]
    fn pongs_waiting_to_be_written_are_bounded() {
        let (c, mut rx) = conn(100);
        for _ in 0..100 {
            c.pong(Bytes::from_static(b"p"));
        }
        let mut n = 0;
        while let Ok(Control::Pong(_)) = rx.ctrl.try_recv() {
            n += 1;
            c.pong_done();
        }
        assert_eq!(n, MAX_PENDING_PONGS);
        c.pong(Bytes::new());
        assert!(matches!(rx.ctrl.try_recv(), Ok(Control::Pong(_))));
    }

    #[test]
    fn peer_close_without_code_is_echoed_as_1000_and_reported_as_1005() {
        let (c, mut rx) = conn(100);
        c.peer_closed(1005, String::new());
        assert!(matches!(rx.ctrl.try_recv(), Ok(Control::Close(1000, _))));
        assert_eq!(c.finish().0, 1005);
        let (c, _rx) = conn(100);
        assert_eq!(c.finish().0, 1006);
    }
}
