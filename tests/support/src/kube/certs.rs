//! The key material a test control plane needs: a CA, the API server's serving certificate for
//! 127.0.0.1, and the service-account signing key. Made fresh for each control plane.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};

use crate::error::SupportError;

/// Files written for kube-apiserver, and the CA clients trust.
pub struct Certs {
    /// PEM of the CA that signed the serving certificate (what clients trust).
    pub ca_pem: String,
    /// Serving certificate (`--tls-cert-file`).
    pub serving_cert: PathBuf,
    /// Its key (`--tls-private-key-file`).
    pub serving_key: PathBuf,
    /// ECDSA key that signs service-account tokens (`--service-account-signing-key-file`).
    pub service_account_key: PathBuf,
    /// Its public half, which verifies them (`--service-account-key-file`).
    pub service_account_public_key: PathBuf,
}

fn failed(what: &str) -> impl Fn(rcgen::Error) -> SupportError + '_ {
    move |e| SupportError::ControlPlane(format!("{what}: {e}"))
}

/// Writes the key material into `dir`.
pub fn write(dir: &Path) -> Result<Certs, SupportError> {
    let ca_key = KeyPair::generate().map_err(failed("generate the CA key"))?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(failed("CA params"))?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "lmi-operator test CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key).map_err(failed("sign the CA"))?;
    let issuer = Issuer::new(ca, ca_key);

    let key = KeyPair::generate().map_err(failed("generate the serving key"))?;
    let mut serving = CertificateParams::new(Vec::<String>::new()).map_err(failed("params"))?;
    serving
        .distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    serving.subject_alt_names = vec![
        SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        SanType::DnsName("localhost".try_into().map_err(failed("SAN"))?),
    ];
    let cert = serving
        .signed_by(&key, &issuer)
        .map_err(failed("sign the serving certificate"))?;

    let service_account = KeyPair::generate().map_err(failed("generate the token key"))?;

    let write = |name: &str, text: String| -> Result<PathBuf, SupportError> {
        let path = dir.join(name);
        std::fs::write(&path, text)
            .map_err(|e| SupportError::ControlPlane(format!("write {}: {e}", path.display())))?;
        Ok(path)
    };
    Ok(Certs {
        ca_pem: ca_cert.pem(),
        serving_cert: write("apiserver.crt", cert.pem())?,
        serving_key: write("apiserver.key", key.serialize_pem())?,
        service_account_key: write("service-account.key", service_account.serialize_pem())?,
        service_account_public_key: write("service-account.pub", service_account.public_key_pem())?,
    })
}
