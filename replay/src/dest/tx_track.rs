//! Transactions through a refusal or a lost connection. A MULTI … EXEC block must be applied
//! whole or not at all, so a writer that hands commands back keeps the block's commands (from
//! MULTI on) until EXEC is answered: if any of them is refused or never sent, the whole block
//! goes back, in order, and so does each later part of it; if the connection dies before EXEC
//! is answered, the server has dropped the block, and it goes back whole too. When the server
//! may still hold the block open (MULTI answered, EXEC not), the sink is asked to send DISCARD
//! before anything else.

use super::recovery::{Recovery, Returned};
use crate::cmd::Command;

#[derive(Debug)]
struct Open {
    /// The block's commands so far, with the db each was meant for.
    cmds: Vec<(Command, u64)>,
    /// MULTI was answered +OK: the server holds the block until EXEC or DISCARD.
    multi_ok: bool,
    /// The block is going back: every later part of it follows.
    back: bool,
}

/// What [`Transactions::on_command`] did with a command.
#[derive(Debug, PartialEq, Eq)]
pub enum Seen {
    /// Not handed back here: the writer deals with the reply as usual.
    Normal,
    /// Handed back (with the rest of its block).
    HandedBack,
}

/// The transaction a writer's connection is in, if any.
#[derive(Debug, Default)]
pub struct Transactions {
    open: Option<Open>,
}

/// How a command of the block fared.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Never written to the connection.
    pub unsent: bool,
    /// Answered with a refusal that sends it back (LOADING, BUSY, MOVED, …), and which.
    pub refused: Option<Returned>,
    /// Answered with any error.
    pub error: bool,
}

impl Transactions {
    /// Called for every command in the order sent, once its fate is known.
    pub fn on_command(&mut self, rec: &Recovery, cmd: &Command, db: u64, o: Outcome) -> Seen {
        // The command itself goes back for what it met (a redirection is followed for the
        // whole block by the sink); the rest of the block as waiting to be sent again.
        let why = o.refused.clone().unwrap_or(Returned::Transient);
        let is_multi = cmd.is_named(b"MULTI");
        if is_multi {
            self.open = Some(Open {
                cmds: Vec::new(),
                multi_ok: false,
                back: false,
            });
        }
        let Some(t) = self.open.as_mut() else {
            return Seen::Normal;
        };
        let is_exec = cmd.is_named(b"EXEC");
        if is_multi && !o.unsent && !o.error {
            t.multi_ok = true;
        }
        if t.back {
            if is_exec && !o.unsent && o.refused.is_none() {
                // EXEC answered (EXECABORT): the server closed the block itself.
                rec.set_discard(false);
            }
            rec.hand_back(cmd.clone(), why, db);
            if is_exec {
                self.open = None;
            }
            return Seen::HandedBack;
        }
        if o.unsent || o.refused.is_some() {
            t.back = true;
            if t.multi_ok {
                rec.set_discard(true);
            }
            for (c, d) in t.cmds.drain(..) {
                rec.hand_back(c, Returned::Transient, d);
            }
            rec.hand_back(cmd.clone(), why, db);
            if is_exec {
                self.open = None;
            }
            return Seen::HandedBack;
        }
        t.cmds.push((cmd.clone(), db));
        if is_exec {
            self.open = None;
        }
        Seen::Normal
    }

    /// The connection is lost: the server dropped the block, which goes back whole (before
    /// whatever else was not answered).
    pub fn on_lost(&mut self, rec: &Recovery) {
        if let Some(t) = self.open.take() {
            for (c, d) in t.cmds {
                rec.hand_back(c, Returned::Lost, d);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(rec: &Recovery) -> Vec<String> {
        rec.take().into_iter().map(|h| h.cmd.describe().0).collect()
    }

    const OK: Outcome = Outcome {
        unsent: false,
        refused: None,
        error: false,
    };
    const BUSY: Outcome = Outcome {
        unsent: false,
        refused: Some(Returned::Transient),
        error: true,
    };

    #[test]
    fn a_refused_part_sends_the_whole_block_back() {
        let rec = Recovery::default();
        let mut tx = Transactions::default();
        let multi = Command::new(&["MULTI"]);
        let set = Command::new(&["SET", "k", "v"]);
        let incr = Command::new(&["INCR", "n"]);
        let exec = Command::new(&["EXEC"]);
        assert_eq!(tx.on_command(&rec, &multi, 0, OK), Seen::Normal);
        assert_eq!(tx.on_command(&rec, &set, 0, OK), Seen::Normal);
        assert!(rec.take().is_empty());
        assert_eq!(tx.on_command(&rec, &incr, 0, BUSY), Seen::HandedBack);
        assert_eq!(tx.on_command(&rec, &exec, 0, BUSY), Seen::HandedBack);
        assert_eq!(names(&rec), vec!["MULTI", "SET", "INCR", "EXEC"]);
        assert!(rec.take_discard(), "MULTI was answered: the block is open");
        // After the block, commands are the writer's again.
        assert_eq!(tx.on_command(&rec, &set, 0, OK), Seen::Normal);
    }

    #[test]
    fn a_lost_connection_sends_the_open_block_back() {
        let rec = Recovery::default();
        let mut tx = Transactions::default();
        tx.on_command(&rec, &Command::new(&["MULTI"]), 5, OK);
        tx.on_command(&rec, &Command::new(&["SET", "k", "v"]), 5, OK);
        tx.on_lost(&rec);
        let back = rec.take();
        assert_eq!(back.len(), 2);
        assert!(back.iter().all(|h| h.db == 5));
        assert!(!rec.take_discard());
    }

    #[test]
    fn a_whole_block_answered_stays_applied() {
        let rec = Recovery::default();
        let mut tx = Transactions::default();
        for c in [["MULTI"], ["EXEC"]] {
            assert_eq!(tx.on_command(&rec, &Command::new(&c), 0, OK), Seen::Normal);
        }
        tx.on_lost(&rec);
        assert!(rec.take().is_empty());
    }
}
