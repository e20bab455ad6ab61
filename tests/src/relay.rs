//! A TCP relay between replicant and a server, that a test can cut: every connection through
//! it is closed at once, as a network fault would (the server sees the connection drop without
//! any command of its own, unlike `CLIENT KILL`). Plain threads and std sockets.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// A running relay; dropping it stops accepting and cuts every connection.
pub struct Relay {
    port: u16,
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    /// Both ends of every live connection.
    live: Mutex<Vec<TcpStream>>,
    stopping: AtomicBool,
    accepted: AtomicU64,
}

impl Relay {
    /// Listens on a free loopback port and relays each connection to `upstream` (`host:port`).
    pub fn start(upstream: &str) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").expect("cannot bind the relay");
        let port = listener.local_addr().expect("relay address").port();
        let shared = Arc::new(Shared::default());
        let upstream = upstream.to_string();
        let accept_shared = Arc::clone(&shared);
        thread::Builder::new()
            .name("relay-accept".into())
            .spawn(move || accept_loop(&listener, &upstream, &accept_shared))
            .expect("cannot spawn the relay thread");
        Relay { port, shared }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::Acquire)
    }

    /// Closes every connection through the relay now; new ones are still accepted.
    /// Returns how many connections were cut.
    pub fn cut(&self) -> usize {
        let mut live = self.shared.live.lock().unwrap_or_else(|p| p.into_inner());
        for s in live.iter() {
            let _ = s.shutdown(Shutdown::Both);
        }
        let n = live.len() / 2;
        live.clear();
        n
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::Release);
        self.cut();
        // Wake the accept loop so that it sees `stopping`.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn accept_loop(listener: &TcpListener, upstream: &str, shared: &Arc<Shared>) {
    for conn in listener.incoming() {
        if shared.stopping.load(Ordering::Acquire) {
            return;
        }
        let Ok(down) = conn else { continue };
        let Ok(up) = TcpStream::connect(upstream) else {
            let _ = down.shutdown(Shutdown::Both);
            continue;
        };
        let _ = down.set_nodelay(true);
        let _ = up.set_nodelay(true);
        let (Ok(down2), Ok(up2)) = (down.try_clone(), up.try_clone()) else {
            continue;
        };
        {
            let mut live = shared.live.lock().unwrap_or_else(|p| p.into_inner());
            if let (Ok(a), Ok(b)) = (down.try_clone(), up.try_clone()) {
                live.push(a);
                live.push(b);
            }
        }
        shared.accepted.fetch_add(1, Ordering::AcqRel);
        pipe(down, up2);
        pipe(up, down2);
    }
}

/// Copies `from` to `to` on a thread until either side closes; then closes both.
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let _ = thread::Builder::new()
        .name("relay-pipe".into())
        .spawn(move || {
            let _ = from.set_read_timeout(Some(Duration::from_secs(3600)));
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match from.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                }
            }
            let _ = from.shutdown(Shutdown::Both);
            let _ = to.shutdown(Shutdown::Both);
        });
}
