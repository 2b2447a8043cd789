//! The front's own resources, told apart from a worker's failure.
//!
//! A front out of file descriptors fails every `accept` and every connect to a worker
//! with EMFILE; read as "the worker is dead" that would replace every healthy worker
//! (and drop every Shiny session) because of the front's own limit. So:
//! - at start the soft `RLIMIT_NOFILE` is raised to the hard limit (as nginx, Go and
//!   most servers do; the workers get the original soft limit back at spawn, since R
//!   code there may still use `select()`, which cannot watch descriptors past 1023);
//! - the front caps its client connections below what the limit leaves (each client
//!   connection may need one to a worker too), and answers the excess with `503` +
//!   `Retry-After` instead of leaving it in the kernel's backlog;
//! - an error that is the front's own ([`is_front_exhaustion`]) is a `503` for the
//!   request, never a mark against the worker.
use std::io;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Descriptors kept aside for the front's process itself (R, its files, the runtime,
/// the listener, the workers' pipes) before client connections are counted.
const BASE_RESERVE: u64 = 64;

/// The soft and hard `RLIMIT_NOFILE` before the front raised it, if known.
#[derive(Clone, Copy, Debug)]
pub struct NoFile {
    pub original_soft: u64,
    pub soft: u64,
}

/// Raise the soft open-files limit to the hard one. Returns the limits (before, now).
pub fn raise_nofile() -> Option<NoFile> {
    // SAFETY: getrlimit/setrlimit on a zeroed struct we own.
    unsafe {
        let mut l: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) != 0 {
            return None;
        }
        let original_soft = l.rlim_cur as u64;
        if l.rlim_cur < l.rlim_max {
            let raised = libc::rlimit { rlim_cur: l.rlim_max, rlim_max: l.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                l.rlim_cur = l.rlim_max;
            }
        }
        Some(NoFile { original_soft, soft: l.rlim_cur as u64 })
    }
}

/// How many client connections the front may hold: `wanted`, but no more than half of
/// what the descriptor limit leaves after the reserve (a client connection may come with
/// one to a worker: a request in flight, a WebSocket), and at least 1.
pub fn connection_cap(wanted: usize, nofile: Option<NoFile>, workers: usize) -> usize {
    let Some(n) = nofile else { return wanted.max(1) };
    let reserve = BASE_RESERVE + 4 * workers as u64;
    let room = n.soft.saturating_sub(reserve) / 2;
    (wanted as u64).min(room).max(1) as usize
}

/// Is this error the front's own shortage (descriptors, buffers, memory), not a sign
/// that the peer is gone?
pub fn is_front_exhaustion(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM))
        // A Unix socket whose backlog is full: the worker is busy accepting, not dead.
        || e.kind() == io::ErrorKind::WouldBlock
}

const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Retry-After: 1\r\n\
Connection: close\r\n\
Content-Length: 57\r\n\
\r\n\
503 Service Unavailable: too many connections, try later\n";

/// Answer a connection the front has no room for: 503 + Retry-After, then close after
/// reading (and dropping) what the client sends for a moment, so that the close does
/// not reset the connection before the client has read the answer.
pub async fn refuse<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(mut s: S) {
    let _ = tokio::time::timeout(Duration::from_secs(1), s.write_all(REFUSAL)).await;
    let _ = s.shutdown().await;
    let mut sink = [0u8; 4096];
    let linger = async {
        let mut total = 0usize;
        while let Ok(n) = s.read(&mut sink).await {
            total += n;
            if n == 0 || total > 64 * 1024 {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), linger).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_declares_its_length() {
        let text = std::str::from_utf8(REFUSAL).unwrap();
        let (_, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(text.contains(&format!("Content-Length: {}\r\n", body.len())));
    }

    #[test]
    fn the_cap_leaves_room_for_worker_connections() {
        let n = |soft| Some(NoFile { original_soft: soft, soft });
        assert_eq!(connection_cap(10_000, n(1024), 2), (1024 - 72) / 2);
        assert_eq!(connection_cap(100, n(1024), 2), 100);
        assert_eq!(connection_cap(10_000, n(10), 2), 1);
        assert_eq!(connection_cap(10_000, None, 2), 10_000);
    }

    #[test]
    fn emfile_is_the_front_s_own_refused_is_not() {
        assert!(is_front_exhaustion(&io::Error::from_raw_os_error(libc::EMFILE)));
        assert!(is_front_exhaustion(&io::Error::from_raw_os_error(libc::ENFILE)));
        assert!(!is_front_exhaustion(&io::Error::from_raw_os_error(libc::ECONNREFUSED)));
        assert!(!is_front_exhaustion(&io::Error::from_raw_os_error(libc::ENOENT)));
    }
}
