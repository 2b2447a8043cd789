//! The access log: one line per answered request, written by a dedicated thread so the
//! I/O threads never touch the disk. Each request's [`Pending`] entry is made when it
//! starts (`service`) and finished when its response body ends or is dropped (`conn`'s
//! `ClockedBody`); the finished [`Record`] goes through a channel bounded both in records
//! ([`QUEUE`]) and in bytes ([`QUEUE_BYTES`]: a flood of 8 KB user agents cannot queue
//! 16k × 8 KB). When either bound is reached the record is dropped and counted, never
//! waited for. The writer buffers and flushes at least every second and when the server
//! stops; [`AccessLog::reopen`] (`server$reopenLog()`, SIGHUP) reopens the file after
//! logrotate moved it. A reopen, like the flush at stop, is a request in shared state that
//! the writer checks after every record and at least every second, not a queued message,
//! so a full queue cannot lose it.
//!
//! Off (the default) costs one branch per request: no `AccessLog` exists. On, a request
//! costs its record (copies of the method, target, user agent, referer), one atomic
//! add (the byte count) and the channel's send; formatting and I/O are the writer's.
//!
//! With [`Target::Host`] the lines go to the host instead (rookd: an R function), in
//! batches of at most [`HOST_BATCH`] lines and [`HOST_BATCH_BYTES`] bytes, through a sink
//! the server supplies (a Door event per batch, never one per request). At most one
//! batch is out at a time: a new one is handed over only once the host has dropped the
//! previous one (its [`HostBatch`]; rookd drops it when the R function has returned) and
//! at least a second after it. Meanwhile lines gather in the next batch, up to its
//! bounds; beyond them they are dropped and counted ([`AccessLog::dropped`]). A busy or
//! slow host thus holds at most two batches, whatever the request rate.
//!
//! Time queued for R and time in R are the server's metrics' own measure
//! (`metrics::RequestTiming`), set when the request ends (`service::RequestEnd`); `-`
//! (`null` in JSON) for requests R never saw (static files, the engine's own answers).
mod format;

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

pub use format::Format;

/// Records waiting for the writer; beyond this they are dropped (and counted).
pub const QUEUE: usize = 16 * 1024;
/// Bytes of records waiting for the writer (their fields plus [`RECORD_OVERHEAD`] each);
/// beyond this they are dropped (and counted).
pub const QUEUE_BYTES: usize = 8 * 1024 * 1024;
/// What a queued record costs besides its fields (the box, the record, the channel slot).
const RECORD_OVERHEAD: usize = 256;
/// Lines per batch handed to the host, at most.
pub const HOST_BATCH: usize = 10_000;
/// Bytes of lines per batch handed to the host, at most.
pub const HOST_BATCH_BYTES: usize = 4 * 1024 * 1024;
/// The writer flushes at least this often, and hands the host at most one batch per this.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// While host lines wait for the previous batch to be taken, the writer looks this often.
const HOST_POLL: Duration = Duration::from_millis(100);

/// Where the lines go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Stderr,
    File(PathBuf),
    /// Batches of lines for the host (see [`Sink`]).
    Host,
}

/// Where [`Target::Host`] batches go (called on the writer thread).
pub type Sink = Box<dyn Fn(HostBatch) + Send>;

/// A batch of lines for the host (without their `\n`). Until it is dropped no other batch
/// is handed over (except the last one, when the server stops): drop it once handled.
pub struct HostBatch {
    lines: Vec<String>,
    _out: BatchOut,
}

impl std::ops::Deref for HostBatch {
    type Target = [String];
    fn deref(&self) -> &[String] {
        &self.lines
    }
}

impl std::fmt::Debug for HostBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HostBatch({} lines)", self.lines.len())
    }
}

/// Marks a batch as out with the host until dropped.
struct BatchOut(Arc<AtomicBool>);

impl Drop for BatchOut {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// What the handles and the writer share.
#[derive(Default)]
struct State {
    /// Records (or host lines) dropped because the writer or the host fell behind.
    dropped: AtomicU64,
    /// Bytes of the records in the channel (see [`QUEUE_BYTES`]).
    queued_bytes: AtomicUsize,
    /// A reopen was asked for and is not done yet.
    reopen: AtomicBool,
    /// Flushes asked for (the server stops) and not done yet: told once done.
    flushes: std::sync::Mutex<Vec<tokio::sync::oneshot::Sender<()>>>,
}

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
    /// A record and the bytes it counts in `State::queued_bytes`.
    Record(Box<Record>, usize),
    /// Look at the reopen and flush requests now (best effort; `State` is what counts).
    Wake,
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
    state: Arc<State>,
    is_file: bool,
}

impl AccessLog {
    pub fn open(config: &AccessLogConfig, sink: Option<Sink>) -> Result<AccessLog, AccessLogError> {
        let out = Output::open(&config.target, sink)?;
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let format = config.format;
        let state = Arc::new(State::default());
        let writer_state = Arc::clone(&state);
        std::thread::Builder::new()
            .name("rookd-access-log".into())
            .spawn(move || write_loop(rx, out, format, &writer_state))
            .map_err(AccessLogError::Thread)?;
        Ok(AccessLog { tx, state, is_file: matches!(config.target, Target::File(_)) })
    }

    fn send(&self, r: Record) {
        let size = r.queued_size();
        let queued = &self.state.queued_bytes;
        if queued.fetch_add(size, Ordering::Relaxed) + size > QUEUE_BYTES {
            queued.fetch_sub(size, Ordering::Relaxed);
            self.state.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        match self.tx.try_send(Msg::Record(Box::new(r), size)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                queued.fetch_sub(size, Ordering::Relaxed);
                self.state.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Reopen the file (after logrotate moved it); nothing for stderr. Never lost: the
    /// writer does it after its current record, or within a second if the queue is full.
    pub fn reopen(&self) {
        if self.is_file {
            self.state.reopen.store(true, Ordering::Release);
            let _ = self.tx.try_send(Msg::Wake);
        }
    }

    /// Log a request head refused before it became a request (malformed 400, too large
    /// 431/414, stalled 408): what is known is the client, the time, the status and the
    /// bytes of the answer; method and target are `-`.
    pub fn refused(&self, client: Option<String>, version: http::Version, status: u16, bytes: u64) {
        self.send(Record {
            time: SystemTime::now(),
            client,
            method: "-".into(),
            target: b"-".to_vec(),
            protocol: protocol(version),
            status,
            bytes,
            total: Duration::ZERO,
            queued: None,
            in_r: None,
            user_agent: None,
            referer: None,
            request_id: None,
        });
    }

    /// Write out what is queued and buffered now (the server stopped), waiting (at most
    /// a second) until it is: a host's last batch is then sent before the server's last
    /// event. Asked through `State`, not the queue, so a full queue cannot lose it.
    pub async fn flush(&self) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.state.flushes.lock().unwrap_or_else(|e| e.into_inner()).push(tx);
        let _ = self.tx.try_send(Msg::Wake);
        let _ = tokio::time::timeout(Duration::from_secs(1), rx).await;
    }

    pub fn is_file(&self) -> bool {
        self.is_file
    }

    /// Records dropped because the writer fell behind (or, for the host, lines dropped
    /// because the host had not taken the previous batch).
    pub fn dropped(&self) -> u64 {
        self.state.dropped.load(Ordering::Relaxed)
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

/// What hyper answered for a request head it could not parse (`None`: no answer, nothing
/// to log). Called only when a connection ends with an error.
pub fn refused_status(e: &hyper::Error) -> Option<u16> {
    if !e.is_parse() || e.is_parse_status() || e.is_parse_version_h2() {
        return None;
    }
    if e.is_parse_too_large() {
        // hyper has no finer question for its two "too large" cases.
        return Some(if e.to_string().contains("URI too long") { 414 } else { 431 });
    }
    Some(400)
}

impl Record {
    /// The bytes this record counts in the queue's budget.
    fn queued_size(&self) -> usize {
        RECORD_OVERHEAD
            + self.method.len()
            + self.target.len()
            + self.client.as_ref().map_or(0, String::len)
            + self.user_agent.as_ref().map_or(0, Vec::len)
            + self.referer.as_ref().map_or(0, Vec::len)
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
    Host(HostOut),
}

/// The host's batches: the one gathering, and whether the previous one is still out.
struct HostOut {
    sink: Sink,
    batch: Vec<String>,
    bytes: usize,
    /// The last batch handed over is still held by the host.
    out: Arc<AtomicBool>,
    /// When the writer first saw the last batch taken (`None`: not yet).
    free_since: Option<Instant>,
}

impl HostOut {
    /// Add a line, or drop it (false) when the gathering batch is full.
    fn push(&mut self, line: &str) -> bool {
        let line = line.trim_end_matches('\n');
        if self.batch.len() >= HOST_BATCH || self.bytes + line.len() > HOST_BATCH_BYTES {
            return false;
        }
        self.bytes += line.len();
        self.batch.push(line.to_string());
        true
    }

    /// Hand the batch over if there is one and it may go: the previous one was taken a
    /// second ago or more (so the host's calls are a second apart, however long it held
    /// the last batch), or `force` (the server stops: its last lines).
    fn deliver(&mut self, force: bool) {
        if !self.out.load(Ordering::Acquire) && self.free_since.is_none() {
            self.free_since = Some(Instant::now());
        }
        if self.batch.is_empty() {
            return;
        }
        let may = self.free_since.is_some_and(|t| t.elapsed() >= FLUSH_EVERY);
        if !force && !may {
            return;
        }
        self.out.store(true, Ordering::Release);
        self.free_since = None;
        self.bytes = 0;
        let lines = std::mem::take(&mut self.batch);
        (self.sink)(HostBatch { lines, _out: BatchOut(Arc::clone(&self.out)) });
    }
}

/// Log files are created `rw-r-----`: lines hold client addresses and paths.
const LOG_FILE_MODE: u32 = 0o640;

fn open_append(path: &PathBuf) -> Result<std::fs::File, AccessLogError> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(LOG_FILE_MODE)
        .open(path)
        .map_err(|e| AccessLogError::Open { path: path.display().to_string(), source: e })
}

impl Output {
    fn open(t: &Target, sink: Option<Sink>) -> Result<Output, AccessLogError> {
        Ok(match t {
            Target::Host => Output::Host(HostOut {
                sink: sink.ok_or(AccessLogError::NoSink)?,
                batch: Vec::new(),
                bytes: 0,
                out: Arc::new(AtomicBool::new(false)),
                free_since: Some(Instant::now()),
            }),
            Target::Stderr => Output::Stderr(std::io::BufWriter::new(std::io::stderr())),
            Target::File(p) => {
                Output::File { path: p.clone(), w: std::io::BufWriter::with_capacity(64 * 1024, open_append(p)?) }
            }
        })
    }

    /// Write a line; false if it was dropped (the host's batches are full).
    fn write(&mut self, line: &str) -> bool {
        match self {
            Output::Stderr(w) => {
                let _ = w.write_all(line.as_bytes());
            }
            Output::File { w, .. } => {
                let _ = w.write_all(line.as_bytes());
            }
            Output::Host(h) => return h.push(line),
        }
        true
    }

    /// Flush the file, or hand the host its batch (if it may go, or `force`).
    fn flush(&mut self, force: bool) {
        let _ = match self {
            Output::Stderr(w) => w.flush(),
            Output::File { w, .. } => w.flush(),
            Output::Host(h) => {
                h.deliver(force);
                Ok(())
            }
        };
    }

    /// Host lines wait, or the last batch is out: look again soon.
    fn host_waiting(&self) -> bool {
        matches!(self, Output::Host(h) if !h.batch.is_empty() || h.free_since.is_none())
    }

    fn reopen(&mut self) {
        self.flush(true);
        if let Output::File { path, w } = self {
            match open_append(path) {
                Ok(f) => *w = std::io::BufWriter::with_capacity(64 * 1024, f),
                Err(e) => eprintln!("rookd: {e} (still writing to the old file)"),
            }
        }
    }
}

fn write_loop(rx: mpsc::Receiver<Msg>, mut out: Output, format: Format, state: &State) {
    let mut line = String::with_capacity(512);
    let mut last_flush = Instant::now();
    let mut unflushed = false;
    loop {
        let wait = if out.host_waiting() { HOST_POLL } else { FLUSH_EVERY };
        let mut write = |r: Box<Record>, size: usize, out: &mut Output| {
            state.queued_bytes.fetch_sub(size, Ordering::Relaxed);
            line.clear();
            format::line(&mut line, &r, format);
            if !out.write(&line) {
                state.dropped.fetch_add(1, Ordering::Relaxed);
            }
        };
        let mut gone = false;
        match rx.recv_timeout(wait) {
            Ok(Msg::Record(r, size)) => {
                write(r, size, &mut out);
                unflushed = true;
            }
            Ok(Msg::Wake) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => gone = true,
        }
        if state.reopen.swap(false, Ordering::AcqRel) {
            out.reopen();
        }
        let flushes = std::mem::take(&mut *state.flushes.lock().unwrap_or_else(|e| e.into_inner()));
        if !flushes.is_empty() {
            // What was queued when the flush was asked for comes first (at most a queue's
            // worth: requests still arriving cannot hold the flush back for ever).
            for _ in 0..QUEUE {
                match rx.try_recv() {
                    Ok(Msg::Record(r, size)) => write(r, size, &mut out),
                    Ok(Msg::Wake) => {}
                    Err(_) => break,
                }
            }
            out.flush(true);
            unflushed = false;
            for done in flushes {
                let _ = done.send(());
            }
        }
        if gone {
            break;
        }
        if out.host_waiting() {
            // The host's batch goes when it may (see `HostOut::deliver`).
            out.flush(false);
        } else if unflushed && last_flush.elapsed() >= FLUSH_EVERY {
            out.flush(false);
            unflushed = false;
            last_flush = Instant::now();
        } else if !unflushed {
            last_flush = Instant::now();
        }
    }
    out.flush(true);
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
            AccessLog::open(&AccessLogConfig { target: Target::File(path.clone()), format: Format::Common }, None)
                .unwrap();
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

    /// A handle whose channel nobody reads (the writer is "busy").
    fn stalled(cap: usize) -> (AccessLog, mpsc::Receiver<Msg>) {
        let (tx, rx) = mpsc::sync_channel(cap);
        (AccessLog { tx, state: Arc::new(State::default()), is_file: true }, rx)
    }

    #[test]
    fn a_full_queue_drops_and_counts() {
        let (log, _rx) = stalled(1);
        for _ in 0..5 {
            drop(log.start(&parts("/"), None, None));
        }
        assert_eq!(log.dropped(), 4);
    }

    #[test]
    fn the_queue_is_bounded_in_bytes() {
        // 8 KB user agents: 16k of them would be 128 MB; the byte budget keeps ~1k.
        let (log, rx) = stalled(QUEUE);
        let ua = "a".repeat(8000);
        let p = http::Request::builder().uri("/").header("user-agent", ua.as_str()).body(()).unwrap().into_parts().0;
        for _ in 0..QUEUE {
            drop(log.start(&p, None, None));
        }
        let kept = rx.try_iter().count();
        assert!(kept > 0 && kept * 8000 <= QUEUE_BYTES, "{kept} records kept");
        assert_eq!(log.dropped() as usize, QUEUE - kept);
        // Taken by the writer, the bytes count no more (here: nobody took them).
        assert!(log.state.queued_bytes.load(Ordering::Relaxed) <= QUEUE_BYTES);
    }

    #[test]
    fn a_reopen_is_never_lost_when_the_queue_is_full() {
        let dir = std::env::temp_dir().join(format!("rookd-access-log-reopen-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("access.log");
        let out = Output::open(&Target::File(path.clone()), None).unwrap();
        let (log, rx) = stalled(1);
        let mut p = log.start(&parts("/before"), None, None);
        p.set_status(200);
        drop(p); // the queue is full now
        let moved = dir.join("access.log.1");
        std::fs::rename(&path, &moved).unwrap();
        log.reopen(); // cannot be queued
        let state = Arc::clone(&log.state);
        let writer = std::thread::spawn(move || write_loop(rx, out, Format::Common, &state));
        // The writer has taken /before (and so the reopen) once /after can be queued.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let before = log.dropped();
            let mut p = log.start(&parts("/after"), None, None);
            p.set_status(200);
            drop(p);
            if log.dropped() == before || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        drop(log);
        writer.join().unwrap();
        assert!(std::fs::read_to_string(&moved).unwrap().contains("/before"));
        assert!(std::fs::read_to_string(&path).unwrap().contains("/after"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_stop_flushes_a_full_queue_before_it_returns() {
        // The server stops while the queue is full (a flood): the host must still get
        // every queued line before `flush` returns (then comes ServerClosed).
        let (tx, rx) = std::sync::mpsc::channel();
        let sink: Sink = Box::new(move |b: HostBatch| {
            let _ = tx.send(b.len());
        });
        let out = Output::open(&Target::Host, Some(sink)).unwrap();
        let (log, queue) = stalled(3);
        for i in 0..3 {
            drop(log.start(&parts(&format!("/{i}")), None, None));
        }
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let flush = log.flush();
            tokio::pin!(flush);
            // Asked while the queue is full and the writer busy (not yet running here).
            let finished = tokio::select! {
                biased;
                _ = &mut flush => true,
                _ = std::future::ready(()) => false,
            };
            let state = Arc::clone(&log.state);
            std::thread::spawn(move || write_loop(queue, out, Format::Common, &state));
            if !finished {
                flush.await;
            }
        });
        assert_eq!(rx.try_iter().sum::<usize>(), 3);
    }

    #[test]
    fn log_files_are_created_0640() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("rookd-access-log-mode-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("access.log");
        let _ = std::fs::remove_file(&path);
        let log =
            AccessLog::open(&AccessLogConfig { target: Target::File(path.clone()), format: Format::Common }, None);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o007, 0, "{mode:o}");
        assert_eq!(mode & 0o600, 0o600, "{mode:o}");
        drop(log);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_refused_head_is_a_line() {
        let (log, rx) = stalled(4);
        log.refused(Some("10.0.0.9".into()), http::Version::HTTP_11, 431, 0);
        let Ok(Msg::Record(r, _)) = rx.try_recv() else { panic!("no record") };
        let mut line = String::new();
        format::line(&mut line, &r, Format::Combined);
        assert!(line.starts_with("10.0.0.9 - - ["), "{line}");
        assert!(line.contains("] \"- - HTTP/1.1\" 431 - \"-\" \"-\" "), "{line}");
    }

    #[test]
    fn an_unwritable_path_is_an_error() {
        let e = AccessLog::open(
            &AccessLogConfig { target: Target::File("/nonexistent-dir-rookd/x.log".into()), format: Format::Json },
            None,
        );
        assert!(matches!(e, Err(AccessLogError::Open { .. })));
    }

    #[test]
    fn host_batches() {
        let (tx, rx) = std::sync::mpsc::channel();
        let sink: Sink = Box::new(move |lines: HostBatch| {
            let _ = tx.send(lines.to_vec());
        });
        let log = AccessLog::open(&AccessLogConfig { target: Target::Host, format: Format::Json }, Some(sink)).unwrap();
        for i in 0..25 {
            let mut p = log.start(&parts(&format!("/{i}")), None, None);
            p.set_status(200);
        }
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(log.flush());
        let batches: Vec<Vec<String>> = rx.try_iter().collect();
        assert_eq!(batches.iter().map(Vec::len).sum::<usize>(), 25);
        assert!(batches.iter().all(|b| b.len() <= HOST_BATCH && !b.is_empty()));
        assert!(batches[0][0].starts_with("{\"time\":") && !batches[0][0].ends_with('\n'));
        assert!(matches!(
            AccessLog::open(&AccessLogConfig { target: Target::Host, format: Format::Json }, None),
            Err(AccessLogError::NoSink)
        ));
    }

    #[test]
    fn one_host_batch_out_at_a_time_the_rest_bounded_and_counted() {
        // The host keeps each batch (R is busy) until the test lets it go.
        let (tx, rx) = std::sync::mpsc::channel::<HostBatch>();
        let sink: Sink = Box::new(move |b| {
            let _ = tx.send(b);
        });
        let log =
            AccessLog::open(&AccessLogConfig { target: Target::Host, format: Format::Common }, Some(sink)).unwrap();
        let send = |n: usize| {
            for i in 0..n {
                let mut p = log.start(&parts(&format!("/{i}")), None, None);
                p.set_status(200);
            }
        };
        send(10);
        let first = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(first.len(), 10);
        // While the host holds it: lines gather, up to one batch, the rest are dropped.
        send(3 * HOST_BATCH);
        std::thread::sleep(Duration::from_millis(2500));
        assert!(rx.try_recv().is_err(), "a second batch while the first was still held");
        let deadline = Instant::now() + Duration::from_secs(10);
        while log.dropped() < 2 * HOST_BATCH as u64 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(log.dropped(), 2 * HOST_BATCH as u64);
        drop(first); // taken
        let t = Instant::now();
        let second = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(second.len(), HOST_BATCH);
        assert!(t.elapsed() < Duration::from_secs(5));
        // Bounded in bytes too.
        let big =
            http::Request::builder().uri("/").header("user-agent", "u".repeat(8000)).body(()).unwrap().into_parts().0;
        for _ in 0..HOST_BATCH {
            drop(log.start(&big, None, None));
        }
        drop(second);
        let third = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(third.iter().map(String::len).sum::<usize>() <= HOST_BATCH_BYTES);
        assert!(third.len() < HOST_BATCH);
    }
}
