//! `CLUSTER NODES`, read: every node with its id, address, role, health, master and slots.
//! What a cluster *source* needs to know (which node holds a shard now, and which nodes belong
//! to that shard across failovers); the same text on every version since Redis 3.0. Pure.

use super::slot::SLOTS;
use super::topology::NodeAddr;

/// One line of `CLUSTER NODES`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterNode {
    pub id: String,
    pub addr: NodeAddr,
    pub master: bool,
    /// Failed, or not usable yet (`fail`, `noaddr`, `handshake`): not a node to read from.
    pub failed: bool,
    /// For a replica, the id of its master.
    pub master_id: Option<String>,
    /// Slot ranges it serves (a master), inclusive; slots being migrated are not listed apart.
    pub slots: Vec<(u16, u16)>,
}

/// Parses the reply of `CLUSTER NODES`; a line that does not have the documented fields is an
/// error naming it.
pub fn parse_nodes(text: &str) -> Result<Vec<ClusterNode>, String> {
    let mut out = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let f: Vec<&str> = line.split(' ').collect();
        if f.len() < 8 {
            return Err(format!(
                "CLUSTER NODES: a line with too few fields: {line:?}"
            ));
        }
        // ip:port@cport[,hostname]
        let hostport = f[1].split(['@', ',']).next().unwrap_or("");
        let (host, port) = hostport
            .rsplit_once(':')
            .ok_or_else(|| format!("CLUSTER NODES: no address in {line:?}"))?;
        let port: u16 = port
            .parse()
            .map_err(|_| format!("CLUSTER NODES: bad port in {line:?}"))?;
        let flags: Vec<&str> = f[2].split(',').collect();
        let has = |x: &str| flags.contains(&x);
        let mut slots = Vec::new();
        for s in &f[8..] {
            if s.starts_with('[') {
                continue; // a slot being imported or migrated: still its owner's below
            }
            let (a, b) = match s.split_once('-') {
                Some((a, b)) => (a.parse::<u16>(), b.parse::<u16>()),
                None => (s.parse::<u16>(), s.parse::<u16>()),
            };
            match (a, b) {
                (Ok(a), Ok(b)) if a <= b && usize::from(b) < SLOTS => slots.push((a, b)),
                _ => return Err(format!("CLUSTER NODES: bad slot range {s:?}")),
            }
        }
        out.push(ClusterNode {
            id: f[0].to_string(),
            addr: NodeAddr {
                host: host.to_string(),
                port,
            },
            master: has("master"),
            failed: has("fail") || has("noaddr") || has("handshake") || host.is_empty(),
            master_id: (f[3] != "-").then(|| f[3].to_string()),
            slots,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODES: &str = "\
07c37dfeb235213a872192d90877d0cd55635b91 127.0.0.1:30004@31004,host-4 slave e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 0 1426238317239 4 connected
67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 127.0.0.1:30002@31002 master - 0 1426238316232 2 connected 5461-10922
292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f 127.0.0.1:30003@31003 master - 0 1426238318243 3 connected 10923-16383 [10923->-67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1]
6ec23923021cf3ffec47632106199cb7f496ce01 127.0.0.1:30005@31005 slave,fail 67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 0 1426238316232 5 connected
e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 127.0.0.1:30001@31001 myself,master - 0 0 1 connected 0-5460 16000
";

    #[test]
    fn reads_every_node() {
        let nodes = parse_nodes(NODES).expect("parses");
        assert_eq!(nodes.len(), 5);
        let r = &nodes[0];
        assert!(!r.master && !r.failed);
        assert_eq!(r.addr.port, 30004);
        assert_eq!(r.addr.host, "127.0.0.1");
        assert_eq!(
            r.master_id.as_deref(),
            Some("e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca")
        );
        assert_eq!(nodes[2].slots, vec![(10923, 16383)]);
        assert!(nodes[3].failed);
        assert!(nodes[4].master);
        assert_eq!(nodes[4].slots, vec![(0, 5460), (16000, 16000)]);
    }

    #[test]
    fn refuses_what_is_not_a_nodes_line() {
        assert!(parse_nodes("garbage").is_err());
        assert!(parse_nodes("id 1.2.3.4:x@1 master - 0 0 1 connected").is_err());
        assert!(parse_nodes("id 1.2.3.4:1@2 master - 0 0 1 connected 9-20000").is_err());
    }
}
