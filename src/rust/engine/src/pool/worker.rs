//! One worker process: how it is started (a command the host gave, serving on a Unix
//! socket in the pool's private directory), its state, its counters, its idle
//! connections, its output and memory.
use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use hyper::client::conn::http1::SendRequest;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};

use super::body::OutBody;
use super::{PoolConfig, WorkerInfo};

/// Lines of a worker's stderr kept for the startup-failure message.
const TAIL_LINES: usize = 30;
/// A line of a worker's output longer than this is forwarded in pieces of this size (a
/// progress bar redrawn with `\r` and never a newline is one endless line).
const MAX_LINE: usize = 8 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum State {
    /// Spawned, not yet accepting connections.
    Starting = 0,
    /// Serving.
    Ready = 1,
    /// Gets no new requests; stopped once its requests and WebSockets are done.
    Draining = 2,
    /// Gone (exited or stopped); about to leave the list.
    Gone = 3,
}

impl State {
    fn from_u8(v: u8) -> State {
        match v {
            0 => State::Starting,
            1 => State::Ready,
            2 => State::Draining,
            _ => State::Gone,
        }
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Ready => "ready",
            State::Draining => "draining",
            State::Gone => "gone",
        }
    }
}

pub(super) struct Worker {
    pub id: u32,
    /// The stickiness key (cookie value): unique over the pool's life.
    pub key: String,
    /// The Unix socket the worker serves on (in the pool's 0700 directory).
    pub socket: PathBuf,
    pub pid: u32,
    pub generation: u64,
    pub spawned_at: Instant,
    state: AtomicU8,
    /// Marked for recycling (too many requests, too much memory).
    retire: AtomicBool,
    /// A connect failed or a request timed out: replace it.
    pub unhealthy: AtomicBool,
    pub in_flight: AtomicUsize,
    pub served: AtomicU64,
    pub websockets: AtomicUsize,
    pub drain_since: Mutex<Option<Instant>>,
    pub idle: Mutex<Vec<SendRequest<OutBody>>>,
    child: Mutex<Option<Child>>,
    tail: Arc<Mutex<VecDeque<String>>>,
}

impl Worker {
    /// Start a worker process (must run inside the runtime: output is read by tasks).
    pub fn spawn(cfg: &PoolConfig, id: u32, generation: u64, nofile: Option<u64>) -> std::io::Result<Arc<Worker>> {
        // Only this front creates files in the directory (0700): a name it finds is a
        // leftover of a worker of its own that was killed.
        let socket = cfg.socket_dir.join(format!("w{id}.sock"));
        let _ = std::fs::remove_file(&socket);
        let mut cmd = Command::new(&cfg.command.program);
        cmd.args(&cfg.command.args)
            .envs(cfg.command.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("ROOKD_WORKER_SOCKET", &socket)
            .env("ROOKD_WORKER_ID", id.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // SAFETY: the closure runs in the child between fork and exec and calls only
        // async-signal-safe functions (sigfillset, pthread_sigmask, prctl, setrlimit) on
        // its own data.
        // The I/O threads block every signal and a child inherits the mask; the worker
        // must see SIGTERM/SIGINT again. PDEATHSIG (Linux) stops the worker if the front
        // dies; it fires when the spawning thread exits, and workers are spawned only by
        // the supervisor task, on the pool runtime's threads, which live as long as it.
        // The front raised its open-files limit; the worker gets the original soft one.
        unsafe {
            cmd.pre_exec(move || {
                if let Some(soft) = nofile {
                    let mut l: libc::rlimit = std::mem::zeroed();
                    if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) == 0 && (soft as libc::rlim_t) < l.rlim_cur {
                        l.rlim_cur = soft as libc::rlim_t;
                        libc::setrlimit(libc::RLIMIT_NOFILE, &l);
                    }
                }
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigfillset(&mut set);
                libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
                #[cfg(target_os = "linux")]
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong);
                Ok(())
            });
        }
        let mut child = cmd.spawn()?;
        let pid = child.id().unwrap_or(0);
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        if let Some(out) = child.stdout.take() {
            tokio::spawn(forward(out, id, None, cfg.forward_output));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(forward(err, id, Some(Arc::clone(&tail)), cfg.forward_output));
        }
        Ok(Arc::new(Worker {
            id,
            key: format!("w{id}"),
            socket,
            pid,
            generation,
            spawned_at: Instant::now(),
            state: AtomicU8::new(State::Starting as u8),
            retire: AtomicBool::new(false),
            unhealthy: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            served: AtomicU64::new(0),
            websockets: AtomicUsize::new(0),
            drain_since: Mutex::new(None),
            idle: Mutex::new(Vec::new()),
            child: Mutex::new(Some(child)),
            tail,
        }))
    }

    pub fn state(&self) -> State {
        State::from_u8(self.state.load(Ordering::Acquire))
    }

    pub fn set_state(&self, s: State) {
        self.state.store(s as u8, Ordering::Release);
        if s != State::Ready {
            self.idle_conns().clear();
        }
    }

    pub fn retiring(&self) -> bool {
        self.retire.load(Ordering::Acquire)
    }

    /// Mark for recycling; true the first time.
    pub fn mark_retire(&self) -> bool {
        !self.retire.swap(true, Ordering::AcqRel)
    }

    pub fn idle_conns(&self) -> std::sync::MutexGuard<'_, Vec<SendRequest<OutBody>>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Take one more request if under `cap`.
    pub fn try_claim(&self, cap: usize) -> bool {
        self.in_flight.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < cap).then_some(n + 1)).is_ok()
    }

    /// `Some(status text)` once the process has exited.
    pub fn exited(&self) -> Option<String> {
        let mut g = self.child.lock().unwrap_or_else(|p| p.into_inner());
        match g.as_mut().map(|c| c.try_wait()) {
            Some(Ok(Some(status))) => Some(status.to_string()),
            Some(Ok(None)) => None,
            Some(Err(e)) => Some(e.to_string()),
            None => Some("stopped".into()),
        }
    }

    /// Ask the process to stop (SIGTERM).
    pub fn terminate(&self) {
        if self.pid != 0 && self.exited().is_none() {
            // SAFETY: kill(2) on our own child's pid; it is not reaped yet (we hold its
            // Child and only wait through it), so the pid cannot have been reused.
            unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGTERM) };
        }
    }

    /// Wait for the process to exit until `deadline`, then kill it.
    pub async fn reap(&self, deadline: tokio::time::Instant) {
        let child = self.child.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(mut child) = child {
            if tokio::time::timeout_at(deadline, child.wait()).await.is_err() {
                let _ = child.kill().await;
            }
        }
        // A worker that was killed leaves its socket file behind.
        let _ = std::fs::remove_file(&self.socket);
    }

    pub fn stderr_tail(&self) -> String {
        let t = self.tail.lock().unwrap_or_else(|p| p.into_inner());
        t.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    /// Resident memory in KiB, from /proc/<pid>/status.
    pub fn rss_kb(&self) -> Option<u64> {
        if self.state() == State::Gone {
            return None;
        }
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    pub fn info(&self) -> WorkerInfo {
        WorkerInfo {
            id: self.id,
            pid: self.pid,
            state: if self.retiring() && self.state() == State::Ready { "retiring" } else { self.state().name() },
            generation: self.generation,
            in_flight: self.in_flight.load(Ordering::Relaxed),
            served: self.served.load(Ordering::Relaxed),
            websockets: self.websockets.load(Ordering::Relaxed),
            rss_kb: self.rss_kb(),
            socket: self.socket.clone(),
        }
    }
}

/// Copy a worker's output, line by line, to our stderr with its id; keep a tail of stderr.
/// Bytes, not text: invalid UTF-8 is forwarded lossily (never an end of forwarding), and a
/// line is cut every [`MAX_LINE`] bytes (memory stays bounded whatever the worker prints).
async fn forward<R: AsyncRead + Unpin>(mut r: R, id: u32, tail: Option<Arc<Mutex<VecDeque<String>>>>, echo: bool) {
    let mut pending: Vec<u8> = Vec::with_capacity(1024);
    let mut chunk = vec![0u8; 16 * 1024];
    let emit = |line: &[u8]| {
        let line = String::from_utf8_lossy(line);
        let line = line.trim_end_matches('\r');
        if echo {
            eprintln!("[worker {id}] {line}");
        }
        if let Some(t) = &tail {
            let mut t = t.lock().unwrap_or_else(|p| p.into_inner());
            if t.len() == TAIL_LINES {
                t.pop_front();
            }
            t.push_back(line.to_string());
        }
    };
    loop {
        let n = match r.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut rest = &chunk[..n];
        while !rest.is_empty() {
            match rest.iter().position(|&b| b == b'\n') {
                Some(i) if pending.len() + i <= MAX_LINE => {
                    pending.extend_from_slice(&rest[..i]);
                    emit(&pending);
                    pending.clear();
                    rest = &rest[i + 1..];
                }
                _ => {
                    let take = (MAX_LINE - pending.len()).min(rest.len());
                    pending.extend_from_slice(&rest[..take]);
                    rest = &rest[take..];
                    if pending.len() >= MAX_LINE {
                        emit(&pending);
                        pending.clear();
                    }
                }
            }
        }
    }
    if !pending.is_empty() {
        emit(&pending);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn forwarding_survives_bad_bytes_and_cuts_long_lines() {
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let mut input = b"one\n\xff\xfebad\n".to_vec();
        input.extend(std::iter::repeat_n(b'\r', 3 * MAX_LINE + 5));
        input.extend_from_slice(b"x\nlast\n");
        forward(&input[..], 1, Some(Arc::clone(&tail)), false).await;
        let t = tail.lock().unwrap();
        assert_eq!(t[0], "one");
        assert_eq!(t[1], "\u{fffd}\u{fffd}bad");
        assert!(t.iter().all(|l| l.len() <= MAX_LINE));
        assert_eq!(t.back().map(String::as_str), Some("last"));
    }
}
