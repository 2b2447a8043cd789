//! The access log: one line per answered request, written by a dedicated thread so the
//! I/O threads never touch the disk. Each request's [`Pending`] entry is made when it
//! starts (`service`) and finished when its response body ends or is dropped (`conn`'s
//! `ClockedBody`); the finished [`Record`] goes through a bounded channel. When the
//! channel is full the record is dropped and counted, never waited for. The writer
//! buffers and flushes at least every second and when the server stops; [`AccessLog::reopen`]
//! (`server$reopenLog()`, SIGHUP) reopens the file after logrotate moved it.
//!
//! Off (the default) costs one branch per request: no `AccessLog` exists.
//!
//! With [`Target::Host`] the lines go to the host instead (rookd: an R function), in
//! batches of at most [`HOST_BATCH`] lines, at most about once a second, through a sink
//! the server supplies (a Door event per batch, never one per request).
//!
//! Time queued for R and time in R are the server's metrics' own measure
//! (`metrics::RequestTiming`), set when the request ends (`service::RequestEnd`); `-`
//! (`null` in JSON) for requests R never saw (static files, the engine's own answers).
mod format;

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

pub use format::Format;

/// Records waiting for the writer; beyond this they are dropped (and counted).
const QUEUE: usize = 16 * 1024;
/// Lines per batch handed to the host, at most.
pub const HOST_BATCH: usize = 1000;
/// The writer flushes at least this often.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// Where the lines go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Stderr,
    File(PathBuf),
    /// Batches of lines for the host (see [`Sink`]).
    Host,
}

/// Where [`Target::Host`] batches go (called on the writer thread).
pub type Sink = Box<dyn Fn(Vec<String>) + Send>;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessLogConfig {
    pub target: Target,
    pub format: Format,
}

/// One answered request.
#[derive(Clone, Debug)]
pub struct Record {
    pub time: SystemTime,
    /// REMOTE_ADDR as the app sees it (after trusted proxies).
    pub client: Option<String>,
    pub method: String,
    /// The request target as received (path and query, still percent-encoded).
    pub target: Vec<u8>,
    pub protocol: &'static str,
    pub status: u16,
    /// Body bytes written.
    pub bytes: u64,
    pub total: Duration,
    pub queued: Option<Duration>,
    pub in_r: Option<Duration>,
    pub user_agent: Option<Vec<u8>>,
    pub referer: Option<Vec<u8>>,
    pub request_id: Option<u64>,
}

enum Msg {
    Record(Box<Record>),
    Reopen,
    /// Write out everything; say so on the channel, if any, once done.
    Flush(Option<tokio::sync::oneshot::Sender<()>>),
}

#[derive(Debug, thiserror::Error)]
pub enum AccessLogError {
    #[error("cannot open the access log {path}: {source}")]
    Open { path: String, source: std::io::Error },
    #[error("cannot start the access log's writer thread: {0}")]
    Thread(std::io::Error),
    #[error("an access log for the host needs a sink")]
    NoSink,
}

/// A server's access log; the writer thread ends when the last clone is dropped (after
/// a final flush).
#[derive(Clone)]
pub struct AccessLog {
    tx: SyncSender<Msg>,
    dropped: Arc<AtomicU64>,
    is_file: bool,
}

impl AccessLog {
    pub fn open(config: &AccessLogConfig, sink: Option<Sink>) -> Result<AccessLog, AccessLogError> {
        let out = Output::open(&config.target, sink)?;
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let format = config.format;
        std::thread::Builder::new()
            .name("rookd-access-log".into())
            .spawn(move || write_loop(rx, out, format))
            .map_err(AccessLogError::Thread)?;
        Ok(AccessLog { tx, dropped: Arc::new(AtomicU64::new(0)), is_file: matches!(config.target, Target::File(_)) })
    }

    fn send(&self, r: Record) {
        match self.tx.try_send(Msg::Record(Box::new(r))) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Reopen the file (after logrotate moved it); nothing for stderr.
    pub fn reopen(&self) {
        if self.is_file {
            // A full queue: the writer is busy and will see the request soon enough.
            let _ = self.tx.try_send(Msg::Reopen);
        }
    }

    /// Write out what is buffered now (the server stopped), waiting (at most a second)
    /// until it is: a host's last batch is then sent before the server's last event.
    pub async fn flush(&self) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.tx.try_send(Msg::Flush(Some(tx))).is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(1), rx).await;
        }
    }

    pub fn is_file(&self) -> bool {
        self.is_file
    }

    /// Records dropped because the writer fell behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Start an entry for a request.
    pub fn start(&self, parts: &http::request::Parts, client: Option<String>, request_id: Option<u64>) -> Pending {
        let header = |n: http::header::HeaderName| parts.headers.get(n).map(|v| v.as_bytes().to_vec());
        let target = match parts.uri.path_and_query() {
            Some(pq) => pq.as_str().as_bytes().to_vec(),
            None => parts.uri.to_string().into_bytes(),
        };
        Pending {
            log: self.clone(),
            started: Instant::now(),
            record: Some(Record {
                time: SystemTime::now(),
                client,
                method: parts.method.as_str().to_string(),
                target,
                protocol: protocol(parts.version),
                status: 0,
                bytes: 0,
                total: Duration::ZERO,
                queued: None,
                in_r: None,
                user_agent: header(http::header::USER_AGENT),
                referer: header(http::header::REFERER),
                request_id,
            }),
        }
    }
}

fn protocol(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2",
        http::Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    }
}

/// A request being answered: sent to the writer when dropped (the response body ended,
/// or the client left: the bytes then say how far it got).
pub struct Pending {
    log: AccessLog,
    started: Instant,
    record: Option<Record>,
}

impl Pending {
    pub fn set_status(&mut self, status: u16) {
        if let Some(r) = self.record.as_mut() {
            r.status = status;
        }
    }

    /// Time queued for R and time in R, as the server's metrics measured them.
    pub fn set_r_times(&mut self, queued: Option<Duration>, in_r: Option<Duration>) {
        if let Some(r) = self.record.as_mut() {
            r.queued = queued;
            r.in_r = in_r;
        }
    }

    pub fn add_bytes(&mut self, n: usize) {
        if let Some(r) = self.record.as_mut() {
            r.bytes += n as u64;
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(mut r) = self.record.take() {
            r.total = self.started.elapsed();
            self.log.send(r);
        }
    }
}

enum Output {
    Stderr(std::io::BufWriter<std::io::Stderr>),
    File { path: PathBuf, w: std::io::BufWriter<std::fs::File> },
    Host { sink: Sink, batch: Vec<String> },
}

fn open_append(path: &PathBuf) -> Result<std::fs::File, AccessLogError> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| AccessLogError::Open { path: path.display().to_string(), source: e })
}

impl Output {
    fn open(t: &Target, sink: Option<Sink>) -> Result<Output, AccessLogError> {
        Ok(match t {
            Target::Host => Output::Host { sink: sink.ok_or(AccessLogError::NoSink)?, batch: Vec::new() },
            Target::Stderr => Output::Stderr(std::io::BufWriter::new(std::io::stderr())),
            Target::File(p) => Output::File { path: p.clone(), w: std::io::BufWriter::with_capacity(64 * 1024, open_append(p)?) },
        })
    }

    fn write(&mut self, line: &str) {
        let _ = match self {
            Output::Stderr(w) => w.write_all(line.as_bytes()),
            Output::File { w, .. } => w.write_all(line.as_bytes()),
            Output::Host { batch, .. } => {
                batch.push(line.trim_end_matches('\n').to_string());
                if batch.len() >= HOST_BATCH {
                    self.flush();
                }
                Ok(())
            }
        };
    }

    fn flush(&mut self) {
        let _ = match self {
            Output::Stderr(w) => w.flush(),
            Output::File { w, .. } => w.flush(),
            Output::Host { sink, batch } => {
                if !batch.is_empty() {
                    sink(std::mem::take(batch));
                }
                Ok(())
            }
        };
    }

    fn reopen(&mut self) {
        self.flush();
        if let Output::File { path, w } = self {
            match open_append(path) {
                Ok(f) => *w = std::io::BufWriter::with_capacity(64 * 1024, f),
                Err(e) => eprintln!("rookd: {e} (still writing to the old file)"),
            }
        }
    }
}

fn write_loop(rx: mpsc::Receiver<Msg>, mut out: Output, format: Format) {
    let mut line = String::with_capacity(512);
    let mut last_flush = Instant::now();
    let mut unflushed = false;
    loop {
        match rx.recv_timeout(FLUSH_EVERY) {
            Ok(Msg::Record(r)) => {
                line.clear();
                format::line(&mut line, &r, format);
                out.write(&line);
                unflushed = true;
            }
            Ok(Msg::Reopen) => out.reopen(),
            Ok(Msg::Flush(done)) => {
                out.flush();
                unflushed = false;
                if let Some(done) = done {
                    let _ = done.send(());
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if unflushed && last_flush.elapsed() >= FLUSH_EVERY {
            out.flush();
            unflushed = false;
            last_flush = Instant::now();
        } else if !unflushed {
            last_flush = Instant::now();
        }
    }
    out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(target: &str) -> http::request::Parts {
        let (p, _) = http::Request::builder().uri(target).header("user-agent", "t").body(()).unwrap().into_parts();
        p
    }

    #[test]
    fn writes_flushes_and_reopens() {
        let dir = std::env::temp_dir().join(format!("rookd-access-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("access.log");
        let log =
            AccessLog::open(&AccessLogConfig { target: Target::File(path.clone()), format: Format::Common }, None).unwrap();
        let mut p = log.start(&parts("/a?b=1"), Some("10.0.0.1".into()), Some(7));
        p.set_status(200);
        p.add_bytes(5);
        drop(p);
        // Flushed within a second or so, without the server stopping.
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::read_to_string(&path).unwrap_or_default().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("10.0.0.1 - - ["), "{text}");
        assert!(text.contains("] \"GET /a?b=1 HTTP/1.1\" 200 5 "), "{text}");
        assert!(text.ends_with(" - - 7\n"), "{text}");
        // logrotate: move the file, reopen, write: the new line goes to a new file.
        let moved = dir.join("access.log.1");
        std::fs::rename(&path, &moved).unwrap();
        log.reopen();
        let mut p = log.start(&parts("/after"), None, None);
        p.set_status(404);
        drop(p);
        drop(log); // the last handle: the writer flushes and ends
        let deadline = Instant::now() + Duration::from_secs(10);
        while !std::fs::read_to_string(&path).unwrap_or_default().contains("/after") && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(std::fs::read_to_string(&path).unwrap().contains("\"GET /after HTTP/1.1\" 404 -"));
        assert!(!std::fs::read_to_string(&moved).unwrap().contains("/after"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_full_queue_drops_and_counts() {
        let (tx, _rx) = mpsc::sync_channel(1);
        let log = AccessLog { tx, dropped: Arc::new(AtomicU64::new(0)), is_file: false };
        for _ in 0..5 {
            drop(log.start(&parts("/"), None, None));
        }
        assert_eq!(log.dropped(), 4);
    }

    #[test]
    fn an_unwritable_path_is_an_error() {
        let e = AccessLog::open(&AccessLogConfig {
            target: Target::File("/nonexistent-dir-rookd/x.log".into()),
            format: Format::Json,
        }, None);
        assert!(matches!(e, Err(AccessLogError::Open { .. })));
    }

    #[test]
    fn host_batches() {
        let (tx, rx) = std::sync::mpsc::channel();
        let sink: Sink = Box::new(move |lines| {
            let _ = tx.send(lines);
        });
        let log = AccessLog::open(&AccessLogConfig { target: Target::Host, format: Format::Json }, Some(sink)).unwrap();
        for i in 0..(HOST_BATCH + 5) {
            let mut p = log.start(&parts(&format!("/{i}")), None, None);
            p.set_status(200);
        }
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(log.flush());
        let batches: Vec<Vec<String>> = rx.try_iter().collect();
        assert_eq!(batches.iter().map(Vec::len).sum::<usize>(), HOST_BATCH + 5);
        assert!(batches.iter().all(|b| b.len() <= HOST_BATCH && !b.is_empty()));
        assert!(batches[0][0].starts_with("{\"time\":") && !batches[0][0].ends_with('\n'));
        assert!(matches!(
            AccessLog::open(&AccessLogConfig { target: Target::Host, format: Format::Json }, None),
            Err(AccessLogError::NoSink)
        ));
    }
}
