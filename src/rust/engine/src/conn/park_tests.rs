//! Parking must never drop bytes hyper has buffered but not yet written: the I/O
//! below takes the request, then refuses every write (without taking a byte) for
//! longer than `PARK_AFTER` once `accept_first` bytes went out, then takes
//! everything. The whole response must arrive.
use super::*;
use crate::budget::ByteBudget;
use crate::config::ServerConfig;
use crate::door::Door;
use crate::event::{Event, StreamChunk};
use crate::ids::StreamId;
use crate::response::{Body, Response};
use crate::shared::AppCaps;
use crate::statics::StaticPaths;
use std::pin::Pin;
use std::sync::Mutex as StdMutex;
use std::task::{Context, Poll};
use tokio::io::ReadBuf;

struct StallIo {
    input: Bytes,
    accept_first: usize,
    stall_until: Instant,
    sleep: Pin<Box<tokio::time::Sleep>>,
    out: Arc<StdMutex<Vec<u8>>>,
}

impl StallIo {
    fn stalled(&mut self, cx: &mut Context<'_>) -> bool {
        let sent = self.out.lock().map(|o| o.len()).unwrap_or(0);
        if sent >= self.accept_first && Instant::now() < self.stall_until {
            // Wake hyper when the stall ends, as a socket that drains would.
            let _ = self.sleep.as_mut().poll(cx);
            return true;
        }
        false
    }
}

impl Readable for StallIo {
    fn poll_read_ready(&self, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if self.input.is_empty() {
            Poll::Pending
        } else {
            Poll::Ready(Ok(()))
        }
    }
}

impl AsyncRead for StallIo {
    fn poll_read(mut self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        if self.input.is_empty() {
            // The client says nothing more (keep-alive): hyper waits for it.
            return Poll::Pending;
        }
        let n = self.input.len().min(buf.remaining());
        let chunk = self.input.split_to(n);
        buf.put_slice(&chunk);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for StallIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        if self.stalled(cx) {
            return Poll::Pending;
        }
        self.out.lock().map_err(|_| std::io::Error::other("poisoned"))?.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

fn shared() -> Arc<ServerShared> {
    let (shared, _) = ServerShared::new(
        ServerConfig::default(),
        AppCaps::default(),
        Door::new(Arc::new(|| {})),
        ByteBudget::new(),
        StaticPaths::default(),
        None,
    );
    shared
}

/// Serve one GET on a StallIo whose writes stall (from the first write at or past
/// `accept_first` bytes) until 4 x PARK_AFTER after the start; the host answers with
/// `body`. Returns what was written once `expect_len` body bytes are out, or after 5 s.
fn with_stall(accept_first: usize, body: impl Fn() -> Body + Send + 'static, expect_len: usize) -> Vec<u8> {
    let stall = PARK_AFTER * 4;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async move {
        let shared = shared();
        let out = Arc::new(StdMutex::new(Vec::new()));
        let until = Instant::now() + stall;
        let io = StallIo {
            input: Bytes::from_static(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
            accept_first,
            stall_until: until,
            sleep: Box::pin(tokio::time::sleep_until(until)),
            out: Arc::clone(&out),
        };
        let (_stop_tx, stop_rx) = watch::channel(false);
        let conn =
            tokio::spawn(serve_connection(io, Arc::clone(&shared), Endpoint::Unix, Endpoint::Unix, None, stop_rx));
        let door = Arc::clone(&shared.door);
        let host = tokio::spawn(async move {
            let mut chunks = 0;
            loop {
                for ev in door.begin_drain() {
                    match ev {
                        Event::Call { reply, .. } => {
                            let mut r = Response::new(200).expect("status");
                            r.body = body();
                            let _ = reply.send(r);
                        }
                        Event::StreamPull { reply, .. } => {
                            chunks += 1;
                            let _ = reply.send(if chunks <= 3 {
                                StreamChunk::Data(Bytes::from(vec![b's'; 64 * 1024]))
                            } else {
                                StreamChunk::End
                            });
                        }
                        _ => {}
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let got = out.lock().map(|o| o.clone()).unwrap_or_default();
            let body_len = got.windows(4).position(|w| w == b"\r\n\r\n").map(|i| got.len() - i - 4);
            if body_len.is_some_and(|n| n >= expect_len) || Instant::now() > deadline {
                conn.abort();
                host.abort();
                return got;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
}

fn body_of(got: &[u8]) -> &[u8] {
    let i = got.windows(4).position(|w| w == b"\r\n\r\n").map_or(got.len(), |i| i + 4);
    &got[i..]
}

#[test]
fn a_buffered_in_memory_body_survives_a_stalled_socket() {
    // Nothing at all can be written at first: hyper holds the whole response.
    let n = 300 * 1024;
    let got = with_stall(0, move || Body::Bytes(Bytes::from(vec![b'm'; n])), n);
    assert_eq!(body_of(&got).len(), n, "{}", String::from_utf8_lossy(&got[..got.len().min(200)]));
}

#[test]
fn the_last_chunks_of_a_file_survive_a_stalled_socket() {
    let n = 200 * 1024;
    let path = std::env::temp_dir().join(format!("rookd-park-{}.bin", std::process::id()));
    std::fs::write(&path, vec![b'f'; n]).expect("temp file");
    let p = path.clone();
    // The head and the first chunk go out; the rest waits in hyper's buffer.
    let got = with_stall(1, move || Body::File { path: p.clone(), owned: false }, n);
    let _ = std::fs::remove_file(&path);
    assert_eq!(body_of(&got).len(), n);
    assert!(body_of(&got).iter().all(|&b| b == b'f'));
}

#[test]
fn the_last_chunk_of_a_stream_survives_a_stalled_socket() {
    // Chunked: 3 chunks of 64 KiB, each framed ("10000\r\n" ... "\r\n"), then the
    // end ("0\r\n\r\n"), which must arrive too.
    let got = with_stall(1, || Body::Stream(StreamId(1)), 3 * (64 * 1024 + 9) + 5);
    assert!(body_of(&got).ends_with(b"0\r\n\r\n"), "{} body bytes", body_of(&got).len());
}
