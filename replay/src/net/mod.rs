//! Where a server is and how to log in: the endpoint of either side, the connection (TCP with
//! the socket options that matter — keepalive, no delay, a connect timeout — and TLS over it
//! where asked, see [`tls`]), and AUTH with a password or an ACL user.

pub mod stream;
pub mod tls;

use std::fmt;
use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};
use tokio::net::TcpStream;

pub use stream::{ReadHalf, Stream, WriteHalf};
pub use tls::{Tls, TlsConfigError, TlsOptions};

use crate::resp::{frame_error, Conn, ConnError};

/// A server to connect to. `Debug` and `Display` never show the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub user: Option<String>,
    pub password: Option<String>,
    /// TLS over the TCP connection, when set.
    pub tls: Option<Tls>,
}

impl Endpoint {
    /// The same credentials and TLS settings for another server (e.g. a node of the same
    /// cluster).
    pub fn with_addr(&self, host: &str, port: u16) -> Endpoint {
        Endpoint {
            host: host.to_string(),
            port,
            ..self.clone()
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("addr", &self.to_string())
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("tls", &self.tls)
            .finish()
    }
}

/// Why a connection could not be made ready.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("connecting to {addr} timed out after {secs} s")]
    Timeout { addr: String, secs: u64 },
    #[error("TLS handshake with {addr} failed: {source}")]
    Tls {
        addr: String,
        source: std::io::Error,
    },
    #[error("authentication failed at {addr}: {reply}")]
    Auth { addr: String, reply: String },
    #[error("{addr}: {source}")]
    Conn { addr: String, source: ConnError },
}

impl ConnectError {
    /// Whether trying again later may succeed (the server is unreachable or the connection
    /// broke), as opposed to a refusal that would repeat (credentials, certificates).
    pub fn is_transient(&self) -> bool {
        match self {
            ConnectError::Connect { .. } | ConnectError::Timeout { .. } => true,
            ConnectError::Tls { source, .. } => !tls::is_tls_failure(source),
            ConnectError::Auth { .. } | ConnectError::Conn { .. } => false,
        }
    }
}

/// Opens a TCP connection with keepalive and `TCP_NODELAY` set, and runs the TLS handshake
/// over it when the endpoint asks for TLS; all within `timeout`.
pub async fn connect(ep: &Endpoint, timeout: Duration) -> Result<Stream, ConnectError> {
    tokio::time::timeout(timeout, open(ep))
        .await
        .map_err(|_| ConnectError::Timeout {
            addr: ep.to_string(),
            secs: timeout.as_secs(),
        })?
}

async fn open(ep: &Endpoint) -> Result<Stream, ConnectError> {
    let stream = TcpStream::connect((ep.host.as_str(), ep.port))
        .await
        .map_err(|source| ConnectError::Connect {
            addr: ep.to_string(),
            source,
        })?;
    let sock = SockRef::from(&stream);
    let ka = TcpKeepalive::new()
        .with_time(Duration::from_secs(30))
        .with_interval(Duration::from_secs(10));
    // Best effort: a platform without these options still works, only detects dead peers later.
    let _ = sock.set_tcp_keepalive(&ka);
    let _ = sock.set_tcp_nodelay(true);
    match &ep.tls {
        None => Ok(Stream::Tcp(stream)),
        Some(tls) => match tls.handshake(stream, &ep.host).await {
            Ok(s) => Ok(Stream::Tls(Box::new(s))),
            Err(source) => Err(ConnectError::Tls {
                addr: ep.to_string(),
                source,
            }),
        },
    }
}

/// Connects and authenticates (when the endpoint has a password), the AUTH within `timeout`
/// too (a server that accepts connections but answers nothing, e.g. a stopped process whose
/// socket still listens, is a timeout, not a wait forever).
pub async fn connect_and_auth(
    ep: &Endpoint,
    timeout: Duration,
) -> Result<Conn<Stream>, ConnectError> {
    let mut conn = Conn::new(connect(ep, timeout).await?);
    tokio::time::timeout(timeout, auth(&mut conn, ep))
        .await
        .map_err(|_| ConnectError::Timeout {
            addr: ep.to_string(),
            secs: timeout.as_secs(),
        })??;
    Ok(conn)
}

/// Sends AUTH with the endpoint's credentials (ACL user and password, or the password
/// alone), if any.
pub async fn auth(conn: &mut Conn<Stream>, ep: &Endpoint) -> Result<(), ConnectError> {
    let Some(pass) = ep.password.as_deref() else {
        return Ok(());
    };
    let addr = ep.to_string();
    let reply = match ep.user.as_deref() {
        Some(user) => conn.call(&["AUTH", user, pass]).await,
        None => conn.call(&["AUTH", pass]).await,
    }
    .map_err(|source| ConnectError::Conn {
        addr: addr.clone(),
        source,
    })?;
    if let Some(reply) = frame_error(&reply) {
        return Err(ConnectError::Auth { addr, reply });
    }
    Ok(())
}
