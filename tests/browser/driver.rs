//! A headless Chromium driven through chromedriver (WebDriver) with fantoccini.
//!
//! chromedriver runs on a free loopback port in its own process group, with a fresh profile
//! directory; both go when the `Browser` is dropped. Without a browser installed the tests are
//! skipped with a message, except under `CI=true`, where that is a failure.

use std::future::Future;
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::wd::{Capabilities, WebDriverCompatibleCommand};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

/// How long any one wait in a browser test may take.
pub const WAIT: Duration = Duration::from_secs(20);

/// Chromium flags for a machine without network or display: background networking would make
/// it hang on requests that never answer.
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-breakpad",
    "--disable-crash-reporter",
    "--mute-audio",
    "--window-size=1280,900",
];

fn find_in_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

pub struct Browser {
    rt: tokio::runtime::Runtime,
    client: Option<Client>,
    driver: Child,
    pub dir: tempfile::TempDir,
    shots: PathBuf,
}

impl Browser {
    /// Starts chromedriver and a browser session, or returns `None` (after saying why) when
    /// no browser is installed and this is not CI.
    pub fn start(test: &str) -> Option<Browser> {
        let chromium = find_in_path(&["chromium", "chromium-browser"]);
        let chromedriver = find_in_path(&["chromedriver"]);
        let (Some(chromium), Some(chromedriver)) = (chromium, chromedriver) else {
            crate::common::unavailable(&format!(
                "browser test {test}: chromium and chromedriver are not installed \
                 (apt-get install chromium chromium-driver)"
            ));
            return None;
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("chromedriver.log")).expect("log file");
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            // Chromium's config, cache and crash database go to the temp dir too, so that its
            // helpers can be recognised (and ended) by that path, and nothing lands in $HOME.
            .env("XDG_CONFIG_HOME", dir.path().join("config"))
            .env("XDG_CACHE_HOME", dir.path().join("cache"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            // Its own process group, so that the browser it starts can be ended with it.
            .process_group(0)
            .spawn()
            .expect("start chromedriver");
        let deadline = Instant::now() + WAIT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen on port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let profile = dir.path().join("profile");
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|s| s.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        let caps: Capabilities = serde_json::from_value(json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": chromium, "args": args },
            "goog:loggingPrefs": { "browser": "ALL" },
        }))
        .expect("capabilities");
        let url = format!("http://127.0.0.1:{port}");
        let connect = async {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            tokio::time::timeout(
                Duration::from_secs(60),
                ClientBuilder::new(connector)
                    .capabilities(caps)
                    .connect(&url),
            )
            .await
        };
        let client = match rt.block_on(connect) {
            Ok(Ok(c)) => c,
            other => {
                let log = std::fs::read_to_string(dir.path().join("chromedriver.log"))
                    .unwrap_or_default();
                panic!("could not start a browser session: {other:?}\n{log}");
            }
        };
        let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser");
        std::fs::create_dir_all(&shots).expect("screenshot dir");
        Some(Browser {
            rt,
            client: Some(client),
            driver,
            dir,
            shots,
        })
    }

    pub fn client(&self) -> &Client {
        self.client.as_ref().expect("a live session")
    }

    /// Runs browser steps to completion.
    pub fn block<T>(&self, f: impl Future<Output = T>) -> T {
        self.rt.block_on(f)
    }

    /// Saves a screenshot under target/tmp/browser/ and returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client().screenshot().await.expect("screenshot");
        let path = self.shots.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
        eprintln!("screenshot: {}", path.display());
        path
    }

    /// Polls a script until it returns `true`, within [`WAIT`].
    pub async fn wait_js(&self, what: &str, script: &str, args: Vec<Value>) {
        self.wait_js_for(what, script, args, WAIT).await;
    }

    /// Polls a script until it returns `true`, within `timeout`.
    pub async fn wait_js_for(&self, what: &str, script: &str, args: Vec<Value>, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut last = Value::Null;
        while Instant::now() < deadline {
            match self.client().execute(script, args.clone()).await {
                Ok(Value::Bool(true)) => return,
                Ok(v) => last = v,
                Err(e) => last = json!(e.to_string()),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let body = self
            .client()
            .execute("return document.body.innerText", vec![])
            .await
            .unwrap_or_default();
        panic!("timed out waiting for {what} (last: {last})\npage text:\n{body}");
    }

    /// Waits until an element exists and is not inside anything hidden.
    pub async fn visible(&self, css: &str) -> Element {
        self.wait_js(
            &format!("{css} to be visible"),
            "const e = document.querySelector(arguments[0]); \
             return !!e && !e.closest('[hidden]') && e.getClientRects().length > 0;",
            vec![json!(css)],
        )
        .await;
        self.client()
            .find(Locator::Css(css))
            .await
            .expect("element")
    }

    /// Waits until an element's text contains `text`.
    pub async fn text_contains(&self, css: &str, text: &str) {
        self.wait_js(
            &format!("{css} to contain {text:?}"),
            "const e = document.querySelector(arguments[0]); \
             return !!e && e.textContent.includes(arguments[1]);",
            vec![json!(css), json!(text)],
        )
        .await;
    }

    pub async fn eval(&self, script: &str) -> Value {
        self.client().execute(script, vec![]).await.expect("script")
    }

    /// Browser console entries since the last call that are errors of the page itself:
    /// uncaught exceptions, console.error, CSP violations, failed asset loads. Failed API
    /// calls (a wrong token's 401, a missing /api/status) are the app's business: it shows them.
    pub async fn page_errors(&self) -> Vec<String> {
        let log = self
            .client()
            .issue_cmd(BrowserLog)
            .await
            .expect("chromedriver returns the browser log");
        log.as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["level"] == "SEVERE")
            .filter(|e| {
                !(e["source"] == "network" && e["message"].as_str().unwrap_or("").contains("/api/"))
            })
            .map(|e| format!("[{}] {}", e["source"], e["message"]))
            .collect()
    }

    /// Emulates `prefers-color-scheme` (and other media features) through DevTools.
    pub async fn color_scheme(&self, scheme: &str) {
        self.client()
            .issue_cmd(Cdp(json!({
                "cmd": "Emulation.setEmulatedMedia",
                "params": { "features": [{ "name": "prefers-color-scheme", "value": scheme }] },
            })))
            .await
            .expect("emulate a colour scheme");
    }
}

/// How the browser's network behaves, emulated by chromedriver through DevTools.
#[derive(Debug, Clone, Copy)]
pub enum Network {
    /// As it really is.
    Normal,
    /// Request bodies go out at most this many bytes a second.
    SlowUpload(u64),
    /// No connection: new requests fail at once and `navigator.onLine` is false. (Chromium
    /// lets a request already under way finish.)
    Offline,
}

impl Browser {
    /// Changes the emulated network (`/session/{id}/chromium/network_conditions`).
    pub async fn network(&self, network: Network) {
        self.client()
            .issue_cmd(NetworkConditions(network))
            .await
            .unwrap_or_else(|e| panic!("emulate the network as {network:?}: {e}"));
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Closing the session lets chromedriver shut the browser down properly. It must not
        // panic here, or the group below would never be killed.
        if let Some(client) = self.client.take() {
            let rt = &self.rt;
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                rt.block_on(async {
                    tokio::time::timeout(Duration::from_secs(10), client.close()).await
                })
            }));
        }
        // The whole group: chromedriver and any browser it left behind.
        let pgid = self.driver.id() as i32;
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
        let _ = self.driver.wait();
        // Chromium's crash handler leaves the group; it names our temp dir on its command line.
        for pid in processes_mentioning(self.dir.path()) {
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

/// Ids of the processes whose command line contains `path`.
fn processes_mentioning(path: &Path) -> Vec<i32> {
    let needle = path.as_os_str().as_encoded_bytes();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmd| cmd.windows(needle.len()).any(|w| w == needle))
        })
        .collect()
}

/// chromedriver's log endpoint: `POST /session/{id}/se/log {"type": "browser"}`.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }
    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({ "type": "browser" }).to_string()),
        )
    }
}

/// A DevTools command through chromedriver: `POST /session/{id}/goog/cdp/execute`.
#[derive(Debug)]
struct Cdp(Value);

impl WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!(
            "session/{}/goog/cdp/execute",
            session.unwrap_or_default()
        ))
    }
    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(self.0.to_string()))
    }
}

/// chromedriver's network emulation: `POST /session/{id}/chromium/network_conditions` sets it
/// (throughputs in bytes a second, -1 for no limit), `DELETE` ends it.
#[derive(Debug)]
struct NetworkConditions(Network);

impl WebDriverCompatibleCommand for NetworkConditions {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!(
            "session/{}/chromium/network_conditions",
            session.unwrap_or_default()
        ))
    }
    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        let (offline, upload) = match self.0 {
            Network::Normal => return (http::Method::DELETE, None),
            Network::SlowUpload(bytes) => (false, json!(bytes)),
            Network::Offline => (true, json!(-1)),
        };
        let conditions = json!({
            "offline": offline,
            "latency": 0,
            "download_throughput": -1,
            "upload_throughput": upload,
        });
        (
            http::Method::POST,
            Some(json!({ "network_conditions": conditions }).to_string()),
        )
    }
}
