//! What a destination server can take, read from its `INFO server`: the RDB version of its DUMP
//! payloads and the commands that arrived after 7.0 (hash field TTLs).

/// Capabilities of a destination server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    /// `redis_version` (major, minor, patch).
    pub version: (u32, u32, u32),
    /// Highest RDB version its RESTORE accepts.
    pub rdb_version: u32,
}

impl Caps {
    /// From the text of `INFO server`.
    pub fn from_info(info: &str) -> Result<Caps, String> {
        let v = info_field(info, "redis_version")
            .ok_or_else(|| "INFO server has no redis_version".to_string())?;
        let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        let version = (
            parts.next().unwrap_or(0),
            parts.next().unwrap_or(0),
            parts.next().unwrap_or(0),
        );
        Ok(Caps::for_version(version))
    }

    pub fn for_version(version: (u32, u32, u32)) -> Caps {
        Caps {
            version,
            rdb_version: crate::rdb::types::rdb_version_of_server(version.0, version.1),
        }
    }

    fn at_least(&self, major: u32, minor: u32) -> bool {
        (self.version.0, self.version.1) >= (major, minor)
    }

    /// HPEXPIREAT (Redis 7.4).
    pub fn hash_field_ttl(&self) -> bool {
        self.at_least(7, 4)
    }

    /// FUNCTION LOAD, XSETID ENTRIESADDED/MAXDELETEDID, XGROUP CREATE ENTRIESREAD (Redis 7.0).
    pub fn seven(&self) -> bool {
        self.at_least(7, 0)
    }

    /// XGROUP CREATECONSUMER (Redis 6.2).
    pub fn create_consumer(&self) -> bool {
        self.at_least(6, 2)
    }
}

/// The value of `name` in INFO text.
pub fn info_field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k == name).then_some(v.trim())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_version() {
        let c = Caps::from_info("# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\n")
            .expect("caps");
        assert_eq!(c.version, (7, 0, 15));
        assert_eq!(c.rdb_version, 10);
        assert!(!c.hash_field_ttl());
        assert!(Caps::from_info("x:y").is_err());
    }
}
