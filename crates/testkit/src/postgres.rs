//! A PostgreSQL server of the test's own: initdb into a temporary directory, then `postgres` on a
//! free port of 127.0.0.1 with its unix socket in that directory, trust authentication for the
//! user `postgres`, and fsync left on (the crash tests count on committed rows surviving).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use tempfile::TempDir;

use crate::process::{self, is_executable, on_path, poll, run, spawn_logged, tail};
use crate::unavailable;

/// How long a (re)start may take to accept connections; recovery after a kill is part of it.
const READY: Duration = Duration::from_secs(60);

/// A running PostgreSQL server; stopped and deleted on drop.
pub struct Postgres {
    dir: TempDir,
    tools: Tools,
    /// `runuser` when we are root, which PostgreSQL refuses to run as.
    runuser: Option<PathBuf>,
    port: u16,
    /// The server process: `postgres` itself, or the `runuser` above it. None once killed.
    child: Option<Child>,
}

struct Tools {
    initdb: PathBuf,
    postgres: PathBuf,
    psql: PathBuf,
    createdb: PathBuf,
}

impl Postgres {
    /// Starts a fresh server, or returns None after [`unavailable`] when PostgreSQL's programs
    /// (or, as root, `runuser` and a `postgres` user) are missing.
    pub fn start() -> Option<Postgres> {
        let Some(tools) = find_tools() else {
            unavailable(
                "PostgreSQL's programs (initdb, postgres, psql, createdb on PATH or under \
                 /usr/lib/postgresql/*/bin; apt-get install postgresql)",
            );
            return None;
        };
        // SAFETY: geteuid(2) cannot fail and touches no memory.
        let root = unsafe { libc::geteuid() } == 0;
        let (runuser, owner) = if root {
            let runuser = on_path("runuser")
                .or_else(|| Some(PathBuf::from("/usr/sbin/runuser")).filter(|p| is_executable(p)));
            match (runuser, postgres_user()) {
                (Some(runuser), Some(ids)) => (Some(runuser), Some(ids)),
                _ => {
                    unavailable(
                        "runuser and a `postgres` user (PostgreSQL refuses to run as root)",
                    );
                    return None;
                }
            }
        } else {
            (None, None)
        };
        // In the system's temporary directory, which the `postgres` user can reach: the data
        // directory's parents must be searchable by the server's user.
        let dir = tempfile::Builder::new()
            .prefix("shoebox-pg-")
            .tempdir()
            .unwrap_or_else(|e| panic!("creating a temporary directory: {e}"));
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .unwrap_or_else(|e| panic!("chown {} to postgres: {e}", dir.path().display()));
        }
        let mut pg = Postgres {
            dir,
            tools,
            runuser,
            port: process::free_ports(1)[0],
            child: None,
        };
        pg.initdb();
        pg.launch();
        Some(pg)
    }

    /// A connection URL for database `name`, which is created first if it does not exist.
    pub fn database(&self, name: &str) -> String {
        let ran = run(
            self.client(&self.tools.createdb)
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    "postgres",
                ])
                .arg("--")
                .arg(name),
            Duration::from_secs(30),
        );
        if !ran.ok && !ran.stderr.contains("already exists") {
            panic!("createdb {name}: {}{}", ran.stdout, ran.stderr);
        }
        format!(
            "postgres://postgres@127.0.0.1:{}/{}",
            self.port,
            percent_encode(name)
        )
    }

    /// Runs `sql` (one statement or several, separated by `;`) in database `db` with psql, as
    /// `postgres`, and answers what it printed: rows unaligned, `|` between columns, without
    /// headers, trimmed. Panics with psql's output if a statement fails or the server does not
    /// answer.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let ran = run(
            self.client(&self.tools.psql)
                .args(["-X", "-w", "-h", "127.0.0.1", "-p", &self.port.to_string()])
                .args(["-U", "postgres", "-v", "ON_ERROR_STOP=1", "-tA"])
                .args(["-d", db, "-c", sql]),
            Duration::from_secs(60),
        );
        if !ran.ok {
            panic!("psql -d {db} -c {sql:?}: {}{}", ran.stdout, ran.stderr);
        }
        ran.stdout.trim().to_owned()
    }

    /// Turns TLS on with this certificate chain and key (PEM), and waits until new
    /// connections are offered it. Connections without TLS are still accepted.
    pub fn enable_tls(&self, cert_pem: &[u8], key_pem: &[u8]) {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let data = self.data();
        let owner = fs::metadata(&data).expect("the data directory");
        for (name, bytes) in [("server.crt", cert_pem), ("server.key", key_pem)] {
            let path = data.join(name);
            fs::write(&path, bytes).unwrap_or_else(|e| panic!("writing {name}: {e}"));
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600))
                .unwrap_or_else(|e| panic!("chmod {name}: {e}"));
            std::os::unix::fs::chown(&path, Some(owner.uid()), Some(owner.gid()))
                .unwrap_or_else(|e| panic!("chown {name}: {e}"));
        }
        self.psql("postgres", "ALTER SYSTEM SET ssl = on");
        self.psql("postgres", "SELECT pg_reload_conf()");
        let on = poll(READY, || self.psql("postgres", "SHOW ssl") == "on");
        if !on {
            panic!("PostgreSQL did not turn TLS on");
        }
    }

    /// The TCP port on 127.0.0.1; it stays the same across `kill` and `restart`.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// SIGKILLs the postmaster, as a crash would, and waits until it and every server process
    /// it started are gone. Only the postmaster is signalled so that its parent reaps it: a
    /// postmaster left as a zombie would keep its PID "alive" for the next start's lock-file
    /// check. Idle backends notice its death and exit by themselves; one busy in a query
    /// notices only when it next waits, and is killed as the crash would have: a backend left
    /// running keeps the shared memory in use, and the next start refuses to run beside it.
    pub fn kill(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pgid = child.id() as libc::pid_t;
        let postmaster = self.postmaster_pid().unwrap_or(pgid);
        // SAFETY: kill(2) takes a pid and a signal number; it touches no memory.
        unsafe { libc::kill(postmaster, libc::SIGKILL) };
        if !process::reap(&mut child, Duration::from_secs(10)) {
            panic!("PostgreSQL's server did not exit after SIGKILL");
        }
        let gone = || !process::group_running(pgid) && self.server_processes().is_empty();
        if !poll(Duration::from_secs(2), gone) {
            // SAFETY: as above, for the process group and for each server process.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
            for pid in self.server_processes() {
                // SAFETY: as above.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            if !poll(Duration::from_secs(10), gone) {
                panic!("PostgreSQL's processes still run after SIGKILL");
            }
        }
    }

    /// Starts the server again on the same port and data directory (killing it first if it
    /// runs) and waits until it accepts connections, its crash recovery done.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }

    fn initdb(&self) {
        let log = self.dir.path().join("initdb.log");
        // --no-sync: initdb's own files need not reach the disk for a test that only kills
        // processes; the server's fsync stays on.
        let ran = run(
            self.server(&self.tools.initdb)
                .arg("-D")
                .arg(self.data())
                .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C"])
                .arg("--no-sync"),
            Duration::from_secs(120),
        );
        let _ = fs::write(&log, format!("{}{}", ran.stdout, ran.stderr));
        if !ran.ok {
            panic!("initdb failed\n{}", tail(&log, 30));
        }
    }

    fn launch(&mut self) {
        let log = self.dir.path().join("postgres.log");
        let mut cmd = self.server(&self.tools.postgres);
        cmd.arg("-D")
            .arg(self.data())
            .args(["-p", &self.port.to_string(), "-k"])
            .arg(self.dir.path())
            .args(["-c", "listen_addresses=127.0.0.1"])
            // Dynamic shared memory as files in the data directory, not in /dev/shm, so that
            // a killed server leaves nothing behind outside its temporary directory.
            .args(["-c", "dynamic_shared_memory_type=mmap"]);
        let mut child = spawn_logged(&mut cmd, &log);
        let ready = poll(READY, || {
            if !matches!(child.try_wait(), Ok(None)) {
                return true;
            }
            self.accepts_connections()
        });
        if !matches!(child.try_wait(), Ok(None)) {
            panic!("PostgreSQL exited while starting\n{}", tail(&log, 30));
        }
        self.child = Some(child);
        if !ready {
            panic!(
                "PostgreSQL does not accept connections after {READY:?}\n{}",
                tail(&log, 30)
            );
        }
    }

    fn accepts_connections(&self) -> bool {
        run(
            self.client(&self.tools.psql)
                .args(["-X", "-w", "-h", "127.0.0.1", "-p", &self.port.to_string()])
                .args(["-U", "postgres", "-d", "postgres", "-tAc", "SELECT 1"]),
            Duration::from_secs(10),
        )
        .ok
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The server's processes still alive (zombies aside): those whose working directory is
    /// the data directory, where the postmaster moves before it forks any. Each backend leads
    /// a session of its own, so the postmaster's process group does not hold them.
    fn server_processes(&self) -> Vec<libc::pid_t> {
        let Ok(data) = fs::canonicalize(self.data()) else {
            return Vec::new();
        };
        let Ok(entries) = fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|entry| entry.file_name().to_str()?.parse::<libc::pid_t>().ok())
            .filter(|pid| fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd == data))
            .collect()
    }

    /// The postmaster's PID, from the first line of `postmaster.pid`.
    fn postmaster_pid(&self) -> Option<libc::pid_t> {
        let text = fs::read_to_string(self.data().join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    /// A command for a server program, as the `postgres` user when we are root.
    fn server(&self, program: &Path) -> Command {
        let mut cmd = match &self.runuser {
            Some(runuser) => {
                let mut cmd = Command::new(runuser);
                cmd.args(["-u", "postgres", "--"]).arg(program);
                cmd
            }
            None => Command::new(program),
        };
        cmd.current_dir(self.dir.path());
        without_pg_env(&mut cmd);
        cmd
    }

    /// A command for a client program, which connects over TCP as any local user.
    fn client(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        without_pg_env(&mut cmd);
        cmd
    }

    /// After a kill without a restart, the postmaster's System V interlock segment outlives
    /// it (the next start would have removed it): remove it when nothing is attached.
    fn remove_orphaned_shared_memory(&self) {
        let Ok(text) = fs::read_to_string(self.data().join("postmaster.pid")) else {
            return;
        };
        let lines: Vec<&str> = text.lines().collect();
        let pid = lines
            .first()
            .and_then(|l| l.trim().parse::<libc::pid_t>().ok());
        let shmid = lines
            .get(6)
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|id| id.parse::<libc::c_int>().ok());
        let (Some(pid), Some(shmid)) = (pid, shmid) else {
            return;
        };
        // SAFETY: shmctl(2) fills `ds`, a plain C struct we own, or fails.
        unsafe {
            let mut ds: libc::shmid_ds = std::mem::zeroed();
            if libc::shmctl(shmid, libc::IPC_STAT, &mut ds) == 0
                && ds.shm_cpid == pid
                && ds.shm_nattch == 0
            {
                libc::shmctl(shmid, libc::IPC_RMID, std::ptr::null_mut());
            }
        }
    }
}

impl Drop for Postgres {
    /// An immediate shutdown (SIGQUIT): the postmaster stops its processes and removes its
    /// shared memory without a checkpoint. SIGKILL for the group if it takes too long.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pgid = child.id() as libc::pid_t;
            let postmaster = self.postmaster_pid().unwrap_or(pgid);
            // SAFETY: kill(2) takes a pid and a signal number; it touches no memory.
            unsafe { libc::kill(postmaster, libc::SIGQUIT) };
            if !poll(Duration::from_secs(15), || {
                !matches!(child.try_wait(), Ok(None))
            }) {
                // SAFETY: as above, for the process group.
                unsafe { libc::kill(-pgid, libc::SIGKILL) };
                let _ = child.wait();
            }
            poll(Duration::from_secs(10), || !process::group_running(pgid));
        }
        self.remove_orphaned_shared_memory();
    }
}

/// initdb, postgres, psql and createdb, from the first directory that has the server programs:
/// where `initdb` on PATH really lives (Debian links some programs into PATH and keeps their
/// siblings beside the real file), then /usr/lib/postgresql/*/bin, the highest version first.
fn find_tools() -> Option<Tools> {
    let mut dirs = Vec::new();
    if let Some(initdb) = on_path("initdb") {
        if let Some(real) = fs::canonicalize(&initdb)
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
        {
            dirs.push(real);
        }
        dirs.extend(initdb.parent().map(Path::to_path_buf));
    }
    let mut versions: Vec<(Vec<u32>, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let version = name
                .split('.')
                .map(|n| n.parse().ok())
                .collect::<Option<Vec<u32>>>()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    versions.sort_by(|a, b| b.0.cmp(&a.0));
    dirs.extend(versions.into_iter().map(|(_, dir)| dir));
    let bin = dirs
        .into_iter()
        .find(|d| is_executable(&d.join("initdb")) && is_executable(&d.join("postgres")))?;
    let beside_or_on_path = |name: &str| {
        Some(bin.join(name))
            .filter(|p| is_executable(p))
            .or_else(|| on_path(name))
    };
    Some(Tools {
        initdb: bin.join("initdb"),
        postgres: bin.join("postgres"),
        psql: beside_or_on_path("psql")?,
        createdb: beside_or_on_path("createdb")?,
    })
}

/// The `postgres` user's uid and gid, from /etc/passwd.
fn postgres_user() -> Option<(u32, u32)> {
    let passwd = fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        match fields.as_slice() {
            ["postgres", _, uid, gid, ..] => Some((uid.parse().ok()?, gid.parse().ok()?)),
            _ => None,
        }
    })
}

/// PG* variables (PGHOST, PGPASSWORD, PGDATA...) would point the programs elsewhere.
fn without_pg_env(cmd: &mut Command) {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PG") {
            cmd.env_remove(key);
        }
    }
}

/// A database name as a URL path segment.
fn percent_encode(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
