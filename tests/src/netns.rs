//! A network namespace of the test's own, joined to the test's namespace by veth pairs, for
//! faults that cross a real link: replicant runs inside it ([`crate::replicant::SyncBuilder::in_netns`]),
//! the servers stay outside and listen on the outer end of a pair too
//! ([`Netns::listen_on`]), so that everything replicant sends them crosses that pair. A link
//! can be cut (both ends set down: packets are dropped, connections are not closed, as in a
//! partition) and given latency and loss (`tc … netem`, when the kernel has it).
//!
//! Creating one needs root and a kernel that allows it; [`Netns::create`] says why not
//! otherwise, for the test to report itself skipped. Dropping it removes the pairs and the
//! namespace. The addresses are in 10.201.0.0/16, one /30 per pair, chosen from the process id
//! so that two test processes do not meet.

use std::process::Command;

/// A namespace and its veth pairs; removed on drop.
pub struct Netns {
    name: String,
    /// Per pair: the outer end's interface name, the inner one's, and the pair's number.
    links: Vec<(String, String, u16)>,
}

fn ip(args: &[&str]) -> Result<(), String> {
    run("ip", args)
}

fn run(program: &str, args: &[&str]) -> Result<(), String> {
    match Command::new(program).args(args).output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(err) => Err(format!("cannot run {program}: {err}")),
    }
}

impl Netns {
    /// A namespace with `pairs` veth pairs to the test's namespace (numbered from 0), up.
    pub fn create(pairs: usize) -> Result<Netns, String> {
        let id = std::process::id() % 60_000;
        let name = format!("rpl-{id}");
        ip(&["netns", "add", &name])?;
        let mut ns = Netns {
            name,
            links: Vec::new(),
        };
        for i in 0..pairs {
            // Interface names are at most 15 bytes.
            let outer = format!("rp{id}o{i}");
            let inner = format!("rp{id}i{i}");
            let n = ((id as usize * 4 + i) % 16_000) as u16;
            ip(&[
                "link", "add", &outer, "type", "veth", "peer", "name", &inner,
            ])?;
            ns.links.push((outer.clone(), inner.clone(), n));
            ip(&["link", "set", &inner, "netns", &ns.name])?;
            ip(&[
                "addr",
                "add",
                &format!("{}/30", ns.outer_ip(i)),
                "dev",
                &outer,
            ])?;
            ip(&["link", "set", &outer, "up"])?;
            ns.exec(&[
                "ip",
                "addr",
                "add",
                &format!("{}/30", ns.inner_ip(i)),
                "dev",
                &inner,
            ])?;
            ns.exec(&["ip", "link", "set", &inner, "up"])?;
        }
        ns.exec(&["ip", "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    fn exec(&self, args: &[&str]) -> Result<(), String> {
        let mut all = vec!["netns", "exec", &self.name];
        all.extend(args);
        ip(&all)
    }

    /// The namespace's name (`ip netns exec NAME …`).
    pub fn name(&self) -> &str {
        &self.name
    }

    fn addr(&self, pair: usize, host: u16) -> String {
        let n = self.links[pair].2;
        let base = u32::from(n) * 4 + u32::from(host);
        format!("10.201.{}.{}", base / 256, base % 256)
    }

    /// The address of pair `pair`'s end outside the namespace (where a server listens).
    pub fn outer_ip(&self, pair: usize) -> String {
        self.addr(pair, 1)
    }

    /// The address of pair `pair`'s end inside the namespace.
    pub fn inner_ip(&self, pair: usize) -> String {
        self.addr(pair, 2)
    }

    /// The `bind` a server needs to be reached through pair `pair` as well as on loopback.
    pub fn listen_on(&self, pair: usize) -> String {
        format!("127.0.0.1 {}", self.outer_ip(pair))
    }

    /// Sets both ends of pair `pair` up or down (down: a partition).
    pub fn set_link(&self, pair: usize, up: bool) -> Result<(), String> {
        let state = if up { "up" } else { "down" };
        let (outer, inner, _) = &self.links[pair];
        ip(&["link", "set", outer, state])?;
        self.exec(&["ip", "link", "set", inner, state])
    }

    /// `tc qdisc replace … netem <spec>` on both ends of pair `pair` (e.g. `delay 25ms loss
    /// 0.5%` each way); the error says when the kernel has no netem.
    pub fn netem(&self, pair: usize, spec: &str) -> Result<(), String> {
        let (outer, inner, _) = &self.links[pair];
        let words: Vec<&str> = spec.split_whitespace().collect();
        let mut outer_args = vec!["qdisc", "replace", "dev", outer, "root", "netem"];
        outer_args.extend(&words);
        run("tc", &outer_args)?;
        let mut inner_args = vec!["tc", "qdisc", "replace", "dev", inner, "root", "netem"];
        inner_args.extend(&words);
        self.exec(&inner_args)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for (outer, _, _) in &self.links {
            // Removing one end removes the pair.
            let _ = ip(&["link", "del", outer]);
        }
        let _ = ip(&["netns", "del", &self.name]);
    }
}
