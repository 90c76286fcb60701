//! A Garage cluster of the test's own: N nodes on 127.0.0.1, each with its RPC, S3 and admin
//! ports and its directories in one temporary directory, joined and laid out through Garage's
//! own CLI, with a bucket and a key allowed on it.
//!
//! What `start` waits for, in order: every node's CLI answers (`node id`); every node reports
//! the cluster "healthy" through the admin API's GetClusterHealth (all nodes connected, every
//! partition with all its nodes up), which means the layout reached it; a request forwarded
//! from each node to each other one is answered; then `bucket info` through every node lists
//! the key, so the bucket and the key's permission can be read at quorum wherever a client
//! connects. A signed PUT would need an S3 client here; the kit's own tests make one through
//! every node instead.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use tempfile::TempDir;

use crate::process::{self, http_get, on_path, poll, port_answers, run, spawn_logged, tail};
use crate::unavailable;

/// How long one node may take to be ready, the layout to reach every node, and so on.
const READY: Duration = Duration::from_secs(60);

/// How long a request between two nodes of a working cluster may take, on a busy machine.
const ANSWER: Duration = Duration::from_secs(2);

const REGION: &str = "garage";

/// An access key allowed to read, write and own the cluster's buckets.
#[derive(Clone, Debug)]
pub struct GarageKey {
    pub id: String,
    pub secret: String,
}

/// A running Garage cluster; every node is killed and its files deleted on drop.
pub struct Garage {
    dir: TempDir,
    garage: PathBuf,
    admin_token: String,
    nodes: Vec<Node>,
    key: GarageKey,
}

struct Node {
    conf: PathBuf,
    log: PathBuf,
    s3: u16,
    admin: u16,
    /// "ID@127.0.0.1:RPC", as `garage node connect` takes it.
    address: String,
    /// None while killed.
    child: Option<Child>,
}

impl Garage {
    /// Starts `nodes` nodes with `replication_factor = nodes` (3 nodes: quorum 2), a bucket
    /// `bucket` and a key allowed on it; None after [`unavailable`] when `garage` is not on PATH.
    pub fn start(nodes: usize, bucket: &str) -> Option<Garage> {
        assert!(nodes >= 1, "a Garage cluster needs a node");
        let Some(garage) = on_path("garage") else {
            unavailable("garage on PATH (cargo install garage --locked --version 2.5.0)");
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("shoebox-garage-")
            .tempdir()
            .unwrap_or_else(|e| panic!("creating a temporary directory: {e}"));
        let rpc_secret = process::random_hex(32);
        let admin_token = process::random_hex(32);
        let ports = process::free_ports(3 * nodes);
        let nodes = ports
            .chunks(3)
            .enumerate()
            .map(|(i, ports)| {
                Node::configure(dir.path(), i, nodes, ports, &rpc_secret, &admin_token)
            })
            .collect();
        let mut cluster = Garage {
            dir,
            garage,
            admin_token,
            nodes,
            key: GarageKey {
                id: String::new(),
                secret: String::new(),
            },
        };
        for i in 0..cluster.nodes.len() {
            cluster.launch(i);
        }
        cluster.join_and_lay_out();
        for (i, node) in cluster.nodes.iter().enumerate() {
            if !poll(READY, || port_answers(node.s3)) {
                panic!(
                    "Garage node {i}'s S3 API does not answer\n{}",
                    tail(&node.log, 30)
                );
            }
        }
        let created = cluster.cli(0, &["key", "create", "shoebox-testkit"], Retry::No);
        cluster.key = GarageKey {
            id: field(&created, "Key ID:"),
            secret: field(&created, "Secret key:"),
        };
        cluster.create_bucket(bucket);
        Some(cluster)
    }

    /// The access key allowed on every bucket of the cluster.
    pub fn key(&self) -> &GarageKey {
        &self.key
    }

    /// The S3 region the nodes accept: "garage".
    pub fn region(&self) -> &str {
        REGION
    }

    /// "http://127.0.0.1:PORT", the S3 API of node `node`.
    pub fn endpoint(&self, node: usize) -> String {
        format!("http://127.0.0.1:{}", self.nodes[node].s3)
    }

    /// SIGKILLs node `node`, waits until it is gone, and then until every running node knows
    /// it is down. Its data stays for `restart`.
    ///
    /// Garage drops a connection to a dead peer only when a write to it fails, and it pings
    /// each peer every 15 s: left alone, the first request that meets the dead connection
    /// waits for the next ping (seen: a PUT of 6 s). So each running node is made to send it
    /// requests until it has given up on it, which takes a moment instead.
    pub fn kill(&mut self, node: usize) {
        let Some(mut child) = self.nodes[node].child.take() else {
            return;
        };
        if !process::kill_group(&mut child, Duration::from_secs(10)) {
            panic!("Garage node {node} still runs after SIGKILL");
        }
        for other in self.running().collect::<Vec<_>>() {
            let gone = poll(READY, || {
                // Long enough for the request to be sent on; its answer does not matter.
                self.forward(other, node, Duration::from_millis(300));
                self.sees_up(other, node) == Some(false)
            });
            if !gone {
                panic!(
                    "Garage node {other} still counts node {node} up after {READY:?}\n{}",
                    tail(&self.nodes[other].log, 30)
                );
            }
        }
    }

    /// Starts node `node` again with its configuration and data (killing it first if it runs),
    /// connects it both ways to every running node and waits until requests pass between them,
    /// until it reports a quorum (the whole cluster healthy when every node runs), and until
    /// its S3 port answers.
    pub fn restart(&mut self, node: usize) {
        self.kill(node);
        self.launch(node);
        // Peers retry a lost connection only every 30 s, and a node killed soon after it
        // joined may not have saved its peer list: connect them ourselves.
        let others: Vec<usize> = self.running().filter(|&i| i != node).collect();
        for &other in &others {
            let connected = poll(READY, || {
                let there = ["node", "connect", &self.nodes[other].address];
                let back = ["node", "connect", &self.nodes[node].address];
                self.cli_once(node, &there).ok
                    && self.cli_once(other, &back).ok
                    && self.forward(node, other, ANSWER)
                    && self.forward(other, node, ANSWER)
            });
            if !connected {
                panic!(
                    "Garage nodes {node} and {other} do not reach each other after {READY:?}\n{}",
                    tail(&self.nodes[node].log, 30)
                );
            }
        }
        if others.len() + 1 == self.nodes.len() {
            for i in 0..self.nodes.len() {
                self.wait_health(i, &["healthy"]);
            }
        } else {
            self.wait_health(node, &["healthy", "degraded"]);
        }
        let port = self.nodes[node].s3;
        if !poll(READY, || port_answers(port)) {
            panic!(
                "Garage node {node}'s S3 API does not answer\n{}",
                tail(&self.nodes[node].log, 30)
            );
        }
    }

    /// Creates bucket `name` and allows the key to read, write and own it; waits until every
    /// running node lists the key on it.
    pub fn create_bucket(&self, name: &str) {
        let first = self.running().next().expect("no Garage node runs");
        self.cli(first, &["bucket", "create", name], Retry::No);
        let allow = ["bucket", "allow", "--read", "--write", "--owner", name];
        self.cli(
            first,
            &[&allow[..], &["--key", &self.key.id]].concat(),
            Retry::No,
        );
        for i in self.running() {
            let listed = poll(READY, || {
                let ran = self.cli_once(i, &["bucket", "info", name]);
                ran.ok && ran.stdout.contains(&self.key.id)
            });
            if !listed {
                panic!(
                    "Garage node {i} does not list the key on bucket {name}\n{}",
                    tail(&self.nodes[i].log, 30)
                );
            }
        }
    }

    /// Every node's ID, `node connect` from node 0 to the others, a role of 1 GB in zone dc1
    /// for each, layout version 1, and every node healthy.
    fn join_and_lay_out(&mut self) {
        let mut ids = Vec::new();
        for i in 0..self.nodes.len() {
            // "ID@127.0.0.1:RPC"; `layout assign` takes the ID alone.
            let address = self
                .cli(i, &["node", "id", "-q"], Retry::Yes)
                .trim()
                .to_owned();
            ids.push(address.split('@').next().unwrap_or_default().to_owned());
            self.nodes[i].address = address;
        }
        for i in 1..self.nodes.len() {
            self.cli(0, &["node", "connect", &self.nodes[i].address], Retry::Yes);
        }
        for id in &ids {
            let assign = ["layout", "assign", "-z", "dc1", "-c", "1G", id];
            self.cli(0, &assign, Retry::Yes);
        }
        self.cli(0, &["layout", "apply", "--version", "1"], Retry::No);
        for i in 0..self.nodes.len() {
            self.wait_health(i, &["healthy"]);
        }
        for i in 0..self.nodes.len() {
            for j in (0..self.nodes.len()).filter(|&j| j != i) {
                if !poll(READY, || self.forward(i, j, ANSWER)) {
                    panic!(
                        "Garage node {i} cannot reach node {j}\n{}",
                        tail(&self.nodes[i].log, 30)
                    );
                }
            }
        }
    }

    fn launch(&mut self, i: usize) {
        let node = &self.nodes[i];
        let mut cmd = self.command();
        cmd.arg("-c").arg(&node.conf).arg("server");
        let child = spawn_logged(&mut cmd, &node.log);
        self.nodes[i].child = Some(child);
    }

    /// Waits until node `i`'s GetClusterHealth status is one of `wanted`.
    fn wait_health(&self, i: usize, wanted: &[&str]) {
        let mut last = String::new();
        let ok = poll(READY, || {
            last = self.admin(i, "/v2/GetClusterHealth", Duration::from_secs(5));
            wanted
                .iter()
                .any(|w| last.contains(&format!("\"status\":\"{w}\"")))
        });
        if !ok {
            panic!(
                "Garage node {i} is not {wanted:?} after {READY:?}: {last}\n{}",
                tail(&self.nodes[i].log, 30)
            );
        }
    }

    /// Whether a request from node `from` to node `to` is answered within `limit`: GetNodeInfo
    /// about `to`, asked of `from`'s admin API, which forwards it over the cluster's RPC.
    fn forward(&self, from: usize, to: usize, limit: Duration) -> bool {
        let id = self.nodes[to].id();
        let body = self.admin(from, &format!("/v2/GetNodeInfo?node={id}"), limit);
        body.contains(&format!("\"success\":{{\"{id}\""))
    }

    /// Whether node `from` counts node `to` up, from its GetClusterStatus; None if unknown.
    fn sees_up(&self, from: usize, to: usize) -> Option<bool> {
        let status = self.admin(from, "/v2/GetClusterStatus", Duration::from_secs(5));
        let entry = status
            .split(&format!("\"id\":\"{}\"", self.nodes[to].id()))
            .nth(1)?;
        let entry = entry.split("\"id\":").next()?;
        if entry.contains("\"isUp\":true") {
            Some(true)
        } else if entry.contains("\"isUp\":false") {
            Some(false)
        } else {
            None
        }
    }

    /// A GET on node `i`'s admin API: the body without whitespace, or the error as text.
    fn admin(&self, i: usize, path: &str, limit: Duration) -> String {
        match http_get(self.nodes[i].admin, path, Some(&self.admin_token), limit) {
            Ok((_, body)) => body.split_whitespace().collect(),
            Err(e) => e.to_string(),
        }
    }

    /// `garage -c NODE.toml ARGS`: its stdout, retried for up to a minute when `retry` (a node
    /// not up yet, a peer not known yet), and a panic with the node's log if it fails.
    fn cli(&self, i: usize, args: &[&str], retry: Retry) -> String {
        let mut ran = self.cli_once(i, args);
        if matches!(retry, Retry::Yes) {
            poll(READY, || {
                if !ran.ok {
                    ran = self.cli_once(i, args);
                }
                ran.ok
            });
        }
        if !ran.ok {
            panic!(
                "garage {} on node {i} failed: {}{}\n{}",
                args.join(" "),
                ran.stdout,
                ran.stderr,
                tail(&self.nodes[i].log, 30)
            );
        }
        ran.stdout
    }

    fn cli_once(&self, i: usize, args: &[&str]) -> process::Ran {
        let mut cmd = self.command();
        cmd.arg("-c").arg(&self.nodes[i].conf).args(args);
        run(&mut cmd, Duration::from_secs(30))
    }

    /// The `garage` program with no GARAGE_* variable of ours (they override the config file)
    /// and Garage's usual log level whatever RUST_LOG the tests run with.
    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.garage);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("GARAGE_") {
                cmd.env_remove(key);
            }
        }
        cmd.env("RUST_LOG", "info").current_dir(self.dir.path());
        cmd
    }

    fn running(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.nodes.len()).filter(|&i| self.nodes[i].child.is_some())
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = process::kill_group(&mut child, Duration::from_secs(10));
            }
        }
    }
}

impl Node {
    /// The node's ID, as the admin API names it.
    fn id(&self) -> &str {
        self.address.split('@').next().unwrap_or_default()
    }

    /// Writes node `i`'s configuration and makes its directories.
    ///
    /// db_engine = "sqlite": Garage's manual reports LMDB files corrupted after unclean
    /// shutdowns, which these tests deal out on purpose, and LMDB maps 1 TiB of address space
    /// per node; Sqlite runs in WAL mode and recovers.
    fn configure(
        root: &Path,
        i: usize,
        nodes: usize,
        ports: &[u16],
        rpc_secret: &str,
        admin_token: &str,
    ) -> Node {
        let dir = root.join(format!("node{i}"));
        for sub in ["meta", "data"] {
            fs::create_dir_all(dir.join(sub))
                .unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        }
        let &[rpc, s3, admin] = ports else {
            panic!("a node needs three ports");
        };
        let conf = dir.join("garage.toml");
        let text = format!(
            r#"metadata_dir = {meta}
data_dir = {data}
db_engine = "sqlite"
replication_factor = {nodes}
rpc_secret = "{rpc_secret}"
rpc_bind_addr = "127.0.0.1:{rpc}"
rpc_public_addr = "127.0.0.1:{rpc}"

[s3_api]
api_bind_addr = "127.0.0.1:{s3}"
s3_region = "{REGION}"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:{admin}"
admin_token = "{admin_token}"
"#,
            meta = toml_string(&dir.join("meta")),
            data = toml_string(&dir.join("data")),
        );
        fs::write(&conf, text).unwrap_or_else(|e| panic!("writing {}: {e}", conf.display()));
        Node {
            conf,
            log: dir.join("garage.log"),
            s3,
            admin,
            // Known once the node runs and has made its key.
            address: String::new(),
            child: None,
        }
    }
}

#[derive(Clone, Copy)]
enum Retry {
    Yes,
    No,
}

/// The value after `label` on a line of the CLI's output ("Key ID:   GK...").
fn field(output: &str, label: &str) -> String {
    output
        .lines()
        .find_map(|line| line.trim().strip_prefix(label))
        .map(|value| value.trim().to_owned())
        .unwrap_or_else(|| panic!("no {label:?} in garage's output:\n{output}"))
}

/// A path as a TOML basic string.
fn toml_string(path: &Path) -> String {
    let text = path.to_string_lossy();
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}
