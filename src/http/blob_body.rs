//! The body of a file response: bytes of one open blob, read in large chunks.
//!
//! What the page cache already holds is read right on the worker thread (`preadv2` with
//! `RWF_NOWAIT` never waits for the disk), which costs no thread hand-off; a read that would
//! wait goes to the blocking pool, so a cold file never stalls the other connections of its
//! worker. actix-files does every read on the blocking pool, 64 KiB at a time: for files in
//! the page cache the hand-offs cost more than the reads.

use std::fs::File;
use std::future::Future;
use std::io::{self, IoSliceMut};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use actix_web::rt::task::{spawn_blocking, JoinHandle};
use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use rustix::io::{preadv2, ReadWriteFlags};

/// Bytes per read: large enough that a syscall moves a good amount, small enough that a slow
/// client holds little memory.
const CHUNK: usize = 128 * 1024;

pub struct BlobBody {
    file: Arc<File>,
    offset: u64,
    left: u64,
    buf: BytesMut,
    /// False once the filesystem turned `RWF_NOWAIT` down: every read goes to the pool then.
    nowait: bool,
    pending: Option<JoinHandle<io::Result<Bytes>>>,
}

impl BlobBody {
    pub fn new(file: File, offset: u64, len: u64) -> Self {
        BlobBody {
            file: Arc::new(file),
            offset,
            left: len,
            buf: BytesMut::new(),
            nowait: true,
            pending: None,
        }
    }

    fn want(&self) -> usize {
        usize::try_from(self.left).map_or(CHUNK, |l| l.min(CHUNK))
    }

    fn advance(&mut self, chunk: Bytes) -> Poll<Option<io::Result<Bytes>>> {
        if chunk.is_empty() {
            // The file is shorter than its record says: never the case for an intact blob.
            self.left = 0;
            return Poll::Ready(Some(Err(io::ErrorKind::UnexpectedEof.into())));
        }
        self.offset += chunk.len() as u64;
        self.left = self.left.saturating_sub(chunk.len() as u64);
        Poll::Ready(Some(Ok(chunk)))
    }
}

/// One read into `buf` (whose allocation is reused once the previous chunk has been sent).
fn read_into(
    buf: &mut BytesMut,
    file: &File,
    offset: u64,
    want: usize,
    flags: ReadWriteFlags,
) -> io::Result<Bytes> {
    buf.clear();
    buf.resize(want, 0);
    let n = preadv2(file, &mut [IoSliceMut::new(&mut buf[..])], offset, flags)?;
    buf.truncate(n);
    Ok(buf.split().freeze())
}

impl Stream for BlobBody {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if let Some(pending) = &mut this.pending {
            let done = match Pin::new(pending).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(done) => done,
            };
            this.pending = None;
            return match done {
                Ok(Ok(chunk)) => this.advance(chunk),
                Ok(Err(e)) => Poll::Ready(Some(Err(e))),
                Err(_) => Poll::Ready(Some(Err(io::Error::other("a file read panicked")))),
            };
        }
        if this.left == 0 {
            return Poll::Ready(None);
        }
        let want = this.want();
        if this.nowait {
            match read_into(
                &mut this.buf,
                &this.file,
                this.offset,
                want,
                ReadWriteFlags::NOWAIT,
            ) {
                Ok(chunk) if !chunk.is_empty() => return this.advance(chunk),
                // Nothing cached at this offset (or at the end of the file): ask the pool,
                // which tells the two apart.
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.raw_os_error() == Some(rustix::io::Errno::OPNOTSUPP.raw_os_error()) => {
                    this.nowait = false;
                }
                Err(e) => return Poll::Ready(Some(Err(e))),
            }
        }
        let file = this.file.clone();
        let offset = this.offset;
        this.pending = Some(spawn_blocking(move || {
            let mut buf = BytesMut::new();
            read_into(&mut buf, &file, offset, want, ReadWriteFlags::empty())
        }));
        self.poll_next(cx)
    }
}

/// A response body of `len` bytes of a blob from `offset`, wherever the store keeps it: read
/// from its file, or streamed from its bucket.
pub type RangeBody = std::pin::Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send + Sync>>;

/// Opens `len` bytes of a blob from `offset` as a body.
pub fn open_range(
    blobs: &crate::store::Blobs,
    hash: &crate::store::ContentHash,
    offset: u64,
    len: u64,
) -> Result<RangeBody, crate::store::StoreError> {
    if let Some(bucket) = blobs.bucket() {
        if len == 0 {
            return Ok(Box::pin(futures_util::stream::empty()));
        }
        let rx = bucket.stream_range(hash, offset..offset + len);
        return Ok(Box::pin(futures_util::stream::unfold(
            rx,
            |mut rx| async move {
                let item = rx.recv().await?;
                Some((item.map_err(io::Error::other), rx))
            },
        )));
    }
    let Some(path) = blobs.local_path(hash) else {
        return Err(crate::store::StoreError::NotFound);
    };
    let file = File::open(path).map_err(|e| crate::store::StoreError::io("open a blob", e))?;
    Ok(Box::pin(BlobBody::new(file, offset, len)))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use futures_util::StreamExt;

    use super::*;

    async fn collect(body: BlobBody) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut body = Box::pin(body);
        while let Some(chunk) = body.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out)
    }

    #[actix_web::test]
    async fn reads_exactly_the_range_in_chunks() {
        let mut f = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..(3 * CHUNK + 123)).map(|i| (i % 251) as u8).collect();
        f.write_all(&data).unwrap();
        for (offset, len) in [(0, data.len()), (5, 1), (CHUNK - 1, CHUNK + 2), (100, 0)] {
            let body = BlobBody::new(f.try_clone().unwrap(), offset as u64, len as u64);
            let got = collect(body).await.unwrap();
            assert_eq!(got, &data[offset..offset + len], "{offset}+{len}");
        }
    }

    /// A file whose pages are not in memory is read on the blocking pool, and reads the same.
    #[actix_web::test]
    async fn a_cold_file_is_read_on_the_pool() {
        let mut f = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..(2 * CHUNK + 7)).map(|i| (i % 13) as u8).collect();
        f.write_all(&data).unwrap();
        f.sync_all().unwrap();
        // Clean pages can be dropped from the page cache: the reads below find nothing there.
        rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::DontNeed).unwrap();
        let cached = read_into(&mut BytesMut::new(), &f, 0, 10, ReadWriteFlags::NOWAIT);
        let body = BlobBody::new(f.try_clone().unwrap(), 0, data.len() as u64);
        assert_eq!(collect(body).await.unwrap(), data);
        // Where the filesystem keeps everything in memory (tmpfs) the first read finds it.
        if let Err(e) = cached {
            assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        }
    }

    #[actix_web::test]
    async fn a_file_shorter_than_promised_is_an_error() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(b"short").unwrap();
        let body = BlobBody::new(f, 0, 10);
        let err = collect(body).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }
}
