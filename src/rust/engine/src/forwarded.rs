//! Who the client really is when rookd runs behind a reverse proxy: `X-Forwarded-For`,
//! `X-Forwarded-Proto`, `X-Forwarded-Host` and RFC 7239 `Forwarded`, believed only from a
//! peer in `trusted_proxies`. A leaf: R-free, no I/O; `service` calls [`resolve`] once per
//! request and hands the result to the host in the request head.
//!
//! Rules (the README's "Deploying rookd" says the same):
//! - Nothing is believed unless the TCP peer (after a PROXY protocol header, the address
//!   it gave) is trusted. A Unix-socket peer is trusted when the list holds `"unix"`.
//! - The client is found by walking the address list from the right (the entry the
//!   nearest proxy appended) past every trusted address; the first untrusted one is the
//!   client. Entries further left were written by the client itself and are never used.
//!   A list made only of trusted addresses yields its leftmost. Garbage, `unknown` or an
//!   obfuscated identifier (`_hidden`) met on the walk ends it without an address.
//! - One family per request: if any `X-Forwarded-For`/`-Proto`/`-Host` header is present,
//!   those are used and `Forwarded` is ignored; else `Forwarded`. (Proxies that set one
//!   family should clear the other; nginx, HAProxy and most load balancers set X-Forwarded-*.)
//! - Proto and host come from the same hop as the client in `Forwarded`; for X-Forwarded-*
//!   the rightmost value (written by the nearest, trusted proxy).
use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;

/// At most this many list entries are looked at, from the right: a trusted chain longer
/// than this is not a deployment, and the walk stays bounded whatever a client sends.
pub const MAX_HOPS: usize = 32;

/// An IP network (`10.0.0.0/8`, `::1`, `2001:db8::/32`); a bare address is a /32 or /128.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CidrError {
    #[error("`{0}` is not an IP address or network (a.b.c.d, a.b.c.d/n, an IPv6 address, \"unix\" or \"*\")")]
    NotAnAddress(String),
    #[error("`{0}`: the prefix length must be a whole number in [0, {1}]")]
    BadPrefix(String, u8),
}

impl Cidr {
    pub fn parse(s: &str) -> Result<Cidr, CidrError> {
        let t = s.trim();
        let (a, p) = match t.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (t, None),
        };
        let addr: IpAddr = a.parse().map_err(|_| CidrError::NotAnAddress(s.to_string()))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max && !p.starts_with('+') => n,
                _ => return Err(CidrError::BadPrefix(s.to_string(), max)),
            },
        };
        Ok(Cidr { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical_ip(ip);
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = if self.prefix == 0 { 0 } else { u32::MAX << (32 - self.prefix) };
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = if self.prefix == 0 { 0 } else { u128::MAX << (128 - self.prefix) };
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// An IPv4 client on a dual-stack socket shows as `::ffff:a.b.c.d`: compare and show it
/// as IPv4 (the one place this is decided: trusted proxies, metrics_allow, the access log,
/// the env's REMOTE_ADDR).
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The `trusted_proxies` option, parsed.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies {
    nets: Vec<Cidr>,
    unix: bool,
    /// `"*"`: every peer that connects is a proxy (the user says nothing else can reach
    /// the port). It trusts connections, never an address written in a forwarded list or
    /// a PROXY header: those are trusted only when listed.
    any_peer: bool,
}

impl TrustedProxies {
    /// Parse every entry; the first bad one is the error.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<TrustedProxies, CidrError> {
        let mut t = TrustedProxies::default();
        for e in entries {
            if e.as_ref().trim().eq_ignore_ascii_case("unix") {
                t.unix = true;
            } else if e.as_ref().trim() == "*" {
                t.any_peer = true;
            } else {
                t.nets.push(Cidr::parse(e.as_ref())?);
            }
        }
        Ok(t)
    }

    pub fn is_empty(&self) -> bool {
        self.nets.is_empty() && !self.unix && !self.any_peer
    }

    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|n| n.contains(ip))
    }

    /// Is this peer (a TCP address, or `None` for a Unix socket) trusted? `"*"` trusts
    /// every socket peer.
    pub fn trusts_peer(&self, peer: Option<IpAddr>) -> bool {
        self.any_peer || self.lists_peer(peer)
    }

    /// Is this peer trusted by name (an address or network in the list, or `"unix"`)?
    /// For an address a PROXY header gave: `"*"` does not count (it is a client's).
    pub fn lists_peer(&self, peer: Option<IpAddr>) -> bool {
        match peer {
            Some(ip) => self.trusts(ip),
            None => self.unix,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    fn parse(s: &str) -> Option<Scheme> {
        let s = s.trim().trim_matches('"');
        if s.eq_ignore_ascii_case("https") {
            Some(Scheme::Https)
        } else if s.eq_ignore_ascii_case("http") {
            Some(Scheme::Http)
        } else {
            None
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

/// What a trusted proxy told us about the original request; each part only when given
/// and well-formed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ForwardedClient {
    pub addr: Option<IpAddr>,
    pub port: Option<u16>,
    pub scheme: Option<Scheme>,
    /// The Host the client asked for, checked to be a plausible host[:port].
    pub host: Option<String>,
}

impl ForwardedClient {
    /// The host part of [`host`](Self::host) (IPv6 keeps its brackets) and its port, if any.
    pub fn host_and_port(&self) -> Option<(&str, Option<u16>)> {
        let h = self.host.as_deref()?;
        Some(split_host_port(h))
    }

    fn is_empty(&self) -> bool {
        self.addr.is_none() && self.scheme.is_none() && self.host.is_none()
    }
}

fn split_host_port(h: &str) -> (&str, Option<u16>) {
    if let Some(rest) = h.strip_prefix('[') {
        if let Some(end) = rest.find(']') {
            let port = rest[end + 1..].strip_prefix(':').and_then(|p| p.parse().ok());
            return (&h[..end + 2], port);
        }
        return (h, None);
    }
    match h.rsplit_once(':') {
        Some((name, p)) => (name, p.parse().ok()),
        None => (h, None),
    }
}

/// The forwarded client of a request from `peer` (its address, `None` for a Unix socket),
/// or `None` if the peer is not trusted or no usable header is present.
pub fn resolve(trusted: &TrustedProxies, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<ForwardedClient> {
    resolve_from(trusted, trusted.trusts_peer(peer), headers)
}

/// [`resolve`] for a peer already judged (`peer_trusted`).
pub fn resolve_from(trusted: &TrustedProxies, peer_trusted: bool, headers: &HeaderMap) -> Option<ForwardedClient> {
    if trusted.is_empty() || !peer_trusted {
        return None;
    }
    let xff = headers.contains_key("x-forwarded-for")
        || headers.contains_key("x-forwarded-proto")
        || headers.contains_key("x-forwarded-host");
    let c = if xff {
        from_x_forwarded(trusted, headers)
    } else if headers.contains_key(http::header::FORWARDED) {
        from_forwarded(trusted, headers)
    } else {
        return None;
    };
    (!c.is_empty()).then_some(c)
}

/// All values of a header as one comma-separated list, in order, entries trimmed; an
/// entry that is not visible ASCII is `None` (garbage where it stands). Judged entry by
/// entry, not value by value: a client writes the left part of the list (a proxy appends
/// to what it got), so one bad byte there must not hide the entries the proxies appended.
fn list<'a>(headers: &'a HeaderMap, name: &str) -> Vec<Option<&'a str>> {
    let mut out = Vec::new();
    for v in headers.get_all(name) {
        out.extend(v.as_bytes().split(|&b| b == b',').map(|e| {
            let e = e.trim_ascii();
            e.iter()
                .all(|b| b.is_ascii_graphic() || *b == b' ' || *b == b'\t')
                .then(|| std::str::from_utf8(e).ok())
                .flatten()
        }));
    }
    out
}

/// An address as written in X-Forwarded-For: `a.b.c.d`, `a.b.c.d:port`, an IPv6 address,
/// `[v6]` or `[v6]:port`.
fn parse_node(s: &str) -> Option<(IpAddr, Option<u16>)> {
    let s = s.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some((canonical_ip(ip), None));
    }
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some((canonical_ip(sa.ip()), Some(sa.port())));
    }
    let inner = s.strip_prefix('[')?.strip_suffix(']')?;
    inner.parse::<std::net::Ipv6Addr>().ok().map(|ip| (canonical_ip(IpAddr::V6(ip)), None))
}

/// Walk `nodes` (the last [`MAX_HOPS`] entries of a list; `cut` if earlier ones were
/// left out) from the right past trusted addresses; the index of the client's entry.
/// `None` if the walk meets something that is not an address before finding one, or
/// reaches a cut-off list's start with only trusted addresses (that proves nothing).
fn walk(trusted: &TrustedProxies, nodes: &[Option<(IpAddr, Option<u16>)>], cut: bool) -> Option<usize> {
    for i in (0..nodes.len()).rev() {
        let (ip, _) = nodes[i]?;
        if !trusted.trusts(ip) {
            return Some(i);
        }
        if i == 0 && !cut {
            return Some(0);
        }
    }
    None
}

fn from_x_forwarded(trusted: &TrustedProxies, headers: &HeaderMap) -> ForwardedClient {
    let mut c = ForwardedClient::default();
    let entries: Vec<Option<&str>> = list(headers, "x-forwarded-for").into_iter().filter(|e| *e != Some("")).collect();
    if !entries.is_empty() {
        let start = entries.len().saturating_sub(MAX_HOPS);
        let nodes: Vec<_> = entries[start..].iter().map(|e| e.and_then(parse_node)).collect();
        if let Some((ip, port)) = walk(trusted, &nodes, start > 0).and_then(|i| nodes[i]) {
            c.addr = Some(ip);
            c.port = port;
        }
    }
    if let Some(Some(p)) = list(headers, "x-forwarded-proto").last() {
        c.scheme = Scheme::parse(p);
    }
    if let Some(Some(h)) = list(headers, "x-forwarded-host").last() {
        c.host = valid_host(h);
    }
    c
}

/// One `Forwarded` element's parameters we use (others are skipped).
#[derive(Default)]
struct Element {
    node: Option<(IpAddr, Option<u16>)>,
    proto: Option<Scheme>,
    host: Option<String>,
}

fn from_forwarded(trusted: &TrustedProxies, headers: &HeaderMap) -> ForwardedClient {
    let mut elements = Vec::new();
    for v in headers.get_all(http::header::FORWARDED) {
        // Bytes that are not ASCII spoil only the elements that hold them (as in `list`).
        let s = String::from_utf8_lossy(v.as_bytes());
        for el in split_outside_quotes(&s, ',') {
            elements.push(if el.is_ascii() { parse_element(el) } else { Element::default() });
        }
    }
    let start = elements.len().saturating_sub(MAX_HOPS);
    let elements = &elements[start..];
    let nodes: Vec<_> = elements.iter().map(|e| e.node).collect();
    match walk(trusted, &nodes, start > 0) {
        Some(i) => {
            let e = &elements[i];
            ForwardedClient {
                addr: e.node.map(|n| n.0),
                port: e.node.and_then(|n| n.1),
                scheme: e.proto,
                host: e.host.clone(),
            }
        }
        _ => ForwardedClient::default(),
    }
}

/// Split on `sep`, but not inside a quoted string (RFC 7230 quoted-string, `\` escapes).
/// A quote left open (a client's `for="x`, to which a proxy appended `, for=...`) would
/// swallow everything after it, the proxies' own elements included: then the value is
/// split on every `sep`, so the bad element spoils only itself.
fn split_outside_quotes(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut quoted, mut escaped, mut from) = (false, false, 0);
    for (i, ch) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if quoted && ch == '\\' {
            escaped = true;
        } else if ch == '"' {
            quoted = !quoted;
        } else if ch == sep && !quoted {
            out.push(s[from..i].trim());
            from = i + 1;
        }
    }
    if quoted {
        return s.split(sep).map(str::trim).collect();
    }
    out.push(s[from..].trim());
    out
}

fn unquote(v: &str) -> Option<String> {
    let v = v.trim();
    let Some(inner) = v.strip_prefix('"') else { return Some(v.to_string()) };
    let inner = inner.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            out.push(chars.next()?);
        } else {
            out.push(c);
        }
    }
    Some(out)
}

fn parse_element(el: &str) -> Element {
    let mut e = Element::default();
    for pair in split_outside_quotes(el, ';') {
        let Some((k, v)) = pair.split_once('=') else { continue };
        let Some(v) = unquote(v) else { continue };
        match k.trim().to_ascii_lowercase().as_str() {
            // `unknown` and obfuscated identifiers (`_abc`) parse as no address.
            "for" => e.node = parse_node(&v),
            "proto" => e.proto = Scheme::parse(&v),
            "host" => e.host = valid_host(&v),
            _ => {}
        }
    }
    e
}

/// A host[:port] as a Host header holds it: a name or IPv4 of letters, digits, `.`, `-`,
/// `_`, or a bracketed IPv6 address, and an optional numeric port. Anything else (spaces,
/// `/`, `@`, control bytes) is refused, so no app builds a URL from a forged value.
fn valid_host(h: &str) -> Option<String> {
    let h = h.trim();
    if h.is_empty() || h.len() > 255 {
        return None;
    }
    let (name, port) = if let Some(rest) = h.strip_prefix('[') {
        let end = rest.find(']')?;
        rest[..end].parse::<std::net::Ipv6Addr>().ok()?;
        (&h[..end + 2], &rest[end + 1..])
    } else {
        match h.find(':') {
            Some(i) => (&h[..i], &h[i..]),
            None => (h, ""),
        }
    };
    if name.is_empty() {
        return None;
    }
    if !name.starts_with('[') && !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
    {
        return None;
    }
    if !port.is_empty() {
        let p = port.strip_prefix(':')?;
        if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) || p.parse::<u16>().is_err() {
            return None;
        }
    }
    Some(h.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn trusted(list: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(list).unwrap()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(http::HeaderName::from_bytes(n.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn cidrs_parse_and_match() {
        let t = trusted(&["127.0.0.1", "::1", "10.0.0.0/8", "2001:db8::/32"]);
        assert!(t.trusts("10.200.3.4".parse().unwrap()));
        assert!(!t.trusts("11.0.0.1".parse().unwrap()));
        assert!(t.trusts("::ffff:127.0.0.1".parse().unwrap()));
        assert!(t.trusts("2001:db8:ffff::1".parse().unwrap()));
        assert!(!t.trusts("2001:db9::1".parse().unwrap()));
        assert!(t.trusts("::1".parse().unwrap()));
        assert!(trusted(&["0.0.0.0/0"]).trusts("8.8.8.8".parse().unwrap()));
        assert!(!trusted(&["0.0.0.0/0"]).trusts("::2".parse().unwrap()));
        assert!(trusted(&["unix"]).trusts_peer(None));
        assert!(!trusted(&["::1"]).trusts_peer(None));
        for bad in [
            "",
            "localhost",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/",
            "10.0.0.0/-1",
            "1.2.3.4/+8",
            "1.2.3",
            "10.0.0.0/8/8",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn star_trusts_every_connection_but_no_address() {
        let t = trusted(&["*"]);
        assert!(!t.is_empty());
        assert!(t.trusts_peer(ip("192.0.2.1")) && t.trusts_peer(None));
        assert!(!t.lists_peer(ip("192.0.2.1")) && !t.lists_peer(None));
        // The rightmost entry (the proxy's) is the client: no address in a list is trusted.
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 203.0.113.7")]);
        assert_eq!(resolve(&t, ip("192.0.2.1"), &h).unwrap().addr, ip("203.0.113.7"));
        // A peer named by a PROXY header is judged by name: nothing it forwards is believed.
        assert_eq!(resolve_from(&t, t.lists_peer(ip("203.0.113.7")), &h), None);
    }

    #[test]
    fn untrusted_peers_are_ignored() {
        let t = trusted(&["127.0.0.1"]);
        let h = headers(&[("x-forwarded-for", "1.2.3.4"), ("x-forwarded-proto", "https")]);
        assert_eq!(resolve(&t, ip("192.168.1.1"), &h), None);
        assert_eq!(resolve(&TrustedProxies::default(), ip("127.0.0.1"), &h), None);
        assert_eq!(resolve(&t, None, &h), None);
        let c = resolve(&t, ip("127.0.0.1"), &h).unwrap();
        assert_eq!(c.addr, ip("1.2.3.4"));
        assert_eq!(c.scheme, Some(Scheme::Https));
    }

    #[test]
    fn the_walk_takes_the_rightmost_untrusted_address() {
        let t = trusted(&["127.0.0.1", "10.0.0.0/8"]);
        // The client wrote "6.6.6.6" itself; the proxy appended its real address.
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 203.0.113.7, 10.1.1.1")]);
        assert_eq!(resolve(&t, ip("127.0.0.1"), &h).unwrap().addr, ip("203.0.113.7"));
        // Repeated headers are one list.
        let h = headers(&[("x-forwarded-for", "6.6.6.6"), ("x-forwarded-for", "203.0.113.7")]);
        assert_eq!(resolve(&t, ip("127.0.0.1"), &h).unwrap().addr, ip("203.0.113.7"));
        // A spoofed trusted address on the left does not help: the walk stops earlier.
        let h = headers(&[("x-forwarded-for", "10.9.9.9, 198.51.100.1")]);
        assert_eq!(resolve(&t, ip("127.0.0.1"), &h).unwrap().addr, ip("198.51.100.1"));
        // All trusted: the leftmost.
        let h = headers(&[("x-forwarded-for", "10.0.0.5, 10.0.0.6")]);
        assert_eq!(resolve(&t, ip("127.0.0.1"), &h).unwrap().addr, ip("10.0.0.5"));
        // Ports and IPv6 forms.
        let h = headers(&[("x-forwarded-for", "[2001:db8::1]:4711")]);
        let c = resolve(&t, ip("127.0.0.1"), &h).unwrap();
        assert_eq!((c.addr, c.port), (ip("2001:db8::1"), Some(4711)));
        let h = headers(&[("x-forwarded-for", "2001:db8::2")]);
        assert_eq!(resolve(&t, ip("127.0.0.1"), &h).unwrap().addr, ip("2001:db8::2"));
        let h = headers(&[("x-forwarded-for", "192.0.2.1:8080")]);
        assert_eq!(resolve(&t, ip("127.0.0.1"), &h).unwrap().port, Some(8080));
    }

    #[test]
    fn garbage_ends_the_walk_without_an_address() {
        let t = trusted(&["127.0.0.1", "10.0.0.0/8"]);
        for v in ["garbage", "1.2.3.4, nope, 10.0.0.1", "unknown", "_hidden", "1.2.3.4 5.6.7.8", "999.1.1.1", "", ",,,"]
        {
            let h = headers(&[("x-forwarded-for", v)]);
            assert_eq!(resolve(&t, ip("127.0.0.1"), &h), None, "{v:?}");
        }
        // Garbage left of the client does not matter.
        let h = headers(&[("x-forwarded-for", "<script>, 1.2.3.4")]);
        assert_eq!(resolve(&t, ip("127.0.0.1"), &h).unwrap().addr, ip("1.2.3.4"));
        // Non-ASCII bytes in the entry the walk reaches: garbage, no address.
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_bytes(b"1.2.3.4\xff").unwrap());
        assert_eq!(resolve(&t, ip("127.0.0.1"), &h), None);
    }

    fn raw(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(http::HeaderName::from_bytes(n.as_bytes()).unwrap(), HeaderValue::from_bytes(v).unwrap());
        }
        h
    }

    #[test]
    fn non_ascii_left_of_the_client_does_not_matter() {
        let t = trusted(&["127.0.0.1", "10.0.0.0/8"]);
        // What the client wrote (one bad byte), then what the proxies appended.
        for v in [
            &b"\xff, 203.0.113.7"[..],
            b"6.6.6.\xe96, 203.0.113.7, 10.1.1.1",
            b"caf\xc3\xa9, 203.0.113.7",
            b"\x80\x80,203.0.113.7",
        ] {
            let h = raw(&[("x-forwarded-for", v)]);
            assert_eq!(resolve(&t, ip("127.0.0.1"), &h).and_then(|c| c.addr), ip("203.0.113.7"), "{v:?}");
        }
        // The client's header and the proxy's as separate fields.
        let h = raw(&[("x-forwarded-for", b"1.2.3.4\xff"), ("x-forwarded-for", b"203.0.113.7")]);
        assert_eq!(resolve(&t, ip("127.0.0.1"), &h).and_then(|c| c.addr), ip("203.0.113.7"));
        // Proto and host: the rightmost entry counts, junk further left does not.
        let h = raw(&[
            ("x-forwarded-for", b"203.0.113.7"),
            ("x-forwarded-proto", b"\xff, https"),
            ("x-forwarded-host", b"\xfe.example, example.org"),
        ]);
        let c = resolve(&t, ip("127.0.0.1"), &h).unwrap();
        assert_eq!((c.scheme, c.host.as_deref()), (Some(Scheme::Https), Some("example.org")));
        // A bad rightmost proto is no proto, the address still stands.
        let h = raw(&[("x-forwarded-for", b"203.0.113.7"), ("x-forwarded-proto", b"https\xff")]);
        let c = resolve(&t, ip("127.0.0.1"), &h).unwrap();
        assert_eq!((c.addr, c.scheme), (ip("203.0.113.7"), None));
        // A bad entry that the walk reaches still ends it (right of the client).
        let h = raw(&[("x-forwarded-for", b"203.0.113.7, 10.0.0.\xff")]);
        assert_eq!(resolve(&t, ip("127.0.0.1"), &h), None);
        // RFC 7239 Forwarded likewise.
        let h = raw(&[("forwarded", b"for=\"\xff\", for=203.0.113.8;proto=https")]);
        let c = resolve(&t, ip("127.0.0.1"), &h).unwrap();
        assert_eq!((c.addr, c.scheme), (ip("203.0.113.8"), Some(Scheme::Https)));
        let h = raw(&[("forwarded", b"for=\xff"), ("forwarded", b"for=203.0.113.8")]);
        assert_eq!(resolve(&t, ip("127.0.0.1"), &h).and_then(|c| c.addr), ip("203.0.113.8"));
        let h = raw(&[("forwarded", b"for=203.0.113.8, for=10.0.0.\xff")]);
        assert_eq!(resolve(&t, ip("127.0.0.1"), &h), None);
    }

    #[test]
    fn an_open_quote_left_of_the_client_does_not_swallow_the_proxys_element() {
        let t = trusted(&["127.0.0.1", "10.0.0.0/8"]);
        for v in [
            "for=\"x, for=203.0.113.8",
            "for=\"[2001:db8::1, for=203.0.113.8;proto=https",
            "for=\"\\\", for=203.0.113.8",
        ] {
            let h = headers(&[("forwarded", v)]);
            assert_eq!(resolve(&t, ip("127.0.0.1"), &h).and_then(|c| c.addr), ip("203.0.113.8"), "{v:?}");
        }
        // Balanced quotes still protect a comma inside them.
        let h = headers(&[("forwarded", "for=\"[2001:db8::1]:80\";host=\"a,b\", for=203.0.113.8")]);
        assert_eq!(resolve(&t, ip("127.0.0.1"), &h).and_then(|c| c.addr), ip("203.0.113.8"));
    }

    #[test]
    fn overlong_lists_are_bounded() {
        let t = trusted(&["10.0.0.0/8"]);
        // 10,000 trusted hops: the walk stops after MAX_HOPS without believing any of them.
        let long = vec!["10.0.0.1"; 10_000].join(", ");
        let h = headers(&[("x-forwarded-for", &format!("1.2.3.4, {long}"))]);
        assert_eq!(resolve(&t, ip("10.0.0.2"), &h), None);
        // A long list of client-written junk before the real entry costs nothing extra.
        let junk = vec!["6.6.6.6"; 10_000].join(",");
        let h = headers(&[("x-forwarded-for", &format!("{junk}, 203.0.113.9"))]);
        assert_eq!(resolve(&t, ip("10.0.0.2"), &h).unwrap().addr, ip("203.0.113.9"));
        let h = headers(&[("forwarded", &vec!["for=10.0.0.1"; 5_000].join(","))]);
        assert_eq!(resolve(&t, ip("10.0.0.2"), &h), None);
    }

    #[test]
    fn proto_and_host() {
        let t = trusted(&["127.0.0.1"]);
        let h = headers(&[("x-forwarded-proto", "HTTPS"), ("x-forwarded-host", "example.org:8443")]);
        let c = resolve(&t, ip("127.0.0.1"), &h).unwrap();
        assert_eq!(c.addr, None);
        assert_eq!(c.scheme, Some(Scheme::Https));
        assert_eq!(c.host_and_port(), Some(("example.org", Some(8443))));
        let h = headers(&[("x-forwarded-proto", "gopher"), ("x-forwarded-host", "evil.com/path")]);
        assert_eq!(resolve(&t, ip("127.0.0.1"), &h), None);
        for bad in ["a b", "x@y", "h:99999", "h:", ":80", "[::1", "[zz]:80", "h:8a", "a\\b"] {
            assert_eq!(valid_host(bad), None, "{bad}");
        }
        assert_eq!(valid_host("[2001:db8::1]:80").as_deref(), Some("[2001:db8::1]:80"));
        assert_eq!(split_host_port("[2001:db8::1]:80"), ("[2001:db8::1]", Some(80)));
        // Rightmost value of a list.
        let h = headers(&[("x-forwarded-proto", "http, https")]);
        assert_eq!(resolve(&t, ip("127.0.0.1"), &h).unwrap().scheme, Some(Scheme::Https));
    }

    #[test]
    fn rfc7239_forwarded() {
        let t = trusted(&["127.0.0.1", "10.0.0.0/8"]);
        // RFC 7239 section 4 examples.
        let h = headers(&[("forwarded", r#"for="_gazonk""#)]);
        assert_eq!(resolve(&t, ip("127.0.0.1"), &h), None);
        let h = headers(&[("forwarded", r#"For="[2001:db8:cafe::17]:4711""#)]);
        let c = resolve(&t, ip("127.0.0.1"), &h).unwrap();
        assert_eq!((c.addr, c.port), (ip("2001:db8:cafe::17"), Some(4711)));
        let h = headers(&[("forwarded", "for=192.0.2.60;proto=http;by=203.0.113.43")]);
        let c = resolve(&t, ip("127.0.0.1"), &h).unwrap();
        assert_eq!((c.addr, c.scheme), (ip("192.0.2.60"), Some(Scheme::Http)));
        let h = headers(&[("forwarded", "for=192.0.2.43, for=198.51.100.17")]);
        assert_eq!(resolve(&t, ip("127.0.0.1"), &h).unwrap().addr, ip("198.51.100.17"));
        // Proto and host come from the client's hop, not from a spoofed element.
        let h = headers(&[(
            "forwarded",
            r#"for=6.6.6.6;proto=http;host=evil.com, for=198.51.100.1;proto=https;host="app.example.org", for=10.0.0.3;proto=http"#,
        )]);
        let c = resolve(&t, ip("127.0.0.1"), &h).unwrap();
        assert_eq!(c.addr, ip("198.51.100.1"));
        assert_eq!(c.scheme, Some(Scheme::Https));
        assert_eq!(c.host.as_deref(), Some("app.example.org"));
        // `unknown` ends the walk; quoted commas do not split; broken quotes are garbage.
        let h = headers(&[("forwarded", "for=1.2.3.4, for=unknown")]);
        assert_eq!(resolve(&t, ip("127.0.0.1"), &h), None);
        let h = headers(&[("forwarded", r#"for="1.2.3.4";host="a,b""#)]);
        let c = resolve(&t, ip("127.0.0.1"), &h).unwrap();
        assert_eq!((c.addr, c.host), (ip("1.2.3.4"), None));
        let h = headers(&[("forwarded", r#"for="1.2.3.4"#)]);
        assert_eq!(resolve(&t, ip("127.0.0.1"), &h), None);
    }

    #[test]
    fn x_forwarded_wins_over_forwarded() {
        let t = trusted(&["127.0.0.1"]);
        let h = headers(&[("forwarded", "for=6.6.6.6;proto=https"), ("x-forwarded-for", "198.51.100.2")]);
        let c = resolve(&t, ip("127.0.0.1"), &h).unwrap();
        assert_eq!((c.addr, c.scheme), (ip("198.51.100.2"), None));
    }
}
