//! The reading half of a connection: bytes in, events to the host out, with flow control
//! (credits), the idle timeout and the closing handshake's waiting.
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;

use super::close;
use super::conn::{WsConnection, WsCredit};
use super::parser::{Item, MessageParser};
use crate::budget::{self, ByteBudget};
use crate::door::Door;
use crate::event::Event;

/// How the reading side ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadEnd {
    /// The peer's close frame arrived (and is being echoed if we had not closed first).
    PeerClosed,
    /// The peer broke the protocol; a close frame with the matching code is on its way.
    Failed,
    /// The TCP connection ended (or broke) without a close frame.
    Eof,
    /// We started closing and the peer did not answer in time.
    TimedOut,
}

pub struct ReaderSettings {
    pub idle_timeout: Option<Duration>,
    pub close_timeout: Duration,
}

/// The bounds on what waits for the host: this connection's messages (`messages`,
/// `ws.max_inflight_messages` permits), its bytes (`bytes`, a semaphore of
/// `ws.max_inflight_bytes` permits, one per byte) and the engine-wide budget
/// (`max_inflight_bytes`).
pub struct Credits {
    pub messages: Arc<Semaphore>,
    pub bytes: Arc<Semaphore>,
    pub max_bytes: usize,
    pub budget: Arc<ByteBudget>,
    pub global_limit: usize,
}

/// How often a reader paused by a full engine-wide budget looks again. Only under
/// overload; a Notify would cost every release a wake-up in the common case.
const FULL_BUDGET_POLL: Duration = Duration::from_millis(10);

pub async fn run<R: AsyncRead + Unpin>(
    conn: &Arc<WsConnection>,
    mut rd: R,
    mut parser: MessageParser,
    door: &Door,
    settings: ReaderSettings,
    bytes: Credits,
    mut stop: watch::Receiver<bool>,
) -> ReadEnd {
    let credits = Arc::clone(&bytes.messages);
    let max_credits = credits.available_permits();
    let mut closing = conn.closing_rx();
    // Set once a close is under way: from then on we only wait for the peer's close.
    let mut close_deadline: Option<Instant> = None;
    let idle_after = |now: Instant| settings.idle_timeout.map(|d| now + d);
    let mut idle_deadline = idle_after(Instant::now());
    loop {
        if close_deadline.is_none() && *closing.borrow() {
            close_deadline = Some(Instant::now() + settings.close_timeout);
        }
        match parser.next_item() {
            Err(e) => {
                // Messages that arrived before the fault get their answers first: wait (a
                // bounded time) until the host has handled every delivered message, then
                // queue the close behind whatever it sent in reply.
                let all = u32::try_from(max_credits).unwrap_or(u32::MAX);
                let _ = tokio::time::timeout(settings.close_timeout, credits.acquire_many(all)).await;
                conn.close_locally(e.close_code(), &e.to_string(), false);
                // Keep reading (and discarding) until the peer answers our close or hangs
                // up: closing a socket with unread data would reset the connection and
                // could destroy the close frame we just sent.
                drain(&mut rd, &mut parser, Instant::now() + settings.close_timeout).await;
                return ReadEnd::Failed;
            }
            Ok(Some(Item::Message { binary, data })) => {
                if close_deadline.is_some() {
                    continue; // closing: the host wants no more messages
                }
                // Flow control: wait for a message credit and for this message's bytes
                // under the connection's byte bound, not reading meanwhile (TCP pushes
                // back). A message larger than the whole bound waits until nothing else
                // of this connection is held by the host.
                let want = u32::try_from(data.len().min(bytes.max_bytes)).unwrap_or(u32::MAX);
                let credit = tokio::select! {
                    biased;
                    c = async {
                        let m = Arc::clone(&credits).acquire_owned().await?;
                        let b = Arc::clone(&bytes.bytes).acquire_many_owned(want).await?;
                        Ok::<_, tokio::sync::AcquireError>((m, b))
                    } => match c {
                        Ok(c) => c,
                        Err(_) => continue,
                    },
                    _ = closing.wait_for(|c| *c) => continue,
                    _ = stop.wait_for(|s| *s) => {
                        conn.close_locally(close::GOING_AWAY, "server stopping", true);
                        continue;
                    }
                };
                // Time spent waiting for the host is not the peer's silence.
                idle_deadline = idle_after(Instant::now());
                // Counted engine-wide for as long as the host holds the bytes; the
                // per-connection permit lives as long (it rides with the data too).
                let reserved = bytes.budget.force_reserve(data.len());
                let data = budget::hold(data, (credit.1, reserved));
                door.send(Event::WsMessage { conn: Arc::clone(conn), binary, data, credit: WsCredit(credit.0) });
                continue;
            }
            Ok(Some(Item::Ping(payload))) => {
                // After our close frame nothing more may be sent, pongs included.
                if close_deadline.is_none() {
                    conn.pong(payload);
                }
                continue;
            }
            Ok(Some(Item::Pong(_))) => continue,
            Ok(Some(Item::Close { code, reason })) => {
                conn.peer_closed(code, reason);
                return ReadEnd::PeerClosed;
            }
            Ok(None) => {}
        }

        let wake = match (idle_deadline, close_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        // The engine-wide budget is full: read nothing more until the host catches up
        // (the peer's data stays in the kernel's buffers and TCP pushes back).
        if close_deadline.is_none() && bytes.budget.is_full(bytes.global_limit) {
            tokio::select! {
                _ = tokio::time::sleep(FULL_BUDGET_POLL) => {}
                _ = closing.wait_for(|c| *c) => {}
                _ = stop.wait_for(|s| *s) => {
                    conn.close_locally(close::GOING_AWAY, "server stopping", true);
                }
            }
            idle_deadline = idle_after(Instant::now());
            continue;
        }
        parser.reserve_for_read();
        tokio::select! {
            r = rd.read_buf(&mut parser.buf) => match r {
                Ok(0) | Err(_) => return ReadEnd::Eof,
                Ok(_) => idle_deadline = idle_after(Instant::now()),
            },
            _ = sleep_until(wake) => {
                if close_deadline.is_some_and(|d| Instant::now() >= d) {
                    return ReadEnd::TimedOut;
                }
                // Idle: try a close; the close deadline takes over from here.
                conn.close_locally(close::GOING_AWAY, "idle timeout", true);
                idle_deadline = None;
            }
            _ = closing.wait_for(|c| *c), if close_deadline.is_none() => {}
            _ = stop.wait_for(|s| *s), if close_deadline.is_none() => {
                conn.close_locally(close::GOING_AWAY, "server stopping", true);
            }
        }
    }
}

/// Sleep until `at`, or forever when there is no deadline (a `select!` branch that
/// only fires once a deadline is set).
pub(super) async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn drain<R: AsyncRead + Unpin>(rd: &mut R, parser: &mut MessageParser, until: Instant) {
    let _ = tokio::time::timeout_at(until, async {
        loop {
            parser.buf.clear();
            parser.reserve_for_read();
            match rd.read_buf(&mut parser.buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
}
