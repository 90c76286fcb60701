//! `TestServer`: the real `shoebox` binary on a free loopback port with a temporary data
//! directory, killed on drop.
#![allow(dead_code)]

pub mod clients;
pub mod crash;
pub mod mount;
pub mod tools;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::blocking::{multipart, Client, RequestBuilder, Response};
use serde_json::Value;
use sha2::{Digest, Sha256};

pub const TOKEN: &str = "test-admin-token-0123456789";

pub struct TestServer {
    child: Option<Child>,
    pub base: String,
    pub data_dir: PathBuf,
    /// Holds the temporary directory alive when the server owns it.
    _temp: Option<Arc<tempfile::TempDir>>,
    pub token: Option<String>,
    args: Vec<String>,
    output: Arc<Mutex<Vec<String>>>,
    client: Client,
}

pub struct Builder {
    data_dir: Option<PathBuf>,
    temp: Option<Arc<tempfile::TempDir>>,
    token: Option<String>,
    args: Vec<String>,
    /// For this start only: a restart goes without them.
    envs: Vec<(String, String)>,
    /// A descriptor limit (soft and hard) for the process, for this start only.
    nofile: Option<u64>,
}

impl Builder {
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.envs.push((key.to_owned(), value.to_owned()));
        self
    }
    pub fn data_dir(mut self, dir: &Path) -> Self {
        self.data_dir = Some(dir.to_owned());
        self
    }
    pub fn no_token(mut self) -> Self {
        self.token = None;
        self
    }
    pub fn arg(mut self, a: &str) -> Self {
        self.args.push(a.to_owned());
        self
    }
    /// Starts the server with at most `n` open files.
    pub fn nofile(mut self, n: u64) -> Self {
        self.nofile = Some(n);
        self
    }
    pub fn start(self) -> TestServer {
        let (data_dir, temp) = match self.data_dir {
            Some(d) => (d, self.temp),
            None => {
                let t = Arc::new(tempfile::tempdir().expect("temp dir"));
                (t.path().join("data"), Some(t))
            }
        };
        TestServer::spawn(
            data_dir,
            temp,
            self.token,
            self.args,
            &self.envs,
            self.nofile,
        )
        .expect("server starts")
    }
    /// Runs the binary expecting it to refuse to start; returns its exit status and output.
    pub fn start_expecting_failure(self) -> (ExitStatus, String) {
        let data_dir = self.data_dir.expect("a data dir");
        let mut cmd = base_command(&data_dir, self.token.as_deref(), &self.args);
        cmd.envs(self.envs);
        let out = cmd.output().expect("run shoebox");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status, text)
    }
}

fn base_command(data_dir: &Path, token: Option<&str>, args: &[String]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shoebox"));
    // A clean environment: the developer's own PORT or SHOEBOX_* must not leak in.
    cmd.env_clear()
        .env("RUST_LOG", "info")
        .arg("serve")
        .args(["--bind", "127.0.0.1", "--port", "0", "--workers", "2"])
        .arg("--data-dir")
        .arg(data_dir)
        .args(args);
    if let Some(t) = token {
        cmd.env("SHOEBOX_ADMIN_TOKEN", t);
    }
    cmd
}

impl TestServer {
    pub fn builder() -> Builder {
        Builder {
            data_dir: None,
            temp: None,
            token: Some(TOKEN.to_owned()),
            args: Vec::new(),
            envs: Vec::new(),
            nofile: None,
        }
    }

    pub fn start() -> TestServer {
        Self::builder().start()
    }

    fn spawn(
        data_dir: PathBuf,
        temp: Option<Arc<tempfile::TempDir>>,
        token: Option<String>,
        args: Vec<String>,
        envs: &[(String, String)],
        nofile: Option<u64>,
    ) -> Result<TestServer, String> {
        let mut cmd = base_command(&data_dir, token.as_deref(), &args);
        cmd.envs(envs.iter().map(|(k, v)| (k, v)));
        if let Some(n) = nofile {
            use std::os::unix::process::CommandExt;
            let limit = libc::rlimit {
                rlim_cur: n,
                rlim_max: n,
            };
            // Only async-signal-safe work between fork and exec: one system call.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| e.to_string())?;
        let output = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel::<String>();
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        for stream in [
            Box::new(stdout) as Box<dyn std::io::Read + Send>,
            Box::new(stderr),
        ] {
            let output = output.clone();
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if let Some(pos) = line.find("listening on http://") {
                        // Text or JSON logs: the URL runs until a quote or a space.
                        let addr: String = line[pos + "listening on ".len()..]
                            .chars()
                            .take_while(|c| !c.is_whitespace() && *c != '"')
                            .collect();
                        let _ = tx.send(addr);
                    }
                    output.lock().expect("output lock").push(line);
                }
            });
        }
        let base = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                let log = output.lock().expect("output lock").join("\n");
                return Err(format!("shoebox did not start:\n{log}"));
            }
        };
        let client = Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| e.to_string())?;
        let server = TestServer {
            child: Some(child),
            base,
            data_dir,
            _temp: temp,
            token,
            args,
            output,
            client,
        };
        server.wait_healthy();
        Ok(server)
    }

    fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(r) = self.client.get(self.url("/api/health")).send() {
                if r.status() == 200 {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("shoebox never became healthy:\n{}", self.output());
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn output(&self) -> String {
        self.output.lock().expect("output lock").join("\n")
    }

    pub fn get(&self, path: &str) -> RequestBuilder {
        self.client.get(self.url(path))
    }

    /// A request carrying the admin token.
    pub fn authed(&self, method: reqwest::Method, path: &str) -> RequestBuilder {
        let token = self.token.clone().unwrap_or_default();
        self.client
            .request(method, self.url(path))
            .bearer_auth(token)
    }

    /// A new API token of `scope` (`read`, `upload` or `admin`), made with the admin token.
    pub fn api_token(&self, name: &str, scope: &str) -> String {
        let res = self
            .authed(reqwest::Method::POST, "/api/tokens")
            .json(&serde_json::json!({"name": name, "scope": scope}))
            .send()
            .expect("POST /api/tokens");
        assert_eq!(res.status(), 201, "POST /api/tokens");
        res.json::<Value>().expect("a token")["token"]
            .as_str()
            .expect("the token's value")
            .to_owned()
    }

    /// The id of the API token named `name`, from the admin's listing.
    pub fn token_id(&self, name: &str) -> String {
        let listed: Value = self
            .authed(reqwest::Method::GET, "/api/tokens")
            .send()
            .expect("GET /api/tokens")
            .json()
            .expect("a token list");
        listed["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|t| t["name"] == name)
            .unwrap_or_else(|| panic!("no token named {name}: {listed}"))["id"]
            .as_str()
            .expect("an id")
            .to_owned()
    }

    /// Signs in to the web app with `token`: the session cookie, as `name=value`.
    pub fn session_cookie(&self, token: &str) -> String {
        let res = self
            .client()
            .post(self.url("/api/session"))
            .json(&serde_json::json!({ "token": token }))
            .send()
            .expect("POST /api/session");
        assert_eq!(res.status(), 200, "POST /api/session");
        res.headers()["set-cookie"]
            .to_str()
            .expect("a cookie")
            .split(';')
            .next()
            .unwrap_or_default()
            .to_owned()
    }

    /// New S3 credentials of `scope`, made with the admin token: the access key id and the
    /// secret access key.
    pub fn s3_key(&self, name: &str, scope: &str) -> (String, String) {
        let res = self
            .authed(reqwest::Method::POST, "/api/tokens")
            .json(&serde_json::json!({"name": name, "scope": scope, "s3": true}))
            .send()
            .expect("POST /api/tokens");
        assert_eq!(res.status(), 201, "POST /api/tokens with s3");
        let v = res.json::<Value>().expect("a token");
        let field = |k: &str| {
            v[k].as_str()
                .unwrap_or_else(|| panic!("{k} in {v}"))
                .to_owned()
        };
        (field("access_key_id"), field("secret_access_key"))
    }

    /// The S3 API's address when the server serves it on a port of its own (`--s3-port`).
    pub fn s3_url(&self) -> String {
        const SAID: &str = "S3 API served on ";
        let out = self.output();
        let at = out
            .find(SAID)
            .unwrap_or_else(|| panic!("the server serves no S3 port:\n{out}"));
        out[at + SAID.len()..]
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != '"')
            .collect()
    }

    /// The bytes served at `/m/{id}`, fetched with the admin token.
    pub fn media_bytes(&self, id: &str) -> Vec<u8> {
        self.authed(reqwest::Method::GET, &format!("/m/{id}"))
            .send()
            .expect("GET /m/{id}")
            .bytes()
            .expect("a body")
            .to_vec()
    }

    /// Deletes a record with the admin token; panics unless 204.
    pub fn delete_media(&self, id: &str) {
        let res = self
            .authed(reqwest::Method::DELETE, &format!("/api/media/{id}"))
            .send()
            .expect("DELETE /api/media/{id}");
        assert_eq!(res.status(), 204, "DELETE /api/media/{id}");
    }

    /// Uploads one file by multipart with extra text fields; panics unless 201.
    pub fn upload(&self, filename: &str, bytes: &[u8], fields: &[(&str, &str)]) -> Value {
        let res = self.upload_raw_response(filename, bytes, fields);
        let status = res.status();
        let body: Value = res.json().expect("json body");
        assert_eq!(status, 201, "upload failed: {body}");
        body["items"][0].clone()
    }

    /// Posts a multipart form to `/api/media`; panics unless 201, returns the items.
    pub fn upload_form(&self, form: multipart::Form) -> Vec<Value> {
        let res = self
            .authed(reqwest::Method::POST, "/api/media")
            .multipart(form)
            .send()
            .expect("upload request");
        let status = res.status();
        let body: Value = res.json().expect("json body");
        assert_eq!(status, 201, "upload failed: {body}");
        body["items"].as_array().expect("items").clone()
    }

    pub fn upload_raw_response(
        &self,
        filename: &str,
        bytes: &[u8],
        fields: &[(&str, &str)],
    ) -> Response {
        let mut form = multipart::Form::new().part(
            "file",
            multipart::Part::bytes(bytes.to_vec()).file_name(filename.to_owned()),
        );
        for (k, v) in fields {
            form = form.text(k.to_string(), v.to_string());
        }
        self.authed(reqwest::Method::POST, "/api/media")
            .multipart(form)
            .send()
            .expect("upload request")
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// SIGKILL: no chance to flush or clean up.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait: the graceful path. Returns the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut c = self.child.take().expect("running");
        unsafe {
            libc::kill(c.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            if let Some(status) = c.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                panic!("shoebox did not stop within 40 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts a new process on the same data directory (after kill or terminate).
    pub fn restart(mut self) -> TestServer {
        self.kill();
        let temp = self._temp.take();
        TestServer::spawn(
            self.data_dir.clone(),
            temp,
            self.token.clone(),
            self.args.clone(),
            &[],
            None,
        )
        .unwrap_or_else(|e| {
            panic!(
                "restart: {e}\nprocesses with {}/FORMAT open: {:?}",
                self.data_dir.display(),
                holders(&self.data_dir.join("FORMAT"))
            )
        })
    }

    pub fn tmp_entries(&self) -> Vec<String> {
        entries(&self.data_dir.join("tmp"))
    }

    /// `/api/status`, as the admin sees it.
    pub fn status(&self) -> Value {
        let res = self
            .authed(reqwest::Method::GET, "/api/status")
            .send()
            .expect("status");
        assert_eq!(res.status(), 200);
        res.json().expect("status json")
    }

    /// `/metrics`, as the admin sees it: Prometheus's text format.
    pub fn metrics(&self) -> String {
        let res = self
            .authed(reqwest::Method::GET, "/metrics")
            .send()
            .expect("metrics");
        assert_eq!(res.status(), 200);
        res.text().expect("metrics text")
    }

    pub fn blob_path(&self, hash: &str) -> PathBuf {
        blob_path(&self.data_dir, hash)
    }

    pub fn blob_count(&self) -> usize {
        blob_files(&self.data_dir)
    }

    /// A plain TCP connection to the server, for requests a client library will not send.
    pub fn raw(&self) -> std::net::TcpStream {
        let addr = self.base.trim_start_matches("http://");
        let conn = std::net::TcpStream::connect(addr).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        conn
    }
}

/// Where the blob named `hash` lives under `data_dir`.
pub fn blob_path(data_dir: &Path, hash: &str) -> PathBuf {
    data_dir
        .join("blobs/sha256")
        .join(&hash[0..2])
        .join(&hash[2..4])
        .join(hash)
}

/// How many blob files `data_dir` holds.
pub fn blob_files(data_dir: &Path) -> usize {
    let root = data_dir.join("blobs/sha256");
    let mut n = 0;
    for a in entries(&root) {
        for b in entries(&root.join(&a)) {
            n += entries(&root.join(&a).join(&b)).len();
        }
    }
    n
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn entries(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
pub fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Polls until `f` holds or the time runs out.
pub fn eventually(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("timed out waiting for: {what}");
}

/// The JSON error code of a response, asserting its status.
pub fn error_code(res: Response, status: u16) -> String {
    assert_eq!(res.status(), status, "unexpected status");
    let v: Value = res.json().expect("error bodies are JSON");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{v}"
    );
    v["error"]["code"].as_str().unwrap_or_default().to_owned()
}

/// Runs a `shoebox` subcommand against a data directory; returns (exit code, stdout+stderr).
pub fn run_cli(args: &[&str], data_dir: &Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_shoebox"))
        .env_clear()
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .expect("run shoebox");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

/// Every record, newest first, through the API with the admin token.
pub fn all_records(s: &TestServer) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor = String::new();
    for _ in 0..1000 {
        let page: Value = s
            .authed(
                reqwest::Method::GET,
                &format!("/api/media?limit=500&cursor={cursor}"),
            )
            .send()
            .expect("list")
            .json()
            .expect("json");
        out.extend(page["items"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => return out,
        }
    }
    panic!("listing never ended");
}

/// A test that cannot get its real dependency (root, a loop device, a tool): under `CI=true`
/// it fails, so that CI never passes a test that did not run; elsewhere it says why it skips.
pub fn unavailable(what: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{what}; CI=true needs it");
    }
    // Straight to stderr: the test harness swallows eprintln! of passing tests, and a test
    // that did not run must not pass without a word.
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED: {what}");
}

/// Reads until the server closes or answers a whole response head; returns what came.
pub fn read_answer(conn: &mut std::net::TcpStream) -> String {
    use std::io::Read;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&got);
                if let Some(end) = text.find("\r\n\r\n") {
                    let length = text[..end]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if got.len() >= end + 4 + length {
                        break;
                    }
                }
            }
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// Appends a PNG chunk (length, type, data, CRC) to `out`: for tests that build PNGs byte by
/// byte, such as a decompression bomb no encoder would make.
pub fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

fn adler32(bytes: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &x in bytes {
        a = (a + u32::from(x)) % 65521;
        b = (b + a) % 65521;
    }
    (b << 16) | a
}

/// An RGB PNG of `width`×`height` whose pixels come from `pixel(x, y)`.
pub fn png(width: u32, height: u32, pixel: impl Fn(u32, u32) -> [u8; 3]) -> Vec<u8> {
    let mut raw = Vec::with_capacity(((width * 3 + 1) * height) as usize);
    for y in 0..height {
        raw.push(0); // filter: none
        for x in 0..width {
            raw.extend_from_slice(&pixel(x, y));
        }
    }
    let mut z = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = raw.chunks(65_535).collect();
    for (i, block) in blocks.iter().enumerate() {
        z.push(u8::from(i + 1 == blocks.len()));
        let len = block.len() as u16;
        z.extend_from_slice(&len.to_le_bytes());
        z.extend_from_slice(&(!len).to_le_bytes());
        z.extend_from_slice(block);
    }
    z.extend_from_slice(&adler32(&raw).to_be_bytes());

    let mut out = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    png_chunk(&mut out, b"IHDR", &ihdr);
    png_chunk(&mut out, b"IDAT", &z);
    png_chunk(&mut out, b"IEND", &[]);
    out
}

/// A small, seeded random source for the crash tests, so that a failed run can be replayed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }

    /// Sizes from 100 bytes to `max`, spread evenly over the orders of magnitude.
    pub fn size(&mut self, max: usize) -> usize {
        let exp = (self.next() % 1000) as f64 / 1000.0 * (max as f64 / 100.0).ln();
        (100.0 * exp.exp()) as usize
    }
}

/// A crash test's rounds and randomness: `SHOEBOX_CRASH_ROUNDS` (else `default_rounds`) kills,
/// and a seed from `SHOEBOX_CRASH_SEED` (which replays a failed run) or the clock, printed so
/// that a failure names it.
pub fn crash_plan(what: &str, default_rounds: usize) -> (usize, Rng) {
    let number = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    let rounds = number("SHOEBOX_CRASH_ROUNDS").map_or(default_rounds, |n| n as usize);
    let seed = number("SHOEBOX_CRASH_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    });
    eprintln!("{what} seed {seed} (SHOEBOX_CRASH_SEED={seed} replays it), {rounds} rounds");
    (rounds, Rng(seed | 1))
}

/// The processes that have `file` open, with their command lines: who holds a data directory.
pub fn holders(file: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return out;
    };
    for p in procs.flatten() {
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
            continue;
        };
        if fds
            .flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| t == file))
        {
            let cmd = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            out.push(format!("{}: {cmd}", p.file_name().to_string_lossy()));
        }
    }
    out
}
