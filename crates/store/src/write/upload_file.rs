//! The temp file of an upload, written in aligned blocks of 1 MiB with `O_DIRECT` where the
//! filesystem allows it.
//!
//! A buffered write copies every byte into the page cache and leaves it dirty for the fsync
//! to write; for a large upload that copy and its bookkeeping cost the receiving thread about
//! as much as hashing does. A direct write hands the block to the disk from our buffer, so
//! the only copy is the one into the block. What `O_DIRECT` does not do is make anything
//! durable: the fsync at the end of the upload still flushes the disk's cache and the file's
//! metadata, as the write protocol requires.
//!
//! The last, partial block is written through the page cache, and so are the first bytes of
//! an append that starts at an unaligned offset (a resumable upload's chunk), up to the next
//! aligned one. A filesystem without `O_DIRECT` (tmpfs, some FUSE and network filesystems)
//! gets buffered writes throughout.

use std::fs::File;
use std::io::{self, Write};

use rustix::fs::{fcntl_getfl, fcntl_setfl, OFlags};
use tempfile::NamedTempFile;

/// Bytes per write: a multiple of every block size in use.
const BLOCK: usize = 1 << 20;
/// The buffer's alignment, and so the file offsets': the largest logical block size of common
/// disks.
const ALIGN: usize = 4096;
/// Below this, a short upload is written through the page cache: two `fcntl` calls to save a
/// copy of a few pages are not worth it.
const DIRECT_AT_LEAST: usize = 16 * 1024;

/// The file an [`UploadFile`] writes to: a new temp file, or an open file being appended to.
pub trait Backing {
    /// The open file.
    fn file(&self) -> &File;
}

impl Backing for NamedTempFile {
    fn file(&self) -> &File {
        self.as_file()
    }
}

impl Backing for File {
    fn file(&self) -> &File {
        self
    }
}

pub struct UploadFile<F: Backing = NamedTempFile> {
    temp: F,
    /// Bytes to write through the page cache before the file's offset is aligned.
    lead: usize,
    /// Room for `block + ALIGN` bytes once the first byte arrives; the block starts at
    /// `start`, and the buffer holds only bytes written to it (never zeroed in advance).
    buf: Vec<u8>,
    /// Bytes per write: [`BLOCK`], or less for an upload known to be smaller.
    block: usize,
    start: usize,
    filled: usize,
    direct: bool,
    /// Whether `O_DIRECT` was tried: at the first whole block, so a small upload costs no
    /// `fcntl` at all.
    tried_direct: bool,
    /// Bytes handed to the file so far.
    written: u64,
}

impl<F: Backing> UploadFile<F> {
    /// Writes `temp` from its start.
    pub fn new(temp: F) -> Self {
        Self::at(temp, 0)
    }

    /// Writes `file` from `offset`, where its position is.
    pub fn at(file: F, offset: u64) -> Self {
        UploadFile {
            temp: file,
            lead: (ALIGN - (offset % ALIGN as u64) as usize) % ALIGN,
            buf: Vec::new(),
            block: BLOCK,
            start: 0,
            filled: 0,
            direct: false,
            tried_direct: false,
            written: 0,
        }
    }

    /// Sizes the buffer for an upload of `size` bytes, when that is less than a block: a
    /// small upload then takes a small allocation from the heap rather than a block-sized
    /// mapping of its own. Call before the first write; more bytes than announced are still
    /// written, in blocks of that size.
    pub fn expect_size(&mut self, size: u64) {
        if self.buf.capacity() == 0 {
            let rounded = usize::try_from(size)
                .unwrap_or(BLOCK)
                .clamp(1, BLOCK)
                .next_multiple_of(ALIGN);
            self.block = rounded.min(BLOCK);
        }
    }

    pub fn write_all(&mut self, mut data: &[u8]) -> io::Result<()> {
        if self.lead > 0 && !data.is_empty() {
            let n = self.lead.min(data.len());
            self.temp.file().write_all(&data[..n])?;
            self.written += n as u64;
            self.lead -= n;
            data = &data[n..];
        }
        if data.is_empty() {
            return Ok(());
        }
        if self.buf.capacity() == 0 {
            // Never grown past this capacity, so the allocation (and its alignment) stays.
            self.buf = Vec::with_capacity(self.block + ALIGN);
            self.start = self.buf.as_ptr().align_offset(ALIGN).min(ALIGN);
            self.buf.resize(self.start, 0);
        }
        while !data.is_empty() {
            let n = (self.block - self.filled).min(data.len());
            self.buf.extend_from_slice(&data[..n]);
            self.filled += n;
            data = &data[n..];
            if self.filled == self.block {
                if !self.tried_direct {
                    self.tried_direct = true;
                    self.direct =
                        self.block >= DIRECT_AT_LEAST && set_direct(self.temp.file(), true).is_ok();
                }
                self.write_block(self.filled)?;
                self.buf.truncate(self.start);
                self.filled = 0;
            }
        }
        Ok(())
    }

    /// Writes the first `len` bytes of the block; `len` is a multiple of [`ALIGN`] unless
    /// writes are buffered.
    fn write_block(&mut self, len: usize) -> io::Result<()> {
        let mut block = &self.buf[self.start..self.start + len];
        while !block.is_empty() {
            match self.temp.file().write(block) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    block = &block[n..];
                    self.written += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // The filesystem refuses this direct write (or a short write left the rest
                // unaligned): go on through the page cache.
                Err(e) if self.direct && e.raw_os_error() == Some(libc::EINVAL) => {
                    set_direct(self.temp.file(), false)?;
                    self.direct = false;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Bytes handed to the file (the rest waits in the block).
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Whether writes bypass the page cache (so there is nothing to write back early).
    pub fn is_direct(&self) -> bool {
        self.direct
    }

    pub fn file(&self) -> &File {
        self.temp.file()
    }

    /// Writes what is left; the file is complete but not yet durable. The aligned part of
    /// the last block goes directly too, even for an upload shorter than a block (most
    /// uploads): a small file then costs no copy into the page cache either. Only the last,
    /// unaligned bytes go through the page cache.
    pub fn finish(mut self) -> io::Result<F> {
        let aligned = self.filled - self.filled % ALIGN;
        if aligned >= DIRECT_AT_LEAST && !self.tried_direct {
            self.tried_direct = true;
            self.direct = set_direct(self.temp.file(), true).is_ok();
        }
        let mut done = 0;
        if self.direct && aligned > 0 {
            self.write_block(aligned)?;
            done = aligned;
        }
        if done < self.filled {
            if self.direct {
                // A partial block cannot be written directly.
                set_direct(self.temp.file(), false)?;
                self.direct = false;
            }
            self.start += done;
            self.write_block(self.filled - done)?;
        }
        Ok(self.temp)
    }
}

fn set_direct(file: &File, on: bool) -> io::Result<()> {
    let flags = fcntl_getfl(file)?;
    let flags = if on {
        flags | OFlags::DIRECT
    } else {
        flags - OFlags::DIRECT
    };
    fcntl_setfl(file, flags)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn writes_every_byte_in_order_whatever_the_chunking() {
        let dir = tempfile::tempdir().unwrap();
        for (len, chunk) in [
            (0, 1),
            (10, 3),
            (DIRECT_AT_LEAST - 1, 4096),
            (256 * 1024, 64 * 1024),
            (256 * 1024 + 100, 10_000),
            (BLOCK, 128 * 1024),
            (3 * BLOCK + 4097, 100_000),
            (BLOCK + 1, BLOCK + 1),
        ] {
            let data = content(len);
            let mut f = UploadFile::new(NamedTempFile::new_in(dir.path()).unwrap());
            for c in data.chunks(chunk) {
                f.write_all(c).unwrap();
            }
            let temp = f.finish().unwrap();
            let back = std::fs::read(temp.path()).unwrap();
            assert_eq!(back.len(), len, "{len} in chunks of {chunk}");
            assert!(back == data, "{len} in chunks of {chunk}");
        }
    }

    #[test]
    fn an_announced_size_sizes_the_buffer_and_more_bytes_still_arrive_whole() {
        let dir = tempfile::tempdir().unwrap();
        // (announced, actual, chunk): exact, unaligned, tiny, and wrong announcements.
        for (announced, len, chunk) in [
            (256 * 1024, 256 * 1024, 64 * 1024),
            (100_001, 100_001, 7_000),
            (10, 10, 3),
            (4096, 3 * 4096 + 17, 5000),
            (64 * 1024, BLOCK + 1, 100_000),
            (5 * BLOCK, 2 * BLOCK + 3, BLOCK),
        ] {
            let data = content(len);
            let mut f = UploadFile::new(NamedTempFile::new_in(dir.path()).unwrap());
            f.expect_size(announced as u64);
            assert!(f.block <= BLOCK && f.block % ALIGN == 0 && f.block > 0);
            for c in data.chunks(chunk) {
                f.write_all(c).unwrap();
            }
            assert!(f.buf.len() <= f.block + ALIGN);
            let temp = f.finish().unwrap();
            let back = std::fs::read(temp.path()).unwrap();
            assert!(back == data, "{len} bytes, {announced} announced");
        }
    }

    #[test]
    fn appends_at_any_offset_of_an_open_file() {
        use std::io::{Seek, SeekFrom};
        let dir = tempfile::tempdir().unwrap();
        for (start, len, chunk) in [
            (0usize, 3 * BLOCK + 5, 100_000),
            (1, 2 * BLOCK, BLOCK),
            (4095, BLOCK + 4097, 70_000),
            (4096 * 3 + 17, 10, 3),
            (777, 2 * ALIGN, 1),
        ] {
            let path = dir.path().join(format!("part-{start}"));
            let head = content(start);
            std::fs::write(&path, &head).unwrap();
            let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            file.seek(SeekFrom::Start(start as u64)).unwrap();
            let mut f = UploadFile::at(file, start as u64);
            let data: Vec<u8> = content(len).into_iter().rev().collect();
            for c in data.chunks(chunk) {
                f.write_all(c).unwrap();
            }
            f.finish().unwrap();
            let mut expected = head;
            expected.extend_from_slice(&data);
            assert!(std::fs::read(&path).unwrap() == expected, "from {start}");
        }
    }

    #[test]
    fn uses_direct_writes_where_the_filesystem_has_them() {
        let dir = tempfile::tempdir().unwrap();
        let probe = NamedTempFile::new_in(dir.path()).unwrap();
        let fs_allows = set_direct(probe.as_file(), true).is_ok();
        let mut f = UploadFile::new(NamedTempFile::new_in(dir.path()).unwrap());
        f.write_all(&content(BLOCK - 1)).unwrap();
        assert!(!f.is_direct(), "less than a block: no O_DIRECT yet");
        f.write_all(&content(BLOCK + 1)).unwrap();
        assert_eq!(f.written(), 2 * BLOCK as u64);
        if fs_allows {
            // Whole aligned blocks go straight to the disk.
            assert!(f.is_direct());
            assert!(fcntl_getfl(f.file()).unwrap().contains(OFlags::DIRECT));
        }
        let temp = f.finish().unwrap();
        let mut expected = content(BLOCK - 1);
        expected.extend(content(BLOCK + 1));
        assert!(std::fs::read(temp.path()).unwrap() == expected);
    }
}
