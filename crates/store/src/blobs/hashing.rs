//! Hashing an upload as it is written: its sha256 (its address), and for writers that ask,
//! its MD5 (S3's ETag), each moved to a thread of its own once it would slow the writing.

use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::md5::Md5;
use crate::{ContentHash, StoreError};

/// Uploads longer than this are hashed on a thread of their own, beside the thread that
/// writes, so that a large upload is bound by the slower of the two rather than their sum.
const PARALLEL_HASH_AFTER: u64 = 1 << 20;
/// Chunks queued for that thread (network chunks, so at most a few MiB).
const HASH_QUEUE: usize = 64;

/// Where an upload's sha256 is computed.
pub(crate) enum Hashing {
    Here(Sha256),
    Beside {
        chunks: std::sync::mpsc::SyncSender<Bytes>,
        thread: std::thread::JoinHandle<Sha256>,
    },
}

impl Hashing {
    pub(crate) fn update(&mut self, data: Bytes, size_so_far: u64) -> Result<(), StoreError> {
        if let Hashing::Here(hasher) = self {
            if size_so_far < PARALLEL_HASH_AFTER {
                hasher.update(&data);
                return Ok(());
            }
            let mut theirs = hasher.clone();
            let (tx, rx) = std::sync::mpsc::sync_channel::<Bytes>(HASH_QUEUE);
            let started = std::thread::Builder::new()
                .name("shoebox-hash".into())
                .spawn(move || {
                    for chunk in rx {
                        theirs.update(&chunk);
                    }
                    theirs
                });
            // Without a thread to spare, hashing simply stays here.
            if let Ok(thread) = started {
                *self = Hashing::Beside { chunks: tx, thread };
            }
        }
        match self {
            Hashing::Here(hasher) => hasher.update(&data),
            Hashing::Beside { chunks, .. } => chunks.send(data).map_err(|_| {
                StoreError::io(
                    "hash an upload",
                    std::io::Error::other("the hashing thread stopped"),
                )
            })?,
        }
        Ok(())
    }

    pub(super) fn finish(self) -> Result<ContentHash, StoreError> {
        Ok(ContentHash(self.into_state()?.finalize().into()))
    }

    /// The hasher's state, with every byte handed over so far hashed: a resumable upload
    /// keeps it between its chunks.
    pub(crate) fn into_state(self) -> Result<Sha256, StoreError> {
        Ok(match self {
            Hashing::Here(hasher) => hasher,
            Hashing::Beside { chunks, thread } => {
                drop(chunks);
                thread.join().map_err(|_| {
                    StoreError::io(
                        "hash an upload",
                        std::io::Error::other("the hashing thread panicked"),
                    )
                })?
            }
        })
    }
}

/// An upload's MD5, computed on a thread of its own from the first byte: MD5 costs about as
/// much as the rest of an upload's work together, and on that thread it neither slows the
/// writing nor the receiving of the bytes.
pub(super) enum Md5Thread {
    Beside {
        chunks: std::sync::mpsc::SyncSender<Bytes>,
        thread: std::thread::JoinHandle<[u8; 16]>,
    },
    /// Without a thread to spare, the MD5 is computed on the writing thread.
    Here(Md5),
}

impl Md5Thread {
    pub(super) fn start() -> Md5Thread {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Bytes>(HASH_QUEUE);
        let started = std::thread::Builder::new()
            .name("shoebox-md5".into())
            .spawn(move || {
                let mut md5 = Md5::new();
                for chunk in rx {
                    md5.update(&chunk);
                }
                md5.finalize()
            });
        match started {
            Ok(thread) => Md5Thread::Beside { chunks: tx, thread },
            Err(_) => Md5Thread::Here(Md5::new()),
        }
    }

    pub(super) fn update(&mut self, data: &Bytes) -> Result<(), StoreError> {
        match self {
            Md5Thread::Beside { chunks, .. } => chunks.send(data.clone()).map_err(|_| {
                StoreError::io(
                    "hash an upload",
                    std::io::Error::other("the MD5 thread stopped"),
                )
            }),
            Md5Thread::Here(md5) => {
                md5.update(data);
                Ok(())
            }
        }
    }

    pub(super) fn finish(self) -> Result<[u8; 16], StoreError> {
        match self {
            Md5Thread::Beside { chunks, thread } => {
                drop(chunks);
                thread.join().map_err(|_| {
                    StoreError::io(
                        "hash an upload",
                        std::io::Error::other("the MD5 thread panicked"),
                    )
                })
            }
            Md5Thread::Here(md5) => Ok(md5.finalize()),
        }
    }
}
