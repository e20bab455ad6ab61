//! The one line a failed run ends with: which side failed (source, target, or the input file)
//! and why.

use std::fmt;

use crate::config::Side;

/// A fatal error, printed as `replicant: <side>: <cause>`.
#[derive(Debug)]
pub struct Fatal {
    pub side: Option<Side>,
    pub what: String,
}

impl Fatal {
    pub fn source(e: impl fmt::Display) -> Self {
        Fatal {
            side: Some(Side::Source),
            what: e.to_string(),
        }
    }

    pub fn target(e: impl fmt::Display) -> Self {
        Fatal {
            side: Some(Side::Target),
            what: e.to_string(),
        }
    }

    pub fn other(e: impl fmt::Display) -> Self {
        Fatal {
            side: None,
            what: e.to_string(),
        }
    }
}

impl fmt::Display for Fatal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // One line, whatever the cause says.
        let what = self.what.replace('\n', " ");
        match self.side {
            Some(side) => write!(f, "{}: {what}", side.name()),
            None => write!(f, "{what}"),
        }
    }
}
