//! Binding listeners. Binding happens on the caller's thread so that "address in use"
//! is reported at once, as an error of the start call.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use socket2::{Domain, Protocol, Socket, Type};

use crate::error::EngineError;

const BACKLOG: i32 = 1024;

#[derive(Clone, Debug)]
pub enum BindTarget {
    Tcp {
        host: String,
        port: u16,
    },
    /// A Unix domain socket at `path`; `mask` is the umask applied while creating it.
    Unix {
        path: PathBuf,
        mask: Option<u32>,
    },
}

#[derive(Clone, Debug)]
pub enum LocalAddr {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

pub(crate) enum StdListener {
    Tcp(std::net::TcpListener),
    Unix(std::os::unix::net::UnixListener, PathBuf),
}

/// Resolve a host as users write it: IPv4/IPv6 literals (brackets allowed), "0.0.0.0",
/// "::", "localhost" or a name.
pub fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, EngineError> {
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    if bare.eq_ignore_ascii_case("localhost") {
        return Ok(vec![
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port),
        ]);
    }
    let addrs: Vec<SocketAddr> = (bare, port)
        .to_socket_addrs()
        .map_err(|e| EngineError::Resolve { host: host.to_string(), reason: e.to_string() })?
        .collect();
    if addrs.is_empty() {
        return Err(EngineError::Resolve { host: host.to_string(), reason: "no addresses".into() });
    }
    Ok(addrs)
}

fn bind_tcp(addr: SocketAddr, reuse_port: bool) -> std::io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // A stopped server's port can be bound again at once (TIME_WAIT connections don't block it).
    socket.set_reuse_address(true)?;
    if reuse_port {
        // Several processes (each binding with it) share the port; the kernel spreads
        // new connections over them.
        socket.set_reuse_port(true)?;
    }
    if addr.is_ipv6() {
        // "::" serves IPv4 too, as users expect from a wildcard.
        socket.set_only_v6(false)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

pub(crate) fn bind(target: &BindTarget) -> Result<(StdListener, LocalAddr), EngineError> {
    bind_with(target, false)
}

/// As [`bind`]; `reuse_port` sets SO_REUSEPORT on a TCP listener.
pub(crate) fn bind_with(target: &BindTarget, reuse_port: bool) -> Result<(StdListener, LocalAddr), EngineError> {
    match target {
        BindTarget::Tcp { host, port } => {
            let mut last_err = None;
            for addr in resolve(host, *port)? {
                match bind_tcp(addr, reuse_port) {
                    Ok(l) => {
                        let local =
                            l.local_addr().map_err(|e| EngineError::Bind { addr: addr.to_string(), source: e })?;
                        return Ok((StdListener::Tcp(l), LocalAddr::Tcp(local)));
                    }
                    Err(e) => last_err = Some(EngineError::Bind { addr: display_addr(host, *port), source: e }),
                }
            }
            Err(last_err.unwrap_or_else(|| EngineError::Resolve { host: host.clone(), reason: "no addresses".into() }))
        }
        BindTarget::Unix { path, mask } => {
            let old = mask.map(|m| {
                // SAFETY: umask only swaps the process's file-creation mask; we restore it below.
                unsafe { libc::umask(m as libc::mode_t) }
            });
            let res = std::os::unix::net::UnixListener::bind(path);
            if let Some(old) = old {
                // SAFETY: as above.
                unsafe { libc::umask(old) };
            }
            let l = res.map_err(|e| EngineError::Bind { addr: path.display().to_string(), source: e })?;
            l.set_nonblocking(true).map_err(|e| EngineError::Bind { addr: path.display().to_string(), source: e })?;
            Ok((StdListener::Unix(l, path.clone()), LocalAddr::Unix(path.clone())))
        }
    }
}

/// Could a server listen on `host:port` now? (The answer can change a moment later.)
pub fn port_available(host: &str, port: u16) -> bool {
    bind(&BindTarget::Tcp { host: host.to_string(), port }).is_ok()
}

fn display_addr(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_literals_and_localhost() {
        assert_eq!(resolve("127.0.0.1", 80).unwrap()[0].to_string(), "127.0.0.1:80");
        assert_eq!(resolve("::1", 80).unwrap()[0].to_string(), "[::1]:80");
        assert_eq!(resolve("[::1]", 80).unwrap()[0].to_string(), "[::1]:80");
        assert_eq!(resolve("localhost", 80).unwrap()[0].to_string(), "127.0.0.1:80");
    }

    #[test]
    fn reuse_port_lets_two_listeners_share_a_port() {
        let t = |port| BindTarget::Tcp { host: "127.0.0.1".into(), port };
        let (_a, addr) = bind_with(&t(0), true).unwrap();
        let LocalAddr::Tcp(a) = addr else { panic!() };
        assert!(bind_with(&t(a.port()), true).is_ok());
        assert!(bind_with(&t(a.port()), false).is_err());
    }

    #[test]
    fn busy_port_is_an_error_naming_the_address() {
        let (_l, addr) = bind(&BindTarget::Tcp { host: "127.0.0.1".into(), port: 0 }).unwrap();
        let LocalAddr::Tcp(a) = addr else { panic!() };
        let err = bind(&BindTarget::Tcp { host: "127.0.0.1".into(), port: a.port() }).err().unwrap();
        let msg = err.to_string();
        assert!(msg.contains(&format!("127.0.0.1:{}", a.port())), "{msg}");
        assert!(msg.to_lowercase().contains("in use"), "{msg}");
    }
}
