//! Helpers shared by the unit tests.

use bytes::Bytes;

/// Words separated by single spaces, as the arguments of a command.
pub fn args(s: &str) -> Vec<Bytes> {
    s.split(' ')
        .map(|a| Bytes::copy_from_slice(a.as_bytes()))
        .collect()
}
