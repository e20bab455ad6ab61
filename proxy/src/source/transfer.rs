//! The RDB transfer header: `$<len>` (disk-based) or `$EOF:<40-byte mark>` (diskless), after
//! any keepalive newlines, and the check that the RDB ended where the header said.

use bytes::Bytes;

use super::SourceError;

/// How the RDB is delimited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transfer {
    /// Exactly this many bytes follow, with no trailer.
    Sized(u64),
    /// The RDB is followed by this 40-byte mark.
    Diskless([u8; 40]),
}

/// Interprets the transfer header line (keepalive empty lines already skipped).
pub fn parse_header(line: &Bytes) -> Result<Transfer, SourceError> {
    if let Some(err) = line.strip_prefix(b"-") {
        return Err(SourceError::Refused(format!(
            "the source aborted the transfer: {}",
            String::from_utf8_lossy(err)
        )));
    }
    let Some(rest) = line.strip_prefix(b"$") else {
        return Err(SourceError::Protocol(format!(
            "expected the RDB transfer header ($<len> or $EOF:<mark>), got {}",
            replay::display::printable(line)
        )));
    };
    if let Some(mark) = rest.strip_prefix(b"EOF:") {
        let mark: [u8; 40] = mark.try_into().map_err(|_| {
            SourceError::Protocol(format!("EOF mark of {} bytes, expected 40", mark.len()))
        })?;
        return Ok(Transfer::Diskless(mark));
    }
    std::str::from_utf8(rest)
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map(Transfer::Sized)
        .ok_or_else(|| {
            SourceError::Protocol(format!(
                "bad RDB length in transfer header {}",
                replay::display::printable(line)
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers() {
        assert_eq!(
            parse_header(&Bytes::from_static(b"$123")).ok(),
            Some(Transfer::Sized(123))
        );
        let mark = [b'x'; 40];
        let mut l = b"$EOF:".to_vec();
        l.extend_from_slice(&mark);
        assert_eq!(
            parse_header(&Bytes::from(l)).ok(),
            Some(Transfer::Diskless(mark))
        );
        assert!(parse_header(&Bytes::from_static(b"$EOF:short")).is_err());
        assert!(parse_header(&Bytes::from_static(b"$-1")).is_err());
        assert!(parse_header(&Bytes::from_static(b"-ERR nope")).is_err());
        assert!(parse_header(&Bytes::from_static(b"\x00\x01garbage")).is_err());
    }
}
