//! A reference for the many-uploads workload of the side-by-side benchmark: the least disk work
//! that Shoebox's write protocol does for each upload, with no HTTP, no hashing and no
//! database, so that the table can show what this machine allows before any server code runs.
//!
//! Each of PARALLEL threads takes the next of COUNT files and, like an upload:
//! 1. writes SIZE bytes (distinct for every file) to a new file in `tmp/`;
//! 2. renames it to `blobs/ab/cd/<name>`, creating the fan-out directories when missing;
//! 3. with `records`, writes a small record file `records/<n>.json`, as Shoebox does;
//! 4. appends the record to one shared log, standing in for the metadata database's log;
//! 5. fsyncs the file and its directory (and the directories it created), one after the other
//!    (on two cores this costs less than side by side), then fdatasyncs the log, one
//!    fdatasync shared by the uploads waiting at that moment (group commit, as Shoebox shares
//!    sled's flushes);
//! 6. with `records`, hands the record file to a thread that makes the files it has gathered
//!    for 50 ms durable with one `syncfs(2)`, after the upload counts as done, as Shoebox
//!    does on this kind of filesystem. The time measured ends with the last upload, as the
//!    client's does with the last `201`.
//!
//! With `syncfs`, step 5 is instead one `syncfs(2)` shared by the uploads waiting at that
//! moment: the most that the kernel lets concurrent writers batch, since it writes every
//! file's data and metadata in one pass and flushes the disk once. No per-file fsync can do
//! better, so this bounds any durable server with this layout, whatever its code.
//!
//! ```text
//! bench-protocol DIR COUNT SIZE PARALLEL SEED [records] [syncfs]
//! ```
//! It prints one line: `seconds=…`. DIR must not exist yet; it is left in place.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

/// One fdatasync of the log for every writer that appended before it started.
struct GroupSync {
    appended: AtomicU64,
    state: Mutex<(u64, bool)>,
    done: Condvar,
}

impl GroupSync {
    /// Returns once a `sync` that started after this call has succeeded.
    fn wait(&self, sync: impl Fn() -> std::io::Result<()>) -> std::io::Result<()> {
        let mine = self.appended.fetch_add(1, Ordering::SeqCst) + 1;
        let mut st = self.state.lock().expect("not poisoned");
        loop {
            if st.0 >= mine {
                return Ok(());
            }
            if st.1 {
                st = self.done.wait(st).expect("not poisoned");
                continue;
            }
            st.1 = true;
            let target = self.appended.load(Ordering::SeqCst);
            drop(st);
            let result = sync();
            st = self.state.lock().expect("not poisoned");
            st.1 = false;
            if result.is_ok() {
                st.0 = st.0.max(target);
            }
            self.done.notify_all();
            result?;
        }
    }
}

/// splitmix64: names spread over the fan-out directories like content hashes do.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Record files on their way to the disk, made durable in batches behind the uploads.
struct RecordSync {
    queue: Mutex<(Vec<File>, bool)>,
    work: Condvar,
}

impl RecordSync {
    fn run(&self) {
        loop {
            let mut q = self.queue.lock().expect("not poisoned");
            while q.0.is_empty() && !q.1 {
                q = self.work.wait(q).expect("not poisoned");
            }
            if q.0.is_empty() {
                return;
            }
            drop(q);
            std::thread::sleep(std::time::Duration::from_millis(50));
            let batch = std::mem::take(&mut self.queue.lock().expect("not poisoned").0);
            if let Err(e) = rustix::fs::syncfs(&batch[0]) {
                eprintln!("syncfs: {e}");
                std::process::exit(1);
            }
        }
    }
}

struct Job {
    dir: PathBuf,
    size: usize,
    seed: u64,
    records: bool,
    syncfs: bool,
    log: File,
    group: GroupSync,
    record_sync: RecordSync,
    body: Vec<u8>,
}

impl Job {
    fn upload(&self, n: u64) -> std::io::Result<()> {
        let name: String = (0..4)
            .map(|k| format!("{:016x}", mix(self.seed ^ (n << 2 | k))))
            .collect();
        let tmp = self.dir.join("tmp").join(format!("upload-{n}"));
        let mut file = File::create(&tmp)?;
        file.write_all(&n.to_le_bytes())?;
        file.write_all(&self.body[8..])?;
        let leaf = self.dir.join("blobs").join(&name[0..2]).join(&name[2..4]);
        let mid = leaf.parent().expect("has a parent").to_owned();
        let (mid_new, leaf_new) = (!mid.exists(), !leaf.exists());
        fs::create_dir_all(&leaf)?;
        fs::rename(&tmp, leaf.join(&name))?;
        let record = format!(
            "{{\n  \"id\": \"{n:026}\",\n  \"hash\": \"{name}\",\n  \"size\": {},\n  \
             \"filename\": \"many-{n}.bin\",\n  \"title\": \"\",\n  \"tags\": []\n}}\n",
            self.size
        );
        let record_file = if self.records {
            let mut f = File::create(self.dir.join("records").join(format!("{n}.json")))?;
            f.write_all(record.as_bytes())?;
            Some(f)
        } else {
            None
        };
        (&self.log).write_all(record.as_bytes())?;
        if self.syncfs {
            drop((file, record_file));
            return self
                .group
                .wait(|| rustix::fs::syncfs(&self.log).map_err(std::io::Error::from));
        }
        file.sync_all()?;
        sync_dir(&leaf)?;
        if leaf_new {
            sync_dir(&mid)?;
        }
        if mid_new {
            sync_dir(&self.dir.join("blobs"))?;
        }
        self.group.wait(|| self.log.sync_data())?;
        if let Some(f) = record_file {
            self.record_sync
                .queue
                .lock()
                .expect("not poisoned")
                .0
                .push(f);
            self.record_sync.work.notify_one();
        }
        Ok(())
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: bench-protocol DIR COUNT SIZE PARALLEL SEED [records] [syncfs]";
    let num = |i: usize| -> u64 {
        args.get(i).and_then(|a| a.parse().ok()).unwrap_or_else(|| {
            eprintln!("{usage}");
            std::process::exit(2)
        })
    };
    let Some(dir) = args.first().map(PathBuf::from) else {
        eprintln!("{usage}");
        std::process::exit(2)
    };
    let (count, size, parallel, seed) = (num(1), num(2) as usize, num(3) as usize, num(4));
    let size = size.max(8);
    for sub in ["tmp", "blobs", "records"] {
        fs::create_dir_all(dir.join(sub)).expect("create the directories");
    }
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("log"))
        .expect("create the log");
    let job = Arc::new(Job {
        body: (0..size as u64).map(|i| mix(seed ^ i) as u8).collect(),
        dir,
        size,
        seed,
        records: args[5..].iter().any(|a| a == "records"),
        syncfs: args[5..].iter().any(|a| a == "syncfs"),
        log,
        group: GroupSync {
            appended: AtomicU64::new(0),
            state: Mutex::new((0, false)),
            done: Condvar::new(),
        },
        record_sync: RecordSync {
            queue: Mutex::new((Vec::new(), false)),
            work: Condvar::new(),
        },
    });
    let syncer = {
        let job = job.clone();
        std::thread::spawn(move || job.record_sync.run())
    };
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let threads: Vec<_> = (0..parallel)
        .map(|_| {
            let (job, next) = (job.clone(), next.clone());
            std::thread::spawn(move || loop {
                let n = next.fetch_add(1, Ordering::SeqCst) as u64;
                if n >= count {
                    return;
                }
                if let Err(e) = job.upload(n) {
                    eprintln!("file {n}: {e}");
                    std::process::exit(1);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a thread panicked");
    }
    let seconds = start.elapsed().as_secs_f64();
    job.record_sync.queue.lock().expect("not poisoned").1 = true;
    job.record_sync.work.notify_one();
    syncer.join().expect("the record thread panicked");
    println!("seconds={seconds:.6}");
}
