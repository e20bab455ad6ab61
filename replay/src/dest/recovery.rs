//! What a cluster destination's writers hand back when a command could not be applied where it
//! was sent — a redirection (MOVED, ASK), a transient refusal (TRYAGAIN, CLUSTERDOWN, LOADING,
//! MASTERDOWN), or a lost connection — so that the sink can refresh the topology and send them
//! again, in the order they were sent. While anything is handed back, no writer claims an
//! applied offset (the commands handed back are not applied yet).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::cmd::Command;

/// Why a command came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Returned {
    /// `MOVED <slot> <host:port>`: the slot lives elsewhere now.
    Moved { addr: String },
    /// `ASK <slot> <host:port>`: this key is being imported there; ask it once.
    Ask { addr: String },
    /// TRYAGAIN, CLUSTERDOWN, LOADING, MASTERDOWN: wait, then again.
    Transient,
    /// The connection to the node was lost before the reply.
    Lost,
}

/// Error codes that send a command back instead of stopping the run (cluster destinations).
pub fn returned_kind(error: &str) -> Option<Returned> {
    let mut words = error.split(' ');
    match words.next()? {
        "MOVED" => {
            let _slot = words.next();
            Some(Returned::Moved {
                addr: words.next()?.to_string(),
            })
        }
        "ASK" => {
            let _slot = words.next();
            Some(Returned::Ask {
                addr: words.next()?.to_string(),
            })
        }
        "TRYAGAIN" | "CLUSTERDOWN" | "LOADING" | "MASTERDOWN" => Some(Returned::Transient),
        _ => None,
    }
}

/// Shared by a cluster sink and its writers.
#[derive(Debug, Default)]
pub struct Recovery {
    items: Mutex<Vec<(Command, Returned)>>,
    frozen: AtomicBool,
}

impl Recovery {
    pub fn hand_back(&self, cmd: Command, why: Returned) {
        self.frozen.store(true, Ordering::Release);
        // A poisoned lock only means another writer panicked; the list itself is intact.
        let mut items = self.items.lock().unwrap_or_else(|p| p.into_inner());
        items.push((cmd, why));
    }

    pub fn take(&self) -> Vec<(Command, Returned)> {
        std::mem::take(&mut *self.items.lock().unwrap_or_else(|p| p.into_inner()))
    }

    pub fn pending(&self) -> bool {
        self.frozen.load(Ordering::Acquire)
    }

    /// Whether writers may publish applied offsets.
    pub fn frozen(&self) -> bool {
        self.frozen.load(Ordering::Acquire)
    }

    pub fn unfreeze(&self) {
        self.frozen.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        assert_eq!(
            returned_kind("MOVED 3999 127.0.0.1:6381"),
            Some(Returned::Moved {
                addr: "127.0.0.1:6381".into()
            })
        );
        assert_eq!(
            returned_kind("ASK 3999 127.0.0.1:6381"),
            Some(Returned::Ask {
                addr: "127.0.0.1:6381".into()
            })
        );
        assert_eq!(
            returned_kind("TRYAGAIN Multiple keys request during rehashing of slot"),
            Some(Returned::Transient)
        );
        assert_eq!(
            returned_kind("CLUSTERDOWN The cluster is down"),
            Some(Returned::Transient)
        );
        assert_eq!(returned_kind("WRONGTYPE x"), None);
    }
}
