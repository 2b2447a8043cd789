//! The PROXY protocol (HAProxy's, versions 1 and 2): a header a load balancer writes at
//! the start of each connection saying who the client is, since the TCP peer is the
//! balancer. With the `proxy_protocol` option every connection must start with one; the
//! connection driver reads it here (exactly the header's bytes are consumed, anything
//! read past them goes on to hyper) and the client address becomes REMOTE_ADDR.
//!
//! A leaf: no crate imports. [`parse`] is pure and can be fed any prefix (unit tests feed
//! it byte by byte); [`read_header`] reads a socket until `parse` decides.
//! Spec: <https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt>.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

/// The v2 signature (12 bytes).
const V2_SIG: &[u8; 12] = b"\r\n\r\n\x00\r\nQUIT\n";
/// A v1 line is at most 107 bytes with its CRLF (spec, 2.1).
const V1_MAX: usize = 107;

/// What the header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyHeader {
    /// A relayed TCP connection: the client (`source`) and the address it reached.
    Proxied { source: SocketAddr, dest: SocketAddr },
    /// The proxy speaking for itself (v2 LOCAL, e.g. a health check), `UNKNOWN` (v1), or
    /// a family other than TCP over IPv4/IPv6 (v2): keep the real peer's address.
    Local,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProxyError {
    #[error("the connection does not start with a PROXY protocol header")]
    NotProxy,
    #[error("malformed PROXY protocol v1 line")]
    BadV1,
    #[error("malformed PROXY protocol v2 header")]
    BadV2,
    #[error("no complete PROXY protocol header within the header timeout")]
    Timeout,
    #[error("the connection closed before its PROXY protocol header was complete")]
    Closed,
}

/// The result of looking at the bytes received so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// Need more bytes.
    Incomplete,
    /// A header of this many bytes.
    Done(ProxyHeader, usize),
}

/// Parse the start of a connection.
pub fn parse(buf: &[u8]) -> Result<Parsed, ProxyError> {
    if buf.is_empty() {
        return Ok(Parsed::Incomplete);
    }
    let n = buf.len().min(V2_SIG.len());
    if buf[..n] == V2_SIG[..n] {
        return parse_v2(buf);
    }
    let n = buf.len().min(6);
    if buf[..n] == b"PROXY "[..n] {
        return parse_v1(buf);
    }
    Err(ProxyError::NotProxy)
}

fn parse_v1(buf: &[u8]) -> Result<Parsed, ProxyError> {
    let Some(end) = buf.iter().take(V1_MAX).position(|&b| b == b'\n') else {
        return if buf.len() >= V1_MAX { Err(ProxyError::BadV1) } else { Ok(Parsed::Incomplete) };
    };
    // The line ends with CRLF exactly.
    if end == 0 || buf[end - 1] != b'\r' {
        return Err(ProxyError::BadV1);
    }
    let line = std::str::from_utf8(&buf[..end - 1]).map_err(|_| ProxyError::BadV1)?;
    let mut parts = line.split(' ');
    if parts.next() != Some("PROXY") {
        return Err(ProxyError::BadV1);
    }
    let header = match parts.next() {
        // "UNKNOWN" may be followed by anything (spec: the receiver ignores it).
        Some("UNKNOWN") => ProxyHeader::Local,
        Some(fam @ ("TCP4" | "TCP6")) => {
            let fields: Vec<&str> = parts.collect();
            let [src, dst, sport, dport] = fields[..] else { return Err(ProxyError::BadV1) };
            let (src, dst) = match fam {
                "TCP4" => (
                    IpAddr::V4(src.parse::<Ipv4Addr>().map_err(|_| ProxyError::BadV1)?),
                    IpAddr::V4(dst.parse::<Ipv4Addr>().map_err(|_| ProxyError::BadV1)?),
                ),
                _ => (
                    IpAddr::V6(src.parse::<Ipv6Addr>().map_err(|_| ProxyError::BadV1)?),
                    IpAddr::V6(dst.parse::<Ipv6Addr>().map_err(|_| ProxyError::BadV1)?),
                ),
            };
            ProxyHeader::Proxied {
                source: SocketAddr::new(src, port(sport)?),
                dest: SocketAddr::new(dst, port(dport)?),
            }
        }
        _ => return Err(ProxyError::BadV1),
    };
    Ok(Parsed::Done(header, end + 1))
}

/// A v1 port: 1-5 decimal digits, no sign, no leading zero (spec), at most 65535.
fn port(s: &str) -> Result<u16, ProxyError> {
    let ok =
        !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    if !ok {
        return Err(ProxyError::BadV1);
    }
    s.parse().map_err(|_| ProxyError::BadV1)
}

fn parse_v2(buf: &[u8]) -> Result<Parsed, ProxyError> {
    if buf.len() < 16 {
        return Ok(Parsed::Incomplete);
    }
    let ver_cmd = buf[12];
    let fam = buf[13];
    let len = u16::from_be_bytes([buf[14], buf[15]]) as usize;
    if ver_cmd >> 4 != 2 {
        return Err(ProxyError::BadV2);
    }
    let total = 16 + len;
    let cmd = ver_cmd & 0x0f;
    if cmd > 1 {
        return Err(ProxyError::BadV2);
    }
    // The address block's size is known from the family: refuse a length too short for it
    // before waiting for more bytes.
    let need = match fam {
        0x11 | 0x12 => 12,
        0x21 | 0x22 => 36,
        0x31 | 0x32 => 216,
        0x00 => 0,
        _ => return Err(ProxyError::BadV2),
    };
    if cmd == 1 && len < need {
        return Err(ProxyError::BadV2);
    }
    if buf.len() < total {
        return Ok(Parsed::Incomplete);
    }
    let a = &buf[16..total];
    // LOCAL: the proxy's own connection; the address block (if any) is ignored.
    if cmd == 0 {
        return Ok(Parsed::Done(ProxyHeader::Local, total));
    }
    let header = match fam {
        0x11 => {
            let src = Ipv4Addr::new(a[0], a[1], a[2], a[3]);
            let dst = Ipv4Addr::new(a[4], a[5], a[6], a[7]);
            ProxyHeader::Proxied {
                source: SocketAddr::new(src.into(), u16::from_be_bytes([a[8], a[9]])),
                dest: SocketAddr::new(dst.into(), u16::from_be_bytes([a[10], a[11]])),
            }
        }
        0x21 => {
            let mut s = [0u8; 16];
            let mut d = [0u8; 16];
            s.copy_from_slice(&a[..16]);
            d.copy_from_slice(&a[16..32]);
            ProxyHeader::Proxied {
                source: SocketAddr::new(Ipv6Addr::from(s).into(), u16::from_be_bytes([a[32], a[33]])),
                dest: SocketAddr::new(Ipv6Addr::from(d).into(), u16::from_be_bytes([a[34], a[35]])),
            }
        }
        // UDP, Unix sockets, UNSPEC: nothing an HTTP env can use; keep the peer's address.
        _ => ProxyHeader::Local,
    };
    // TLVs after the addresses are skipped.
    Ok(Parsed::Done(header, total))
}

/// Read a PROXY header from the start of `io`, within `timeout`. Returns the header and
/// the bytes read past it (the start of the HTTP request). Any error means: close.
pub async fn read_header<IO: AsyncRead + Unpin>(
    io: &mut IO,
    timeout: Duration,
) -> Result<(ProxyHeader, Bytes), ProxyError> {
    let mut buf = BytesMut::with_capacity(512);
    let read = async {
        loop {
            match parse(&buf)? {
                Parsed::Done(h, n) => {
                    let rest = buf.split_off(n).freeze();
                    return Ok((h, rest));
                }
                Parsed::Incomplete => {
                    buf.reserve(512);
                    if io.read_buf(&mut buf).await.map_err(|_| ProxyError::Closed)? == 0 {
                        return Err(ProxyError::Closed);
                    }
                }
            }
        }
    };
    tokio::time::timeout(timeout, read).await.map_err(|_| ProxyError::Timeout)?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// Feed `input` one byte at a time: every proper prefix is Incomplete (or, for a bad
    /// header, an error no later than the whole), and the whole gives the header.
    fn fed_in_pieces(input: &[u8]) -> Result<Parsed, ProxyError> {
        for i in 0..input.len() {
            match parse(&input[..i]) {
                Ok(Parsed::Incomplete) => {}
                other => return other,
            }
        }
        parse(input)
    }

    #[test]
    fn v1_spec_examples() {
        let line = b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET / HTTP/1.1\r\n";
        let got = fed_in_pieces(&line[..47]).unwrap();
        assert_eq!(
            got,
            Parsed::Done(ProxyHeader::Proxied { source: sa("192.168.0.1:56324"), dest: sa("192.168.0.11:443") }, 47)
        );
        // With the request after it, exactly the header is consumed.
        assert_eq!(parse(line).unwrap(), got);
        let v6 = b"PROXY TCP6 2001:db8::1 2001:db8::2 4711 80\r\n";
        assert_eq!(
            fed_in_pieces(v6).unwrap(),
            Parsed::Done(
                ProxyHeader::Proxied { source: sa("[2001:db8::1]:4711"), dest: sa("[2001:db8::2]:80") },
                v6.len()
            )
        );
        let unknown = b"PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n";
        assert_eq!(fed_in_pieces(unknown).unwrap(), Parsed::Done(ProxyHeader::Local, unknown.len()));
        assert_eq!(parse(b"PROXY UNKNOWN\r\n").unwrap(), Parsed::Done(ProxyHeader::Local, 15));
    }

    #[test]
    fn v1_malformed() {
        for bad in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
            b"PROXY TCP4 ::1 ::1 1 2\r\n",
            b"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
            b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
            b"proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\xff\r\n",
        ] {
            assert!(fed_in_pieces(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        // No newline within 107 bytes: refused without waiting for more.
        let long = [b"PROXY UNKNOWN ".as_slice(), &[b'x'; 200]].concat();
        assert_eq!(fed_in_pieces(&long), Err(ProxyError::BadV1));
    }

    fn v2(ver_cmd: u8, fam: u8, addrs: &[u8]) -> Vec<u8> {
        let mut v = V2_SIG.to_vec();
        v.push(ver_cmd);
        v.push(fam);
        v.extend_from_slice(&(addrs.len() as u16).to_be_bytes());
        v.extend_from_slice(addrs);
        v
    }

    #[test]
    fn v2_ipv4_ipv6_local_and_tlvs() {
        let mut a = vec![203, 0, 113, 9, 10, 0, 0, 1];
        a.extend_from_slice(&4711u16.to_be_bytes());
        a.extend_from_slice(&8080u16.to_be_bytes());
        let h = v2(0x21, 0x11, &a);
        assert_eq!(
            fed_in_pieces(&h).unwrap(),
            Parsed::Done(ProxyHeader::Proxied { source: sa("203.0.113.9:4711"), dest: sa("10.0.0.1:8080") }, 28)
        );
        // TLVs (here a PP2_TYPE_ALPN and a NOOP) are skipped, counted in the length.
        let mut with_tlv = a.clone();
        with_tlv.extend_from_slice(&[0x01, 0x00, 0x02, b'h', b'2', 0x04, 0x00, 0x00]);
        let h = v2(0x21, 0x11, &with_tlv);
        let mut stream = h.clone();
        stream.extend_from_slice(b"GET / HTTP/1.1\r\n");
        assert!(matches!(parse(&stream).unwrap(), Parsed::Done(ProxyHeader::Proxied { .. }, n) if n == h.len()));

        let mut a6 = Vec::new();
        a6.extend_from_slice(&"2001:db8::7".parse::<Ipv6Addr>().unwrap().octets());
        a6.extend_from_slice(&"::1".parse::<Ipv6Addr>().unwrap().octets());
        a6.extend_from_slice(&[0x12, 0x67, 0x00, 0x50]);
        let h = v2(0x21, 0x21, &a6);
        assert_eq!(
            fed_in_pieces(&h).unwrap(),
            Parsed::Done(ProxyHeader::Proxied { source: sa("[2001:db8::7]:4711"), dest: sa("[::1]:80") }, h.len())
        );
        // LOCAL (health checks), with or without addresses.
        assert_eq!(fed_in_pieces(&v2(0x20, 0x00, &[])).unwrap(), Parsed::Done(ProxyHeader::Local, 16));
        assert_eq!(fed_in_pieces(&v2(0x20, 0x11, &a)).unwrap(), Parsed::Done(ProxyHeader::Local, 28));
        // UDP and UNSPEC families carry nothing usable: Local.
        assert_eq!(fed_in_pieces(&v2(0x21, 0x12, &a)).unwrap(), Parsed::Done(ProxyHeader::Local, 28));
    }

    #[test]
    fn v2_malformed() {
        let a = [0u8; 12];
        assert_eq!(fed_in_pieces(&v2(0x11, 0x11, &a)), Err(ProxyError::BadV2)); // version 1 in a v2 header
        assert_eq!(fed_in_pieces(&v2(0x22, 0x11, &a)), Err(ProxyError::BadV2)); // command 2
        assert_eq!(fed_in_pieces(&v2(0x21, 0x41, &a)), Err(ProxyError::BadV2)); // family 4
        assert_eq!(fed_in_pieces(&v2(0x21, 0x11, &a[..8])), Err(ProxyError::BadV2)); // too short for IPv4
        assert_eq!(fed_in_pieces(&v2(0x21, 0x21, &a)), Err(ProxyError::BadV2)); // too short for IPv6
                                                                                // A signature that diverges.
        assert_eq!(parse(b"\r\n\r\n\x00\r\nQUIX"), Err(ProxyError::NotProxy));
    }

    #[test]
    fn read_header_keeps_what_follows_and_times_out() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let (mut client, mut server) = tokio::io::duplex(64);
            let w = tokio::spawn(async move {
                use tokio::io::AsyncWriteExt;
                for piece in [&b"PROXY TCP4 1.2.3.4 "[..], b"5.6.7.8 1 2\r", b"\nGET / HTTP/1.1\r\n"] {
                    client.write_all(piece).await.unwrap();
                    tokio::task::yield_now().await;
                }
                client
            });
            let (h, rest) = read_header(&mut server, Duration::from_secs(5)).await.unwrap();
            assert_eq!(h, ProxyHeader::Proxied { source: sa("1.2.3.4:1"), dest: sa("5.6.7.8:2") });
            let _client = w.await.unwrap();
            let mut all = rest.to_vec();
            let mut more = vec![0u8; 64];
            while all.len() < 16 {
                let n = server.read(&mut more).await.unwrap();
                all.extend_from_slice(&more[..n]);
            }
            assert_eq!(&all, b"GET / HTTP/1.1\r\n");

            let (_client, mut server) = tokio::io::duplex(64);
            assert_eq!(read_header(&mut server, Duration::from_millis(50)).await, Err(ProxyError::Timeout));
            let (client, mut server) = tokio::io::duplex(64);
            drop(client);
            assert_eq!(read_header(&mut server, Duration::from_secs(5)).await, Err(ProxyError::Closed));
        });
    }
}
