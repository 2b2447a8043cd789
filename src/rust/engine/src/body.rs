//! The body type every response the engine writes uses: in memory, or streamed from a file.
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Frame, SizeHint};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::oneshot;

use crate::door::Door;
use crate::event::{Event, StreamChunk, StreamId};

const FILE_CHUNK: usize = 64 * 1024;

pub enum ResponseBody {
    Full(Option<Bytes>),
    File(FileBody),
    Stream(HostStream),
}

/// A body the host writes chunk by chunk: one `StreamPull` in flight at a time.
pub struct HostStream {
    door: Arc<Door>,
    id: StreamId,
    waiting: Option<oneshot::Receiver<StreamChunk>>,
    done: bool,
}

impl HostStream {
    pub fn new(door: Arc<Door>, id: StreamId) -> Self {
        HostStream { door, id, waiting: None, done: false }
    }

    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        loop {
            if self.done {
                return Poll::Ready(None);
            }
            let rx = match self.waiting.as_mut() {
                Some(rx) => rx,
                None => {
                    let (tx, rx) = oneshot::channel();
                    self.door.send(Event::StreamPull { stream: self.id, reply: tx });
                    self.waiting.insert(rx)
                }
            };
            let chunk = match Pin::new(rx).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(c) => c,
            };
            self.waiting = None;
            match chunk {
                // An empty chunk would end chunked encoding early: ask again instead.
                Ok(StreamChunk::Data(b)) if b.is_empty() => continue,
                Ok(StreamChunk::Data(b)) => return Poll::Ready(Some(Ok(Frame::data(b)))),
                Ok(StreamChunk::End) => {
                    self.done = true;
                    return Poll::Ready(None);
                }
                Ok(StreamChunk::Fail) | Err(_) => {
                    self.done = true;
                    return Poll::Ready(Some(Err(io::Error::other("the response stream failed"))));
                }
            }
        }
    }
}

impl Drop for HostStream {
    fn drop(&mut self) {
        self.door.send(Event::StreamEnd { stream: self.id });
    }
}

impl ResponseBody {
    pub fn empty() -> Self {
        ResponseBody::Full(None)
    }

    pub fn bytes(b: Bytes) -> Self {
        if b.is_empty() {
            ResponseBody::Full(None)
        } else {
            ResponseBody::Full(Some(b))
        }
    }
}

/// A file (or a slice of it, for Range requests) read in chunks as the client takes them;
/// an owned file is deleted when the body is dropped, sent or not.
pub struct FileBody {
    file: tokio::fs::File,
    remaining: u64,
    buf: BytesMut,
    delete_on_drop: Option<PathBuf>,
}

impl FileBody {
    /// `file` must already be positioned at the first byte to send.
    pub fn new(file: tokio::fs::File, len: u64, delete_on_drop: Option<PathBuf>) -> Self {
        FileBody { file, remaining: len, buf: BytesMut::new(), delete_on_drop }
    }
}

impl Drop for FileBody {
    fn drop(&mut self) {
        if let Some(p) = self.delete_on_drop.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl http_body::Body for ResponseBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.get_mut() {
            ResponseBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            ResponseBody::File(f) => f.poll_chunk(cx),
            ResponseBody::Stream(s) => s.poll_chunk(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Full(b) => b.is_none(),
            ResponseBody::File(f) => f.remaining == 0,
            ResponseBody::Stream(s) => s.done,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            ResponseBody::File(f) => SizeHint::with_exact(f.remaining),
            ResponseBody::Stream(_) => SizeHint::default(),
        }
    }
}

impl FileBody {
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let want = usize::try_from(self.remaining.min(FILE_CHUNK as u64)).unwrap_or(FILE_CHUNK);
        if self.buf.capacity() < want {
            self.buf.reserve(want.max(FILE_CHUNK));
        }
        // Read into an initialised (zeroed) slice: no unsafe, at the cost of one memset
        // per chunk.
        self.buf.resize(want, 0);
        let mut rb = ReadBuf::new(&mut self.buf[..want]);
        match Pin::new(&mut self.file).poll_read(cx, &mut rb) {
            Poll::Pending => {
                self.buf.clear();
                Poll::Pending
            }
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
            Poll::Ready(Ok(())) => {
                let n = rb.filled().len();
                if n == 0 {
                    // The file shrank under us: end the body early; hyper closes the connection.
                    self.remaining = 0;
                    return Poll::Ready(Some(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "file shrank while sending",
                    ))));
                }
                self.remaining -= n as u64;
                self.buf.truncate(n);
                let chunk = self.buf.split().freeze();
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
        }
    }
}
