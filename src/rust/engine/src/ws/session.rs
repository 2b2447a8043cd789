//! One connection's life after the 101: wait for the upgrade, announce it (WsOpen), run
//! the reader and writer side by side, bound the closing handshake in time, and report
//! the end (WsClosed) exactly once, whatever happens (even if the task is dropped).
use std::sync::Arc;
use std::time::Duration;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::conn::WsConnection;
use super::deflate::{Deflater, Inflater};
use super::handshake::Agreed;
use super::parser::MessageParser;
use super::reader::{self, sleep_until, ReadEnd, ReaderSettings};
use super::writer;
use crate::door::Door;
use crate::event::{Event, RequestHead};
use crate::shared::{ServerShared, SessionToken};

/// Sends [`Event::WsClosed`] when dropped: at the normal end of the task, and also if
/// the runtime drops the task (engine shutdown), so the host always hears of the end.
struct ClosedNotice {
    door: Arc<Door>,
    conn: Arc<WsConnection>,
}

impl Drop for ClosedNotice {
    fn drop(&mut self) {
        let (code, reason) = self.conn.finish();
        self.door.send(Event::WsClosed { conn: Arc::clone(&self.conn), code, reason });
    }
}

pub(crate) fn spawn(shared: Arc<ServerShared>, head: Arc<RequestHead>, on_upgrade: OnUpgrade, agreed: Agreed) {
    let token = shared.ws_session_token();
    tokio::spawn(run(token, shared, head, on_upgrade, agreed));
}

/// `_token` is the first parameter so it is dropped last, after `ClosedNotice` has sent
/// `WsClosed`, also when the task is dropped mid-way.
async fn run(
    _token: Option<SessionToken>,
    shared: Arc<ServerShared>,
    head: Arc<RequestHead>,
    on_upgrade: OnUpgrade,
    agreed: Agreed,
) {
    // The client may vanish before the 101 is written: then the socket never opened, and
    // the host may forget what it kept for the request in onHeaders.
    let Ok(upgraded) = on_upgrade.await else {
        shared.door.send(Event::Abandoned { id: head.id });
        return;
    };
    let _open = shared.metrics.websocket();
    let cfg = &shared.config.ws;
    let (conn, receivers) = WsConnection::new(
        head.id.0,
        shared.id,
        agreed.subprotocol.clone(),
        agreed.deflate.is_some(),
        cfg.max_outgoing_bytes,
    );
    let _notice = ClosedNotice { door: Arc::clone(&shared.door), conn: Arc::clone(&conn) };
    let stop = shared.ws_stop();
    shared.door.send(Event::WsOpen { conn: Arc::clone(&conn), head });

    let (rd, wr) = tokio::io::split(TokioIo::new(upgraded));
    let parser = MessageParser::new(cfg.max_message_bytes, agreed.deflate.as_ref().map(|_| Inflater::new()));
    let credits = Arc::new(Semaphore::new(cfg.max_inflight_messages.max(1)));
    let settings = ReaderSettings { idle_timeout: cfg.idle_timeout, close_timeout: cfg.close_timeout };
    let bytes = reader::Credits {
        messages: credits,
        bytes: Arc::new(Semaphore::new(cfg.max_inflight_bytes)),
        max_bytes: cfg.max_inflight_bytes,
        budget: Arc::clone(&shared.budget),
        global_limit: shared.config.max_inflight_bytes,
    };
    let reader = reader::run(&conn, rd, parser, &shared.door, settings, bytes, stop);
    let writer = writer::run(&conn, wr, receivers, agreed.deflate.as_ref().map(Deflater::new), cfg.ping_interval);
    supervise(&conn, reader, writer, cfg.close_timeout).await;
}

/// Run both halves until both are done, or until `close_timeout` after the first one
/// ended (a peer that neither reads nor closes must not hold the connection forever).
async fn supervise(
    conn: &WsConnection,
    reader: impl std::future::Future<Output = ReadEnd>,
    writer: impl std::future::Future<Output = writer::WriteEnd>,
    close_timeout: Duration,
) {
    tokio::pin!(reader, writer);
    let (mut reader_done, mut writer_done) = (false, false);
    let mut deadline: Option<Instant> = None;
    while !(reader_done && writer_done) {
        tokio::select! {
            end = &mut reader, if !reader_done => {
                reader_done = true;
                match end {
                    // A close frame (echo or error) is queued: let the writer send it.
                    ReadEnd::PeerClosed | ReadEnd::Failed => {}
                    ReadEnd::Eof | ReadEnd::TimedOut => conn.abort_writer(),
                }
                deadline.get_or_insert(Instant::now() + close_timeout);
            }
            _ = &mut writer, if !writer_done => {
                writer_done = true;
                deadline.get_or_insert(Instant::now() + close_timeout);
            }
            _ = sleep_until(deadline), if deadline.is_some() => break,
        }
    }
}
