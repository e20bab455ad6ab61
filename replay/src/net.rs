//! Where a server is and how to log in: the endpoint of either side, TCP connection with the
//! socket options that matter (keepalive, no delay, a connect timeout), and AUTH.

use std::fmt;
use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};
use tokio::net::TcpStream;

use crate::resp::{frame_error, Conn, ConnError};

/// A server to connect to. `Debug` and `Display` never show the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub user: Option<String>,
    pub password: Option<String>,
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
    #[error("authentication failed at {addr}: {reply}")]
    Auth { addr: String, reply: String },
    #[error("{addr}: {source}")]
    Conn { addr: String, source: ConnError },
}

/// Opens a TCP connection with keepalive and `TCP_NODELAY` set.
pub async fn connect(ep: &Endpoint, timeout: Duration) -> Result<TcpStream, ConnectError> {
    let addr = ep.to_string();
    let stream = tokio::time::timeout(timeout, TcpStream::connect((ep.host.as_str(), ep.port)))
        .await
        .map_err(|_| ConnectError::Timeout {
            addr: addr.clone(),
            secs: timeout.as_secs(),
        })?
        .map_err(|source| ConnectError::Connect {
            addr: addr.clone(),
            source,
        })?;
    let sock = SockRef::from(&stream);
    let ka = TcpKeepalive::new()
        .with_time(Duration::from_secs(30))
        .with_interval(Duration::from_secs(10));
    // Best effort: a platform without these options still works, only detects dead peers later.
    let _ = sock.set_tcp_keepalive(&ka);
    let _ = sock.set_tcp_nodelay(true);
    Ok(stream)
}

/// Connects and authenticates (when the endpoint has a password).
pub async fn connect_and_auth(
    ep: &Endpoint,
    timeout: Duration,
) -> Result<Conn<TcpStream>, ConnectError> {
    let mut conn = Conn::new(connect(ep, timeout).await?);
    auth(&mut conn, ep).await?;
    Ok(conn)
}

/// Sends AUTH with the endpoint's credentials, if any.
pub async fn auth(conn: &mut Conn<TcpStream>, ep: &Endpoint) -> Result<(), ConnectError> {
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
