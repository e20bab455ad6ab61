//! Where the two sides are: redis-cli style URLs (`redis://[[user]:password@]host[:port]`),
//! with passwords optionally from the environment so they stay out of process listings.

use replay::net::Endpoint;

/// Which side of the migration something concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Source,
    Target,
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Side::Source => "source",
            Side::Target => "target",
        }
    }

    /// The environment variable that may hold this side's password.
    pub fn password_env(self) -> &'static str {
        match self {
            Side::Source => "REPLICANT_SOURCE_PASSWORD",
            Side::Target => "REPLICANT_TARGET_PASSWORD",
        }
    }
}

/// Parses a server URL. `env_password` is used when the URL carries none.
pub fn parse_endpoint(text: &str, env_password: Option<String>) -> Result<Endpoint, String> {
    let with_scheme = if text.contains("://") {
        text.to_string()
    } else {
        format!("redis://{text}")
    };
    let url = url::Url::parse(&with_scheme).map_err(|e| format!("invalid URL {text:?}: {e}"))?;
    match url.scheme() {
        "redis" => {}
        "rediss" => {
            return Err(format!(
                "{}: TLS (rediss://) is not supported yet",
                redact(&url)
            ))
        }
        other => return Err(format!("unsupported URL scheme {other:?} (use redis://)")),
    }
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| format!("{}: no host", redact(&url)))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = url.port().unwrap_or(6379);
    let decode = |s: &str| percent_decode(s).map_err(|e| format!("{}: {e}", redact(&url)));
    let user = match url.username() {
        "" => None,
        u => Some(decode(u)?),
    };
    let password = match url.password() {
        Some(p) => Some(decode(p)?),
        None => env_password.filter(|p| !p.is_empty()),
    };
    if !matches!(url.path(), "" | "/" | "/0") {
        return Err(format!(
            "{}: a database in the URL is not supported; all databases are migrated",
            redact(&url)
        ));
    }
    Ok(Endpoint {
        host,
        port,
        user,
        password,
    })
}

fn redact(url: &url::Url) -> String {
    let mut u = url.clone();
    if u.password().is_some() {
        let _ = u.set_password(Some("***"));
    }
    u.to_string()
}

fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or("bad percent-encoding in the URL credentials")?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "URL credentials are not UTF-8".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let e = parse_endpoint("redis://127.0.0.1:7000", None).expect("plain");
        assert_eq!(
            (e.host.as_str(), e.port, e.password),
            ("127.0.0.1", 7000, None)
        );
        let e = parse_endpoint("redis://:s%40cret@h", None).expect("password only");
        assert_eq!(
            (e.user, e.password.as_deref(), e.port),
            (None, Some("s@cret"), 6379)
        );
        let e = parse_endpoint("redis://alice:pw@h:1", None).expect("user");
        assert_eq!(e.user.as_deref(), Some("alice"));
        let e = parse_endpoint("h:2", Some("env".into())).expect("bare");
        assert_eq!(e.password.as_deref(), Some("env"));
        let e = parse_endpoint("redis://[::1]:3", None).expect("ipv6");
        assert_eq!(e.host, "::1");
        assert!(parse_endpoint("rediss://h", None).is_err());
        assert!(parse_endpoint("http://h", None).is_err());
        let err = parse_endpoint("rediss://:topsecret@h", None).expect_err("tls");
        assert!(!err.contains("topsecret"));
    }
}
