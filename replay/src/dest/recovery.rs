//! What a destination's writers hand back when a command could not be applied where it was
//! sent — a redirection (MOVED, ASK), a transient refusal (TRYAGAIN, CLUSTERDOWN, LOADING,
//! BUSY, MASTERDOWN), or a lost connection — so that the sink can reconnect (or refresh a
//! cluster's topology) and send them again, in the order they were sent. While anything is handed back, no writer claims an
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
    /// TRYAGAIN, CLUSTERDOWN, LOADING, MASTERDOWN, BUSY: wait, then again.
    Transient,
    /// The connection to the node was lost before the reply.
    Lost,
}

/// Error codes that send a command back instead of stopping the run.
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
        "TRYAGAIN" | "CLUSTERDOWN" | "LOADING" | "MASTERDOWN" | "BUSY" => Some(Returned::Transient),
        _ => None,
    }
}

/// A command handed back: why, and the db its connection had selected when it was sent.
#[derive(Debug)]
pub struct HandedBack {
    pub cmd: Command,
    pub why: Returned,
    pub db: u64,
}

/// Shared by a sink and its writers.
#[derive(Debug, Default)]
pub struct Recovery {
    items: Mutex<Vec<HandedBack>>,
    frozen: AtomicBool,
    /// A connection may hold a transaction open whose commands were handed back.
    discard: AtomicBool,
}

impl Recovery {
    pub fn hand_back(&self, cmd: Command, why: Returned, db: u64) {
        self.frozen.store(true, Ordering::Release);
        // A poisoned lock only means another writer panicked; the list itself is intact.
        let mut items = self.items.lock().unwrap_or_else(|p| p.into_inner());
        items.push(HandedBack { cmd, why, db });
    }

    pub fn take(&self) -> Vec<HandedBack> {
        std::mem::take(&mut *self.items.lock().unwrap_or_else(|p| p.into_inner()))
    }

    pub fn pending(&self) -> bool {
        self.frozen.load(Ordering::Acquire)
    }

    /// Whether writers may publish applied offsets.
    pub fn frozen(&self) -> bool {
        self.frozen.load(Ordering::Acquire)
    }

    pub fn set_discard(&self, open: bool) {
        self.discard.store(open, Ordering::Release);
    }

    /// Whether DISCARD must precede what is sent again (and forget it).
    pub fn take_discard(&self) -> bool {
        self.discard.swap(false, Ordering::AcqRel)
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
