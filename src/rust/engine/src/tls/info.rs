//! The facts about a TLS connection that reach the app, read once after the handshake and
//! shared by every request of the connection. Named and formatted as Apache's mod_ssl
//! does (`SSL_PROTOCOL`, `SSL_CLIENT_S_DN`, ...), so apps written for it read the same.
use rustls::pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, X509Certificate, X509Name};

/// One TLS connection's facts (the host turns them into `HTTPS`, `SSL_*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsInfo {
    /// `TLSv1.3` or `TLSv1.2` (SSL_PROTOCOL).
    pub protocol: &'static str,
    /// The cipher suite's IANA name, e.g. `TLS_AES_256_GCM_SHA384` (SSL_CIPHER).
    pub cipher: String,
    /// The host name the client asked for (SNI), if it sent one (SSL_TLS_SNI).
    pub sni: Option<String>,
    /// The client's certificate, verified against the client CA, if it sent one.
    pub client: Option<ClientCertInfo>,
}

/// A verified client certificate, as mod_ssl shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientCertInfo {
    /// Subject DN, RFC 4514 (most specific RDN first: `CN=alice,O=Example`) (SSL_CLIENT_S_DN).
    pub subject_dn: String,
    /// Issuer DN, same format (SSL_CLIENT_I_DN).
    pub issuer_dn: String,
    /// Serial number, upper-case hex (SSL_CLIENT_M_SERIAL).
    pub serial: String,
    /// End of validity, `Mon DD HH:MM:SS YYYY GMT` (SSL_CLIENT_V_END).
    pub not_after: String,
}

impl TlsInfo {
    pub fn from_connection(conn: &rustls::ServerConnection) -> TlsInfo {
        let protocol = match conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
            _ => "TLSv1.3",
        };
        let cipher = conn.negotiated_cipher_suite().map(|s| cipher_name(s.suite())).unwrap_or_default();
        let client = conn.peer_certificates().and_then(|c| c.first()).and_then(ClientCertInfo::from_der);
        TlsInfo { protocol, cipher, sni: conn.server_name().map(str::to_string), client }
    }
}

/// rustls names TLS 1.3 suites `TLS13_*`; their IANA names are `TLS_*`.
fn cipher_name(s: rustls::CipherSuite) -> String {
    match s.as_str() {
        Some(n) => n.strip_prefix("TLS13_").map(|r| format!("TLS_{r}")).unwrap_or_else(|| n.to_string()),
        None => format!("{s:?}"),
    }
}

impl ClientCertInfo {
    pub fn from_der(der: &CertificateDer<'_>) -> Option<ClientCertInfo> {
        let (_, c) = X509Certificate::from_der(der.as_ref()).ok()?;
        Some(ClientCertInfo {
            subject_dn: rfc4514(c.subject()),
            issuer_dn: rfc4514(c.issuer()),
            serial: serial_hex(c.raw_serial()),
            not_after: apache_time(&c.validity().not_after.to_string()),
        })
    }
}

/// An X.509 name as RFC 4514 writes it: RDNs in reverse order, `,`-separated, multi-valued
/// ones joined with `+`; attribute names abbreviated (CN, O, ...) or as dotted OIDs; a
/// value that is not a string is `#` and its DER in hex.
pub fn rfc4514(name: &X509Name<'_>) -> String {
    let registry = x509_parser::objects::oid_registry();
    let mut rdns: Vec<String> = name
        .iter()
        .map(|rdn| {
            let parts: Vec<String> = rdn
                .iter()
                .map(|a| {
                    let key = x509_parser::objects::oid2abbrev(a.attr_type(), registry)
                        .map(str::to_string)
                        .unwrap_or_else(|_| a.attr_type().to_id_string());
                    let value = match a.as_str() {
                        Ok(s) => escape_value(s),
                        Err(_) => format!("#{}", hex(a.attr_value().data)),
                    };
                    format!("{key}={value}")
                })
                .collect();
            parts.join("+")
        })
        .collect();
    rdns.reverse();
    rdns.join(",")
}

/// RFC 4514 section 2.4 escaping.
fn escape_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let n = s.chars().count();
    for (i, ch) in s.chars().enumerate() {
        let special = matches!(ch, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (ch == '#' || ch == ' '))
            || (i + 1 == n && ch == ' ');
        if ch == '\0' {
            out.push_str("\\00");
            continue;
        }
        if special {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

/// As OpenSSL's BN_bn2hex: upper-case, no leading zero bytes, "0" for zero.
fn serial_hex(raw: &[u8]) -> String {
    let start = raw.iter().position(|&b| b != 0).unwrap_or(raw.len());
    if start == raw.len() {
        return "0".into();
    }
    hex(&raw[start..])
}

/// x509-parser prints `Dec  2 11:45:36 2026 +00:00`; OpenSSL (and so Apache) `... GMT`.
fn apache_time(s: &str) -> String {
    match s.strip_suffix(" +00:00") {
        Some(t) => format!("{t} GMT"),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_as_rfc4514_says() {
        assert_eq!(escape_value("a,b+c"), "a\\,b\\+c");
        assert_eq!(escape_value("#x "), "\\#x\\ ");
        assert_eq!(escape_value(" lead"), "\\ lead");
        assert_eq!(escape_value("plain"), "plain");
    }

    #[test]
    fn serials_are_upper_hex_without_leading_zeros() {
        assert_eq!(serial_hex(&[0, 0x0a, 0xbc]), "0ABC");
        assert_eq!(serial_hex(&[0, 0]), "0");
        assert_eq!(serial_hex(&[0x7f]), "7F");
    }

    #[test]
    fn times_end_in_gmt() {
        assert_eq!(apache_time("Dec  2 11:45:36 2026 +00:00"), "Dec  2 11:45:36 2026 GMT");
    }

    #[test]
    fn tls13_suites_get_their_iana_names() {
        assert_eq!(cipher_name(rustls::CipherSuite::TLS13_AES_128_GCM_SHA256), "TLS_AES_128_GCM_SHA256");
        assert_eq!(
            cipher_name(rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256),
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"
        );
    }

    #[test]
    fn a_client_certificate_reads_as_mod_ssl_shows_it() {
        let pki = crate::tls::selfsigned::generate(&["localhost".into()], 30).expect("pki");
        let client = crate::tls::selfsigned::client_cert(&pki, "alice, the tester").expect("client");
        let der = CertificateDer::from_pem_slice(client.cert_pem.as_bytes()).expect("der");
        let info = ClientCertInfo::from_der(&der).expect("parsed");
        assert_eq!(info.subject_dn, "CN=alice\\, the tester,O=rookd development");
        assert_eq!(info.issuer_dn, "CN=rookd development CA,O=rookd development");
        assert!(info.not_after.ends_with(" GMT"), "{}", info.not_after);
        assert!(!info.serial.is_empty());
    }
    use rustls::pki_types::pem::PemObject;
}
