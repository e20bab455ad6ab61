//! The disk part of the spool: a queue of segment files (`<name>-<n>.spool` in the spool
//! directory), appended to at the back and read from the front. A segment read to its end is
//! removed; when everything written has been read, every file is removed and the next byte
//! starts a new segment.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

use bytes::BytesMut;

/// A segment is closed and a new one started past this many bytes.
const SEGMENT_BYTES: u64 = 64 << 20;

/// A spool file that could not be written or read.
#[derive(Debug, thiserror::Error)]
#[error("{what} {path}: {source}")]
pub struct SegmentError {
    what: &'static str,
    path: String,
    source: std::io::Error,
}

#[derive(Debug)]
struct Segment {
    id: u64,
    path: PathBuf,
    written: u64,
    read: u64,
}

/// See the module documentation.
#[derive(Debug, Default)]
pub struct DiskQueue {
    dir: PathBuf,
    name: String,
    segments: VecDeque<Segment>,
    next_id: u64,
    unread: u64,
    /// Open on the last segment.
    writer: Option<File>,
    /// Open on the first segment: (its id, the file).
    reader: Option<(u64, File)>,
}

impl DiskQueue {
    pub fn new(dir: PathBuf, name: &str) -> Self {
        DiskQueue {
            dir,
            name: name.to_string(),
            ..DiskQueue::default()
        }
    }

    /// Bytes written and not read yet.
    pub fn unread(&self) -> u64 {
        self.unread
    }

    pub fn append(&mut self, data: &[u8]) -> Result<(), SegmentError> {
        let full = self
            .segments
            .back()
            .is_none_or(|s| s.written >= SEGMENT_BYTES);
        if full || self.writer.is_none() {
            self.open_segment()?;
        }
        let (Some(seg), Some(w)) = (self.segments.back_mut(), self.writer.as_mut()) else {
            unreachable!("a segment was just opened");
        };
        w.write_all(data).map_err(|source| SegmentError {
            what: "cannot write the spool file",
            path: seg.path.display().to_string(),
            source,
        })?;
        seg.written += data.len() as u64;
        self.unread += data.len() as u64;
        Ok(())
    }

    fn open_segment(&mut self) -> Result<(), SegmentError> {
        let id = self.next_id;
        self.next_id += 1;
        let path = self.dir.join(format!("{}-{id}.spool", self.name));
        let err = |what, source| SegmentError {
            what,
            path: path.display().to_string(),
            source,
        };
        fs::create_dir_all(&self.dir)
            .map_err(|e| err("cannot create the spool directory for", e))?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)
            .map_err(|e| err("cannot create the spool file", e))?;
        self.writer = Some(file);
        self.segments.push_back(Segment {
            id,
            path,
            written: 0,
            read: 0,
        });
        Ok(())
    }

    /// Appends up to `max` unread bytes to `buf`.
    pub fn read_into(&mut self, buf: &mut BytesMut, max: usize) -> Result<usize, SegmentError> {
        while let Some(front) = self.segments.front() {
            if front.read < front.written {
                break;
            }
            if self.segments.len() == 1 {
                return Ok(0);
            }
            // Read to its end and not written to any more.
            if let Some(done) = self.segments.pop_front() {
                self.reader = None;
                let _ = fs::remove_file(&done.path);
            }
        }
        let Some(front) = self.segments.front_mut() else {
            return Ok(0);
        };
        let err = |what, source| SegmentError {
            what,
            path: front.path.display().to_string(),
            source,
        };
        if self.reader.as_ref().is_none_or(|(id, _)| *id != front.id) {
            let mut f =
                File::open(&front.path).map_err(|e| err("cannot open the spool file", e))?;
            f.seek(SeekFrom::Start(front.read))
                .map_err(|e| err("cannot seek in the spool file", e))?;
            self.reader = Some((front.id, f));
        }
        let Some((_, f)) = self.reader.as_mut() else {
            return Ok(0);
        };
        let n = (front.written - front.read).min(max as u64) as usize;
        let start = buf.len();
        buf.resize(start + n, 0);
        if let Err(e) = f.read_exact(&mut buf[start..]) {
            buf.truncate(start);
            return Err(err("cannot read the spool file", e));
        }
        front.read += n as u64;
        self.unread -= n as u64;
        if self.unread == 0 {
            // Everything is read: start afresh, without files.
            self.remove_all();
        }
        Ok(n)
    }

    /// Removes every segment file.
    pub fn remove_all(&mut self) {
        self.writer = None;
        self.reader = None;
        for s in self.segments.drain(..) {
            let _ = fs::remove_file(&s.path);
        }
        self.unread = 0;
    }
}
