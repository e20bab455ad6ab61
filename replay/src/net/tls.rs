//! TLS for either side: the client configuration built once from the operator's options
//! (trusted CAs from a PEM file or the system's roots, an optional client certificate for
//! mutual TLS, TLS 1.2 and 1.3, certificate verification on unless explicitly turned off),
//! and the handshake over an open TCP connection.
//!
//! The handshake is confirmed with one `PING` round trip before the connection is handed on:
//! with TLS 1.3 a server that refuses our certificate (or its absence) says so only after the
//! client considers the handshake done, and the refusal must be reported as a TLS failure of
//! this connection, not as a mysterious error of whatever command came first.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// What the operator asked for, before any file is read.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// PEM file of the CAs to trust (a bundle may hold several); the system's roots if `None`.
    pub ca: Option<PathBuf>,
    /// PEM file of the client certificate (chain), for servers that require one.
    pub cert: Option<PathBuf>,
    /// PEM file of the client certificate's private key.
    pub key: Option<PathBuf>,
    /// The name the server's certificate must be valid for; the host connected to if `None`.
    pub server_name: Option<String>,
    /// Accept any server certificate (encryption without authentication).
    pub insecure: bool,
}

/// A ready client configuration; cheap to clone (shared).
#[derive(Clone)]
pub struct Tls {
    config: Arc<ClientConfig>,
    /// Checked against the server's certificate instead of the host, when set.
    server_name: Option<ServerName<'static>>,
    insecure: bool,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("server_name", &self.server_name)
            .field("insecure", &self.insecure)
            .finish()
    }
}

impl PartialEq for Tls {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.config, &other.config)
            && self.server_name == other.server_name
            && self.insecure == other.insecure
    }
}

impl Eq for Tls {}

/// Why the TLS options cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("{}: {what}", path.display())]
    Pem { path: PathBuf, what: String },
    #[error("the client certificate and key cannot be used together: {0}")]
    ClientAuth(rustls::Error),
    #[error("a client certificate needs its private key, and a key its certificate")]
    HalfClientAuth,
    #[error("invalid TLS server name {0:?}")]
    ServerName(String),
    #[error("no trusted root certificates found on this system; give a CA file")]
    NoRoots,
    #[error("TLS setup: {0}")]
    Rustls(rustls::Error),
}

impl Tls {
    /// Reads the files and builds the configuration.
    pub fn new(opts: &TlsOptions) -> Result<Tls, TlsConfigError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(TlsConfigError::Rustls)?;
        let builder = if opts.insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
        } else {
            builder.with_root_certificates(roots(opts.ca.as_deref())?)
        };
        let config = match (&opts.cert, &opts.key) {
            (Some(cert), Some(key)) => builder
                .with_client_auth_cert(certificates(cert)?, private_key(key)?)
                .map_err(TlsConfigError::ClientAuth)?,
            (None, None) => builder.with_no_client_auth(),
            _ => return Err(TlsConfigError::HalfClientAuth),
        };
        let server_name = opts
            .server_name
            .as_deref()
            .map(|n| {
                ServerName::try_from(n.to_string())
                    .map_err(|_| TlsConfigError::ServerName(n.to_string()))
            })
            .transpose()?;
        Ok(Tls {
            config: Arc::new(config),
            server_name,
            insecure: opts.insecure,
        })
    }

    /// Whether server certificates go unchecked.
    pub fn is_insecure(&self) -> bool {
        self.insecure
    }

    /// Runs the handshake over `tcp` with `host` (the server name unless one was given), and
    /// confirms it with one `PING` round trip (see the module documentation).
    pub async fn handshake(&self, tcp: TcpStream, host: &str) -> io::Result<TlsStream<TcpStream>> {
        let name = match &self.server_name {
            Some(n) => n.clone(),
            None => ServerName::try_from(host.to_string()).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{host:?} is not a valid TLS server name"),
                )
            })?,
        };
        let mut tls = TlsConnector::from(self.config.clone())
            .connect(name, tcp)
            .await?;
        confirm(&mut tls).await?;
        Ok(tls)
    }
}

/// One `PING` and its one-line reply (`+PONG`, or an error such as `-NOAUTH`: either way the
/// server accepted the TLS session). Nothing else is in flight, so nothing is over-read.
async fn confirm(tls: &mut TlsStream<TcpStream>) -> io::Result<()> {
    tls.write_all(b"*1\r\n$4\r\nPING\r\n").await?;
    tls.flush().await?;
    let mut line = Vec::with_capacity(64);
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        if tls.read(&mut byte).await? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection right after the handshake",
            ));
        }
        if line.len() >= 4096 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "no end of line in the reply to PING",
            ));
        }
        line.push(byte[0]);
    }
    Ok(())
}

/// Whether an I/O error is a TLS protocol failure (a certificate refused, an alert): such a
/// failure repeats on every attempt, unlike a reset connection.
pub fn is_tls_failure(e: &io::Error) -> bool {
    e.get_ref()
        .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
}

fn roots(ca: Option<&Path>) -> Result<RootCertStore, TlsConfigError> {
    let mut store = RootCertStore::empty();
    match ca {
        Some(path) => {
            for cert in certificates(path)? {
                store.add(cert).map_err(|e| TlsConfigError::Pem {
                    path: path.to_path_buf(),
                    what: format!("a certificate cannot be used as a trust anchor: {e}"),
                })?;
            }
        }
        None => {
            // Unreadable entries of the system store are skipped, as other clients do.
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(TlsConfigError::NoRoots);
            }
        }
    }
    Ok(store)
}

fn read(path: &Path) -> Result<Vec<u8>, TlsConfigError> {
    std::fs::read(path).map_err(|source| TlsConfigError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Every certificate of a PEM file; an error if it has none or a damaged one.
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let pem = read(path)?;
    let bad = |what: String| TlsConfigError::Pem {
        path: path.to_path_buf(),
        what,
    };
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("not a valid PEM file: {e}")))?;
    if certs.is_empty() {
        return Err(bad(
            "no PEM certificate (BEGIN CERTIFICATE) in the file".into()
        ));
    }
    Ok(certs)
}

/// The first private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsConfigError> {
    let pem = read(path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| TlsConfigError::Pem {
        path: path.to_path_buf(),
        what: match e {
            rustls::pki_types::pem::Error::NoItemsFound => {
                "no PEM private key (BEGIN PRIVATE KEY) in the file".into()
            }
            e => format!("not a valid PEM private key: {e}"),
        },
    })
}

/// The verifier of `--…-tls-insecure`: any certificate, any name, any date. The handshake's
/// signatures are still checked, so the session is encrypted with the key of whoever answered.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
