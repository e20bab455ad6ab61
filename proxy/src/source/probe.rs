//! What the run needs to know of the source before the replica link opens, read on a control
//! connection (the same credentials and TLS as the link): its version and role, for the log,
//! and which dbs hold keys (a cluster destination has only db 0). It also checks early that
//! the user may run `INFO`, which telling the lag needs.

use std::time::Duration;

use replay::net::{connect_and_auth, Endpoint, Stream};
use replay::resp::{frame_error, frame_text, Conn};

use super::SourceError;

/// The source, as `INFO` describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceInfo {
    pub version: String,
    /// `master`, or `slave` for a replica (which can feed replicas too).
    pub role: String,
    /// The dbs that hold keys.
    pub dbs: Vec<u64>,
    /// A node of a Redis Cluster (`cluster_enabled:1`).
    pub cluster: bool,
}

/// Connects, authenticates and reads `INFO server`, `INFO replication` and `INFO keyspace`.
pub async fn probe(ep: &Endpoint, timeout: Duration) -> Result<SourceInfo, SourceError> {
    let mut conn = connect_and_auth(ep, timeout).await?;
    let server = info(&mut conn, "server").await?;
    let replication = info(&mut conn, "replication").await?;
    let keyspace = info(&mut conn, "keyspace").await?;
    let cluster = info(&mut conn, "cluster").await?;
    Ok(SourceInfo {
        version: field(&server, "redis_version").unwrap_or_default(),
        role: field(&replication, "role").unwrap_or_default(),
        dbs: keyspace
            .lines()
            .filter_map(|l| l.strip_prefix("db")?.split(':').next()?.parse().ok())
            .collect(),
        cluster: field(&cluster, "cluster_enabled").as_deref() == Some("1"),
    })
}

async fn info(conn: &mut Conn<Stream>, section: &str) -> Result<String, SourceError> {
    let reply = conn.call(&["INFO", section]).await?;
    if let Some(e) = frame_error(&reply) {
        return Err(SourceError::Refused(format!("INFO {section} refused: {e}")));
    }
    Ok(frame_text(&reply))
}

fn field(info: &str, name: &str) -> Option<String> {
    info.lines()
        .find_map(|l| l.trim().strip_prefix(name)?.strip_prefix(':'))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields() {
        let text = "# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\n";
        assert_eq!(field(text, "redis_version").as_deref(), Some("7.0.15"));
        assert_eq!(field(text, "redis_mode").as_deref(), Some("standalone"));
        assert_eq!(field(text, "role"), None);
    }
}
