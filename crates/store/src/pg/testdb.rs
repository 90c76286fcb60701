//! A throwaway PostgreSQL server for the tests, from the binaries on this machine: `initdb`
//! into a temporary directory, then a server on 127.0.0.1 only, on a free port, with its
//! sockets in that directory. PostgreSQL refuses to run as root, so as root it runs as the
//! `postgres` user. Kept in this one file so that a shared test kit can replace it.
//!
//! Without the binaries a test says SKIPPED and passes, except under `CI=true`, which must
//! run it.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A running server, stopped when dropped.
pub(crate) struct TestServer {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
    /// Owns `dir`; `None` for the shared server, whose directory goes at exit.
    _temp: Option<tempfile::TempDir>,
}

/// Where `initdb` and `pg_ctl` are: on the PATH, or Debian's versioned folders.
fn binaries() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    debian.sort_by_key(|p| {
        std::cmp::Reverse(
            p.parent()
                .and_then(|v| v.file_name()?.to_str()?.parse::<u32>().ok())
                .unwrap_or(0),
        )
    });
    on_path
        .into_iter()
        .chain(debian)
        .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

impl TestServer {
    /// Starts a server of its own; `None`, after saying SKIPPED, when PostgreSQL is missing.
    pub(crate) fn start() -> Option<TestServer> {
        let Some(bin) = binaries() else {
            let why = "PostgreSQL's initdb and pg_ctl are neither on the PATH nor under \
                       /usr/lib/postgresql/*/bin";
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{why}; CI=true needs it");
            }
            eprintln!("SKIPPED: {why}");
            return None;
        };
        let temp = tempfile::Builder::new()
            .prefix("shoebox-pg-")
            .tempdir()
            .expect("a temporary directory");
        let as_postgres = rustix::process::geteuid().is_root();
        let server = TestServer {
            dir: temp.path().to_owned(),
            bin,
            port: free_port(),
            as_postgres,
            _temp: Some(temp),
        };
        if as_postgres {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&server.dir)
                .status()
                .expect("chown runs");
            assert!(status.success(), "chown the test database's directory");
        }
        server.tool(
            "initdb",
            &[
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
                "-D",
            ],
            &[server.data()],
        );
        server.up();
        Some(server)
    }

    /// The server the tests of this module share, started by the first that asks.
    pub(crate) fn shared() -> Option<&'static TestServer> {
        static SHARED: OnceLock<Option<TestServer>> = OnceLock::new();
        SHARED
            .get_or_init(|| {
                let mut server = TestServer::start()?;
                // Statics are never dropped: stop it, and remove its directory, at exit.
                let temp = server._temp.take();
                std::mem::forget(temp);
                extern "C" fn stop_shared() {
                    if let Some(Some(server)) = SHARED.get() {
                        server.stop();
                        let _ = std::fs::remove_dir_all(&server.dir);
                    }
                }
                // SAFETY: registers a plain function with no arguments to run at exit.
                unsafe { libc::atexit(stop_shared) };
                Some(server)
            })
            .as_ref()
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Runs one of the server's programs, as `postgres` when we are root; its output when it
    /// fails.
    fn try_tool(&self, name: &str, args: &[&str], paths: &[PathBuf]) -> Result<(), String> {
        let program = self.bin.join(name);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        let out = cmd
            .args(args)
            .args(paths)
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            return Ok(());
        }
        Err(format!(
            "{name} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }

    fn tool(&self, name: &str, args: &[&str], paths: &[PathBuf]) {
        if let Err(e) = self.try_tool(name, args, paths) {
            panic!("{e}");
        }
    }

    /// Starts the server on its port and waits (at most 30 s) until it takes connections.
    /// Without fsyncs, which only a machine's crash would miss; commits stay synchronous, so
    /// that a killed server keeps what it acknowledged.
    fn up(&self) {
        let options = format!(
            "-k {} -p {} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off \
             -c max_connections=200",
            self.dir.display(),
            self.port
        );
        let paths = [
            self.dir.join("log"),
            "-D".into(),
            self.data(),
            "start".into(),
        ];
        let deadline = Instant::now() + Duration::from_secs(30);
        // After a kill, the old server's processes may hold its shared memory for a moment:
        // its start then fails, and is tried again.
        while let Err(e) =
            self.try_tool("pg_ctl", &["-w", "-t", "20", "-o", &options, "-l"], &paths)
        {
            assert!(Instant::now() < deadline, "{e}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// A connection string for database `db`.
    pub(crate) fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// A new, empty database; answers its URL.
    pub(crate) fn database(&self) -> String {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!("t{}", N.fetch_add(1, Ordering::SeqCst));
        self.admin(&format!("CREATE DATABASE {name}"));
        self.url(&name)
    }

    /// Runs SQL in the `postgres` database.
    pub(crate) fn admin(&self, sql: &str) {
        execute(&self.url("postgres"), sql);
    }

    fn pid(&self) -> Option<libc::pid_t> {
        std::fs::read_to_string(self.data().join("postmaster.pid"))
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }

    /// Kills the server at once (SIGKILL to the postmaster), as a crash would.
    pub(crate) fn kill(&self) {
        if let Some(pid) = self.pid() {
            // SAFETY: a signal to a process we started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            wait_gone(pid);
        }
    }

    /// Starts the server again after [`kill`](Self::kill), on the same port.
    pub(crate) fn restart(&self) {
        self.up();
    }

    /// Stops the server without waiting for its clients (an immediate shutdown).
    fn stop(&self) {
        if let Some(pid) = self.pid() {
            // SAFETY: a signal to a process we started.
            unsafe { libc::kill(pid, libc::SIGQUIT) };
            wait_gone(pid);
        }
    }
}

/// Runs `f` with a connection to `url`, on a runtime of its own.
fn with_client<T>(url: &str, f: impl AsyncFnOnce(&tokio_postgres::Client) -> T) -> T {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .expect("connect to the test server");
        let task = tokio::spawn(conn);
        let answer = f(&client).await;
        drop(client);
        let _ = task.await;
        answer
    })
}

/// Runs SQL statements in the database at `url`.
pub(crate) fn execute(url: &str, sql: &str) {
    with_client(url, async |c| {
        c.batch_execute(sql)
            .await
            .expect("the test server runs SQL")
    });
}

/// The first column of the first row of a query, as a number.
pub(crate) fn number(url: &str, sql: &str) -> i64 {
    with_client(url, async |c| {
        c.query_one(sql, &[])
            .await
            .expect("the test server answers")
            .get::<_, i64>(0)
    })
}

/// Waits, at most 10 s, until a process has gone.
fn wait_gone(pid: libc::pid_t) {
    let deadline = Instant::now() + Duration::from_secs(10);
    // SAFETY: signal 0 only asks whether the process exists.
    while unsafe { libc::kill(pid, 0) } == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
    }
}
