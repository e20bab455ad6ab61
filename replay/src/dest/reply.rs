//! What a destination's reply means for the run: success, a per-key error that is logged,
//! counted and passed over, or an error that stops the run (the destination cannot take writes,
//! refuses us, or lacks a command).

/// The policy for an error reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The destination took the command.
    Ok,
    /// This key could not be written (WRONGTYPE, BUSYKEY, a value error...): log, count, go on.
    PerKey,
    /// Stop the run: nothing later would be applied correctly (OOM, READONLY, NOAUTH, NOPERM,
    /// an unknown command, an error code we do not know).
    Fatal,
}

/// Error codes after which the run stops.
const FATAL_CODES: &[&str] = &[
    "OOM",
    "READONLY",
    "NOAUTH",
    "NOPERM",
    "WRONGPASS",
    "MISCONF",
    "MASTERDOWN",
    "LOADING",
    "BUSY",
    "MOVED",
    "ASK",
    "TRYAGAIN",
    "CLUSTERDOWN",
    "CROSSSLOT",
    "NOREPLICAS",
    // An EVALSHA of a script the destination lacks, whose body the stream never showed:
    // its writes would be lost.
    "NOSCRIPT",
];

/// Error codes that concern one key only.
const PER_KEY_CODES: &[&str] = &["WRONGTYPE", "BUSYKEY", "NOGROUP", "EXECABORT"];

/// `ERR` messages that mean the destination lacks what the source has: stop, do not skip.
const FATAL_ERR_PREFIXES: &[&str] = &[
    "ERR unknown command",
    "ERR unknown subcommand",
    "ERR wrong number of arguments",
    "ERR syntax error",
    // A RESTORE payload the destination cannot read (a newer RDB version, or corrupt): the
    // key would be lost. (A module value without its module on the destination answers
    // "Bad data format": counted as a key error, as the module aux data is logged.)
    "ERR DUMP payload version or checksum are wrong",
];

/// Classifies an error message (without the leading `-`).
pub fn classify_error(msg: &str) -> Action {
    let code = msg.split(' ').next().unwrap_or("");
    if FATAL_CODES.contains(&code) {
        return Action::Fatal;
    }
    // EXEC refused for itself (e.g. NOPERM for EXEC, OOM) comes back as EXECABORT with the
    // refusal as its cause: the cause decides. (After a queued command's own error, which was
    // judged on its own, the cause is "previous errors".)
    if code == "EXECABORT" {
        if let Some((_, cause)) = msg.split_once("because of: ") {
            return classify_error(cause);
        }
    }
    if PER_KEY_CODES.contains(&code) {
        return Action::PerKey;
    }
    if code == "ERR" {
        if FATAL_ERR_PREFIXES.iter().any(|p| msg.starts_with(p)) {
            return Action::Fatal;
        }
        return Action::PerKey;
    }
    Action::Fatal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies() {
        assert_eq!(
            classify_error("WRONGTYPE Operation against a key"),
            Action::PerKey
        );
        assert_eq!(
            classify_error("BUSYKEY Target key name already exists."),
            Action::PerKey
        );
        assert_eq!(classify_error("OOM command not allowed"), Action::Fatal);
        assert_eq!(classify_error("READONLY You can't write"), Action::Fatal);
        assert_eq!(
            classify_error("NOPERM this user has no permissions"),
            Action::Fatal
        );
        assert_eq!(
            classify_error("ERR unknown command 'HPEXPIREAT'"),
            Action::Fatal
        );
        assert_eq!(
            classify_error("ERR value is not an integer"),
            Action::PerKey
        );
        assert_eq!(
            classify_error("ERR DUMP payload version or checksum are wrong"),
            Action::Fatal
        );
        assert_eq!(classify_error("WEIRD something"), Action::Fatal);
        assert_eq!(
            classify_error("EXECABORT Transaction discarded because of previous errors."),
            Action::PerKey
        );
        assert_eq!(
            classify_error(
                "EXECABORT Transaction discarded because of: NOPERM this user has no permissions to run the 'exec' command"
            ),
            Action::Fatal
        );
    }
}
