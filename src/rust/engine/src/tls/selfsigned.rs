//! A throwaway local CA and a server certificate for some host names, signed by it:
//! development only. Clients are told to trust the CA (curl `--cacert`, Python's
//! `ssl.create_default_context(cafile=)`), which is more than a bare self-signed leaf
//! allows (browsers and some clients refuse a leaf as its own CA).
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

#[derive(Debug, thiserror::Error)]
#[error("cannot make a self-signed certificate: {0}")]
pub struct SelfSignedError(String);

fn err(e: rcgen::Error) -> SelfSignedError {
    SelfSignedError(e.to_string())
}

/// PEM texts of a development PKI.
pub struct DevPki {
    /// The CA's certificate: what clients trust.
    pub ca_cert_pem: String,
    /// The server's certificate followed by the CA's (a complete chain).
    pub cert_pem: String,
    /// The server's private key (PKCS#8).
    pub key_pem: String,
    ca: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and key issued by a [`DevPki`]'s CA (tests' client certificates).
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

const ORG: &str = "rookd development";

fn name(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, ORG);
    dn.push(DnType::CommonName, cn);
    dn
}

/// Valid from an hour ago (clock skew) for `days` days.
fn validity(p: &mut CertificateParams, days: u32) {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    p.not_before = epoch + now.saturating_sub(Duration::from_secs(3600));
    p.not_after = epoch + now + Duration::from_secs(u64::from(days) * 86_400);
}

fn ca_params(days: u32) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = name("rookd development CA");
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    validity(&mut p, days);
    p
}

/// A new CA and a server certificate for `hosts` (DNS names or IP addresses), valid
/// for `days` days. Keys are ECDSA P-256.
pub fn generate(hosts: &[String], days: u32) -> Result<DevPki, SelfSignedError> {
    let ca_key = KeyPair::generate().map_err(err)?;
    let ca = CertifiedIssuer::self_signed(ca_params(days), ca_key).map_err(err)?;
    let mut leaf = CertificateParams::new(hosts.to_vec()).map_err(err)?;
    leaf.distinguished_name = name(hosts.first().map(String::as_str).unwrap_or("localhost"));
    leaf.is_ca = IsCa::ExplicitNoCa;
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.use_authority_key_identifier_extension = true;
    validity(&mut leaf, days);
    let leaf_key = KeyPair::generate().map_err(err)?;
    let leaf_cert = leaf.signed_by(&leaf_key, &ca).map_err(err)?;
    Ok(DevPki {
        ca_cert_pem: ca.pem(),
        cert_pem: format!("{}{}", leaf_cert.pem(), ca.pem()),
        key_pem: leaf_key.serialize_pem(),
        ca,
    })
}

/// A client certificate with common name `cn`, issued by `pki`'s CA.
pub fn client_cert(pki: &DevPki, cn: &str) -> Result<Issued, SelfSignedError> {
    let mut p = CertificateParams::default();
    p.distinguished_name = name(cn);
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    p.use_authority_key_identifier_extension = true;
    validity(&mut p, 30);
    let key = KeyPair::generate().map_err(err)?;
    let cert = p.signed_by(&key, &pki.ca).map_err(err)?;
    Ok(Issued { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
}
