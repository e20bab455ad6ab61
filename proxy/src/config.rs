//! Where the two sides are and how to reach them: redis-cli style URLs
//! (`redis[s]://[[user]:password@]host[:port]`), an ACL user from a flag, passwords optionally
//! from the environment so they stay out of process listings, and the TLS flags of each side.

use replay::net::{Endpoint, Tls, TlsOptions};

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

    /// The prefix of this side's flags (`--source-tls-ca`, ...).
    pub fn flag(self) -> &'static str {
        match self {
            Side::Source => "--source",
            Side::Target => "--target",
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

/// How to reach one side, beyond its URL: from that side's flags.
#[derive(Debug, Clone, Default)]
pub struct SideFlags {
    /// ACL user, when the URL names none.
    pub user: Option<String>,
    /// TLS even with a `redis://` URL.
    pub tls: bool,
    pub tls_options: TlsOptions,
}

/// A side's endpoint from its URL, its flags and the password from the environment (used
/// when the URL carries none). TLS (from `rediss://` or the flag) reads its files here.
pub fn side_endpoint(
    side: Side,
    url: &str,
    flags: &SideFlags,
    env_password: Option<String>,
) -> Result<Endpoint, String> {
    let (mut ep, rediss) = parse_endpoint(url, env_password)?;
    if ep.user.is_none() {
        ep.user = flags.user.clone().filter(|u| !u.is_empty());
    }
    let o = &flags.tls_options;
    if !(rediss || flags.tls) {
        let given = [
            (o.ca.is_some(), "ca"),
            (o.cert.is_some(), "cert"),
            (o.key.is_some(), "key"),
            (o.server_name.is_some(), "server-name"),
            (o.insecure, "insecure"),
        ];
        if let Some((_, name)) = given.iter().find(|(set, _)| *set) {
            let f = side.flag();
            return Err(format!(
                "{f}-tls-{name} is given but TLS is off: use a rediss:// URL or {f}-tls"
            ));
        }
        return Ok(ep);
    }
    if o.insecure && (o.ca.is_some() || o.server_name.is_some()) {
        let f = side.flag();
        return Err(format!(
            "{f}-tls-insecure checks no certificate: it cannot be combined with {f}-tls-ca or {f}-tls-server-name"
        ));
    }
    if o.cert.is_some() != o.key.is_some() {
        let f = side.flag();
        return Err(format!(
            "a client certificate needs both {f}-tls-cert and {f}-tls-key"
        ));
    }
    ep.tls = Some(Tls::new(o).map_err(|e| format!("TLS: {e}"))?);
    Ok(ep)
}

/// Parses a server URL (`env_password` is used when it carries none): the endpoint, without
/// TLS settings yet, and whether the scheme asks for TLS (`rediss://`).
pub fn parse_endpoint(
    text: &str,
    env_password: Option<String>,
) -> Result<(Endpoint, bool), String> {
    let with_scheme = if text.contains("://") {
        text.to_string()
    } else {
        format!("redis://{text}")
    };
    let url = url::Url::parse(&with_scheme)
        .map_err(|e| format!("invalid URL {:?}: {e}", redact_text(text)))?;
    let tls = match url.scheme() {
        "redis" => false,
        "rediss" => true,
        other => {
            return Err(format!(
                "unsupported URL scheme {other:?} (use redis:// or rediss://)"
            ))
        }
    };
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
    Ok((
        Endpoint {
            host,
            port,
            user,
            password,
            tls: None,
        },
        tls,
    ))
}

fn redact(url: &url::Url) -> String {
    let mut u = url.clone();
    if u.password().is_some() {
        let _ = u.set_password(Some("***"));
    }
    u.to_string()
}

/// `text` with whatever lies between the user and the last `@` of its authority replaced,
/// for messages about a URL that could not be parsed.
fn redact_text(text: &str) -> String {
    let start = text.find("://").map_or(0, |i| i + 3);
    let end = text[start..].find('/').map_or(text.len(), |i| start + i);
    let authority = &text[start..end];
    let Some(at) = authority.rfind('@') else {
        return text.to_string();
    };
    let user_end = authority[..at].find(':').unwrap_or(at);
    let secret = if user_end < at { ":***" } else { "" };
    format!(
        "{}{}{secret}{}",
        &text[..start],
        &authority[..user_end],
        &text[start + at..]
    )
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
        let parse = |text: &str, env: Option<String>| parse_endpoint(text, env).map(|(e, _)| e);
        let e = parse("redis://127.0.0.1:7000", None).expect("plain");
        assert_eq!(
            (e.host.as_str(), e.port, e.password),
            ("127.0.0.1", 7000, None)
        );
        let e = parse("redis://:s%40cret@h", None).expect("password only");
        assert_eq!(
            (e.user, e.password.as_deref(), e.port),
            (None, Some("s@cret"), 6379)
        );
        let e = parse("redis://alice:pw@h:1", None).expect("user");
        assert_eq!(e.user.as_deref(), Some("alice"));
        let e = parse("h:2", Some("env".into())).expect("bare");
        assert_eq!(e.password.as_deref(), Some("env"));
        let e = parse("redis://[::1]:3", None).expect("ipv6");
        assert_eq!(e.host, "::1");
        assert!(parse_endpoint("rediss://h", None).expect("tls").1);
        assert!(!parse_endpoint("redis://h", None).expect("plain").1);
        assert!(parse("http://h", None).is_err());
    }

    #[test]
    fn passwords_stay_out_of_errors() {
        for bad in [
            "redis://:topsecret@h:notaport",
            "redis://alice:topsecret@h:99999",
            "rediss://u:topsecret@/",
            "redis://:topsecret@h/5",
        ] {
            let err = parse_endpoint(bad, None).expect_err(bad);
            assert!(!err.contains("topsecret"), "{err}");
        }
        assert_eq!(
            redact_text("redis://alice:p@ss@h:1/x"),
            "redis://alice:***@h:1/x"
        );
        assert_eq!(redact_text("redis://alice@h"), "redis://alice@h");
        assert_eq!(redact_text("h:1"), "h:1");
    }

    #[test]
    fn side_flags() {
        let flags = SideFlags {
            user: Some("bob".into()),
            ..SideFlags::default()
        };
        let e = side_endpoint(Side::Source, "redis://h", &flags, None).expect("user flag");
        assert_eq!(e.user.as_deref(), Some("bob"));
        assert!(e.tls.is_none());
        let e = side_endpoint(Side::Source, "redis://alice@h", &flags, None).expect("url user");
        assert_eq!(e.user.as_deref(), Some("alice"));
        let flags = SideFlags {
            tls_options: TlsOptions {
                ca: Some("/nonexistent/ca.pem".into()),
                ..TlsOptions::default()
            },
            ..SideFlags::default()
        };
        let err = side_endpoint(Side::Target, "redis://h", &flags, None).expect_err("tls off");
        assert!(
            err.contains("--target-tls-ca") && err.contains("TLS is off"),
            "{err}"
        );
        let err = side_endpoint(Side::Target, "rediss://h", &flags, None).expect_err("no file");
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
        let insecure = SideFlags {
            tls_options: TlsOptions {
                insecure: true,
                ..TlsOptions::default()
            },
            ..SideFlags::default()
        };
        let e = side_endpoint(Side::Source, "rediss://h", &insecure, None).expect("insecure");
        assert!(e.tls.is_some_and(|t| t.is_insecure()));
    }
}
