//! Certificates for the TLS tests, made when a test starts (no fixture can expire) and written
//! as PEM files to a temporary directory that lives as long as the value:
//!
//! - a test CA, and the server certificate it signs for `localhost` and `127.0.0.1` (usable as
//!   a client certificate too, as cluster nodes and replicas present it to each other);
//! - a client certificate signed by the same CA, for mutual TLS;
//! - for the failure tests: a server certificate that expired in 2021, one valid only for
//!   another name, and a second CA that signed nothing the servers present.

use std::fs;
use std::path::{Path, PathBuf};

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, CertifiedIssuer, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use tempfile::TempDir;

/// A certificate and its key, as PEM files.
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The certificates of one test, in their directory (removed on drop).
pub struct TestCerts {
    dir: TempDir,
    /// The CA that signs every certificate below.
    pub ca: PathBuf,
    /// A CA that signed none of them: trusting only it must fail with an unknown issuer.
    pub other_ca: PathBuf,
    /// For `localhost` and `127.0.0.1`, server and client use.
    pub server: CertFiles,
    /// A client certificate for mutual TLS.
    pub client: CertFiles,
    /// For `localhost` and `127.0.0.1`, but valid only during 2020.
    pub expired: CertFiles,
    /// Valid, but only for `wrong.example`.
    pub wrong_name: CertFiles,
}

impl TestCerts {
    /// Generates everything; panics if it cannot (a broken test setup).
    pub fn generate() -> TestCerts {
        let dir = tempfile::Builder::new()
            .prefix("replicant-certs-")
            .tempdir()
            .expect("cannot create a temp dir for certificates");
        let (ca_pem, ca) = new_ca("replicant test CA");
        let (other_ca_pem, _) = new_ca("replicant unrelated CA");
        let write = |name: &str, text: &str| -> PathBuf {
            let path = dir.path().join(name);
            fs::write(&path, text)
                .unwrap_or_else(|err| panic!("cannot write {}: {err}", path.display()));
            path
        };
        let ca_path = write("ca.crt", &ca_pem);
        let other_ca = write("other-ca.crt", &other_ca_pem);
        let make = |name: &str, sans: &[&str], client_only: bool, expired: bool| {
            let (cert, key) = issue(&ca, name, sans, client_only, expired);
            CertFiles {
                cert: write(&format!("{name}.crt"), &cert),
                key: write(&format!("{name}.key"), &key),
            }
        };
        let localhost = ["localhost", "127.0.0.1"];
        let server = make("server", &localhost, false, false);
        let client = make("client", &["replicant-client"], true, false);
        let expired = make("expired", &localhost, false, true);
        let wrong_name = make("wrong-name", &["wrong.example"], false, false);
        TestCerts {
            dir,
            ca: ca_path,
            other_ca,
            server,
            client,
            expired,
            wrong_name,
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `text` to a file of this directory (for unreadable or garbage PEM files).
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        fs::write(&path, text)
            .unwrap_or_else(|err| panic!("cannot write {}: {err}", path.display()));
        path
    }
}

fn new_ca(name: &str) -> (String, CertifiedIssuer<'static, KeyPair>) {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().expect("CA key");
    let ca = CertifiedIssuer::self_signed(params, key).expect("self-signed CA");
    (ca.pem(), ca)
}

/// A certificate signed by `ca` and its key, as PEM.
fn issue(
    ca: &Issuer<'_, KeyPair>,
    name: &str,
    sans: &[&str],
    client_only: bool,
    expired: bool,
) -> (String, String) {
    let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
    let mut params = CertificateParams::new(sans).expect("certificate parameters");
    params.distinguished_name.push(DnType::CommonName, name);
    params.extended_key_usages = if client_only {
        vec![ExtendedKeyUsagePurpose::ClientAuth]
    } else {
        vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ]
    };
    if expired {
        params.not_before = date_time_ymd(2020, 1, 1);
        params.not_after = date_time_ymd(2021, 1, 1);
    }
    let key = KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, ca).expect("signed certificate");
    (cert.pem(), key.serialize_pem())
}
