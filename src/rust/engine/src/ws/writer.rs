//! The writing half of a connection: queued messages, pongs, pings and the close frame go
//! out here, in that priority (control first), batched into few writes.
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::time::{Instant, Interval, MissedTickBehavior};

use super::close;
use super::conn::{Control, Outgoing, Receivers, WsConnection};
use super::deflate::Deflater;
use super::frame::{encode_header, OpCode};

/// Frames smaller than this are copied into one buffer with their neighbours (one write
/// for many small messages); larger payloads are written from where they are.
const COALESCE_MAX: usize = 16 * 1024;
/// Stop gathering more frames into one batch beyond this many bytes.
const BATCH_BYTES: usize = 256 * 1024;
/// Messages at least this large are compressed on the blocking pool, not on an I/O thread.
const BLOCKING_COMPRESS_MIN: usize = 256 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteEnd {
    /// Our close frame went out (and our side of TCP was shut down).
    Closed,
    /// Told to stop: the peer is gone.
    Aborted,
    /// Writing failed.
    Failed,
}

enum Next {
    Ctrl(Option<Control>),
    Out(Option<Outgoing>),
    Ping,
}

#[derive(Default)]
struct Batch {
    small: BytesMut,
    segments: Vec<Bytes>,
    size: usize,
    /// Bytes of host messages in this batch (they leave the outgoing count once written).
    accounted: usize,
}

impl Batch {
    fn frame(&mut self, opcode: OpCode, rsv1: bool, payload: Bytes) {
        encode_header(&mut self.small, true, rsv1, opcode, None, payload.len() as u64);
        self.size += payload.len() + 10;
        if payload.len() < COALESCE_MAX {
            self.small.extend_from_slice(&payload);
        } else {
            self.segments.push(self.small.split().freeze());
            self.segments.push(payload);
        }
    }

    async fn write_to<W: AsyncWrite + Unpin>(&mut self, wr: &mut W) -> std::io::Result<()> {
        if !self.small.is_empty() {
            self.segments.push(self.small.split().freeze());
        }
        for s in self.segments.drain(..) {
            wr.write_all(&s).await?;
        }
        self.size = 0;
        wr.flush().await
    }
}

pub async fn run<W: AsyncWrite + Unpin>(
    conn: &WsConnection,
    mut wr: W,
    rx: Receivers,
    mut deflater: Option<Deflater>,
    ping_interval: Option<Duration>,
) -> WriteEnd {
    let Receivers { mut out, mut ctrl } = rx;
    let mut ticker: Option<Interval> = ping_interval.filter(|d| !d.is_zero()).map(|d| {
        let mut t = tokio::time::interval_at(Instant::now() + d, d);
        t.set_missed_tick_behavior(MissedTickBehavior::Delay);
        t
    });
    let mut batch = Batch::default();
    loop {
        let first = tokio::select! {
            biased;
            c = ctrl.recv() => Next::Ctrl(c),
            o = out.recv() => Next::Out(o),
            _ = tick(&mut ticker) => Next::Ping,
        };
        let mut end = add(conn, &mut batch, first, &mut deflater).await;
        // Gather whatever else is ready into the same write.
        while end.is_none() && batch.size < BATCH_BYTES {
            let next = match ctrl.try_recv() {
                Ok(c) => Next::Ctrl(Some(c)),
                Err(_) => match out.try_recv() {
                    Ok(o) => Next::Out(Some(o)),
                    Err(_) => break,
                },
            };
            end = add(conn, &mut batch, next, &mut deflater).await;
        }
        if end == Some(WriteEnd::Aborted) {
            return WriteEnd::Aborted;
        }
        if batch.write_to(&mut wr).await.is_err() {
            return WriteEnd::Failed;
        }
        conn.wrote(std::mem::take(&mut batch.accounted));
        if end.is_some() {
            // After a close frame nothing more may be sent: half-close TCP so the peer sees
            // the end (RFC 6455 §7.1.1: the server closes the TCP connection first).
            let _ = wr.shutdown().await;
            return WriteEnd::Closed;
        }
    }
}

async fn tick(t: &mut Option<Interval>) {
    match t {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Add one item to the batch; `Some(end)` when nothing may follow it.
async fn add(conn: &WsConnection, batch: &mut Batch, next: Next, deflater: &mut Option<Deflater>) -> Option<WriteEnd> {
    match next {
        Next::Ping => batch.frame(OpCode::Ping, false, Bytes::new()),
        Next::Ctrl(Some(Control::Pong(p))) => {
            // Counted as done once in the batch: the batch is written before the next read
            // of the queue, and the bound only needs to stop unbounded growth.
            conn.pong_done();
            batch.frame(OpCode::Pong, false, p);
        }
        Next::Ctrl(Some(Control::Close(code, reason))) | Next::Out(Some(Outgoing::Close(code, reason))) => {
            batch.frame(OpCode::Close, false, close::encode_payload(code, &reason));
            return Some(WriteEnd::Closed);
        }
        // The senders live as long as the connection, so a closed channel means teardown.
        Next::Ctrl(Some(Control::Abort)) | Next::Ctrl(None) | Next::Out(None) => return Some(WriteEnd::Aborted),
        Next::Out(Some(Outgoing::Text(data))) => message(batch, OpCode::Text, data, deflater).await,
        Next::Out(Some(Outgoing::Binary(data))) => message(batch, OpCode::Binary, data, deflater).await,
    }
    None
}

async fn message(batch: &mut Batch, opcode: OpCode, data: Bytes, deflater: &mut Option<Deflater>) {
    batch.accounted += data.len();
    let compressed = match deflater.take() {
        None => None,
        Some(mut d) if data.len() < BLOCKING_COMPRESS_MIN => {
            let z = d.compress(&data);
            *deflater = Some(d);
            z
        }
        Some(mut d) => {
            let input = data.clone();
            match tokio::task::spawn_blocking(move || {
                let z = d.compress(&input);
                (d, z)
            })
            .await
            {
                Ok((d, z)) => {
                    *deflater = Some(d);
                    z
                }
                // The blocking pool is gone (runtime shutting down): send uncompressed from
                // now on; the deflater went with the task, so no later message refers to it.
                Err(_) => None,
            }
        }
    };
    match compressed {
        Some(z) => batch.frame(opcode, true, Bytes::from(z)),
        None => batch.frame(opcode, false, data),
    }
}
