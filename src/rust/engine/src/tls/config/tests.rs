//! Loading real PEM files: each key kind, chain order, and each failure's message.
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use super::*;
use crate::tls::selfsigned;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/tls/testdata").join(name)
}

fn settings(cert: PathBuf, key: PathBuf) -> TlsSettings {
    TlsSettings { cert_file: cert, key_file: key, client_ca_file: None, client_auth: ClientAuth::None }
}

struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("rookd-tls-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("dir");
        Dir(d)
    }
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).expect("write");
        p
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn load_err(s: &TlsSettings) -> String {
    match load(s, false) {
        Ok(_) => panic!("loaded"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn pkcs1_sec1_and_pkcs8_keys_load() {
    for (cert, key) in [("rsa.pem", "rsa-pkcs1.key"), ("ec.pem", "ec-sec1.key"), ("ec.pem", "ec-pkcs8.key")] {
        let l = load(&settings(data(cert), data(key)), false).unwrap_or_else(|e| panic!("{key}: {e}"));
        assert!(l.warnings.is_empty(), "{key}: {:?}", l.warnings);
        assert_eq!(l.config.alpn_protocols, vec![b"http/1.1".to_vec()]);
    }
    let l = load(&settings(data("ec.pem"), data("ec-sec1.key")), true).expect("h2");
    assert_eq!(l.config.alpn_protocols, vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
}

#[test]
fn a_chain_is_read_leaf_first_and_its_key_must_be_the_leafs() {
    let d = Dir::new("chain");
    let pki = selfsigned::generate(&["localhost".into()], 30).expect("pki");
    let cert = d.write("cert.pem", &pki.cert_pem);
    let key = d.write("key.pem", &pki.key_pem);
    let chain = certificates("certificate", &cert).expect("chain");
    assert_eq!(chain.len(), 2);
    let ca = certificates("ca", &d.write("ca.pem", &pki.ca_cert_pem)).expect("ca");
    assert_eq!(chain[1], ca[0]);
    load(&settings(cert.clone(), key), false).expect("loads");
    // The CA first: the key (the leaf's) matches the wrong certificate.
    let reversed =
        d.write("reversed.pem", &format!("{}{}", pki.ca_cert_pem, pki.cert_pem.replace(&pki.ca_cert_pem, "")));
    let e = load_err(&settings(reversed, d.write("key2.pem", &pki.key_pem)));
    assert!(e.contains("does not match the certificate"), "{e}");
}

#[test]
fn every_failure_names_its_file_and_what_is_wrong() {
    let d = Dir::new("errors");
    let missing = d.0.join("missing.pem");
    let e = load_err(&settings(missing.clone(), data("ec-sec1.key")));
    assert!(e.contains("cannot read the certificate file") && e.contains("missing.pem"), "{e}");
    let not_pem = d.write("notpem.pem", "hello\n");
    let e = load_err(&settings(not_pem, data("ec-sec1.key")));
    assert!(e.contains("is not PEM or holds no certificate") && e.contains("notpem.pem"), "{e}");
    let e = load_err(&settings(data("ec.pem"), data("ec.pem")));
    assert!(e.contains("holds no private key") && e.contains("ec.pem"), "{e}");
    let e = load_err(&settings(data("ec.pem"), data("rsa-pkcs1.key")));
    assert!(e.contains("does not match") && e.contains("rsa-pkcs1.key"), "{e}");
    let mut s = settings(data("ec.pem"), data("ec-sec1.key"));
    s.client_auth = ClientAuth::Required;
    assert!(load_err(&s).contains("no client_ca"));
    s.client_ca_file = Some(d.write("ca.pem", "nothing"));
    let e = load_err(&s);
    assert!(e.contains("client_ca file") && e.contains("ca.pem"), "{e}");
    s.client_ca_file = Some(data("rsa.pem"));
    load(&s, false).expect("a CA file that is a certificate");
}

#[test]
fn an_expired_or_future_certificate_is_a_warning() {
    let certs = certificates("certificate", &data("ec.pem")).expect("certs");
    let now = SystemTime::now();
    assert_eq!(validity_warning(&certs[0], &data("ec.pem"), now), None);
    let later = now + Duration::from_secs(200 * 365 * 86_400);
    let w = validity_warning(&certs[0], &data("ec.pem"), later).expect("expired");
    assert!(w.contains("expired on") && w.contains("ec.pem"), "{w}");
    let before = now - Duration::from_secs(10 * 86_400);
    let w = validity_warning(&certs[0], &data("ec.pem"), before).expect("future");
    assert!(w.contains("not valid before"), "{w}");
}
