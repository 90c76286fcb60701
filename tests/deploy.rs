//! The deployment files checked against the binary they deploy: render.yaml's fields as Render
//! documents them, the Dockerfile's stages, the user it serves as, its volume and health
//! check, the systemd unit.

use std::collections::BTreeSet;
use std::process::Command;

use yaml_rust2::{Yaml, YamlLoader};

fn shoebox(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_shoebox"))
        .env_clear()
        .args(args)
        .output()
        .expect("run shoebox")
}

/// Every environment variable `shoebox serve` reads, from its own --help.
fn env_names() -> BTreeSet<String> {
    let help = String::from_utf8_lossy(&shoebox(&["serve", "--help"]).stdout).into_owned();
    let names: BTreeSet<String> = help
        .match_indices("[env: ")
        .map(|(i, _)| {
            help[i + 6..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || *c == '_')
                .collect()
        })
        .collect();
    assert!(
        names.contains("SHOEBOX_DATA_DIR") && names.contains("PORT"),
        "{help}"
    );
    names
}

fn repo_file(name: &str) -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(name))
        .expect(name)
}

#[test]
fn render_blueprint_matches_the_spec_and_the_binary() {
    let docs = YamlLoader::load_from_str(&repo_file("render.yaml")).expect("render.yaml parses");
    let services = docs[0]["services"].as_vec().expect("services list");
    assert_eq!(services.len(), 1);
    let web = &services[0];
    assert_eq!(web["type"].as_str(), Some("web"));
    assert_eq!(web["runtime"].as_str(), Some("docker"));
    assert!(web["name"].as_str().is_some());
    let plan = web["plan"].as_str().expect("a plan");
    assert_ne!(plan, "free", "disks need a paid plan");
    assert_eq!(web["healthCheckPath"].as_str(), Some("/api/health"));
    assert_eq!(web["dockerfilePath"].as_str(), Some("./Dockerfile"));
    assert!(std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("Dockerfile")
        .is_file());

    let disk = &web["disk"];
    assert!(disk["name"].as_str().is_some());
    let mount = disk["mountPath"].as_str().expect("disk.mountPath");
    assert!(
        disk["sizeGB"].as_i64().is_some_and(|n| n >= 1),
        "disk.sizeGB is a whole number of GB"
    );

    let known = env_names();
    let mut seen = BTreeSet::new();
    for var in web["envVars"].as_vec().expect("envVars") {
        let key = var["key"].as_str().expect("envVars[].key");
        assert!(
            known.contains(key),
            "{key} is not read by shoebox serve (reads {known:?})"
        );
        let sources = [
            !var["value"].is_badvalue(),
            var["generateValue"] == Yaml::Boolean(true),
            var["sync"] == Yaml::Boolean(false),
        ];
        assert_eq!(
            sources.iter().filter(|s| **s).count(),
            1,
            "{key}: exactly one of value, generateValue, sync: false"
        );
        seen.insert(key.to_owned());
        match key {
            "SHOEBOX_DATA_DIR" => assert_eq!(
                var["value"].as_str(),
                Some(mount),
                "the data dir is the disk"
            ),
            "SHOEBOX_ADMIN_TOKEN" => assert_eq!(
                var["generateValue"],
                Yaml::Boolean(true),
                "a generated secret"
            ),
            "SHOEBOX_REQUIRE_PERSISTENT_DISK" => assert_eq!(var["value"].as_str(), Some("1")),
            _ => {}
        }
    }
    for needed in [
        "SHOEBOX_DATA_DIR",
        "SHOEBOX_ADMIN_TOKEN",
        "SHOEBOX_REQUIRE_PERSISTENT_DISK",
    ] {
        assert!(seen.contains(needed), "{needed} is set");
    }
    assert!(!seen.contains("PORT"), "Render sets PORT itself");

    // The platform waits at least as long as the server drains.
    let delay = web["maxShutdownDelaySeconds"]
        .as_i64()
        .expect("maxShutdownDelaySeconds");
    let drain: i64 = web["envVars"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|v| v["key"].as_str() == Some("SHOEBOX_SHUTDOWN_TIMEOUT"))
        .and_then(|v| v["value"].as_str())
        .and_then(|v| v.parse().ok())
        .unwrap_or(25);
    assert!(
        (1..=300).contains(&delay) && delay > drain,
        "maxShutdownDelaySeconds {delay} vs drain {drain}"
    );
}

/// Dockerfile instructions with continuation lines joined.
fn instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') || t.is_empty() {
            continue;
        }
        if let Some(body) = t.strip_suffix('\\') {
            current.push_str(body);
            current.push(' ');
            continue;
        }
        current.push_str(t);
        let (op, rest) = current.split_once(' ').unwrap_or((current.as_str(), ""));
        out.push((op.to_uppercase(), rest.trim().to_owned()));
        current.clear();
    }
    out
}

#[test]
fn dockerfile_stages_run_as_user_volume_and_healthcheck_fit_the_binary() {
    let ins = instructions(&repo_file("Dockerfile"));
    let froms: Vec<&String> = ins
        .iter()
        .filter(|(op, _)| op == "FROM")
        .map(|(_, a)| a)
        .collect();
    assert!(froms.len() >= 2, "multi-stage");
    let bases: Vec<&str> = froms
        .iter()
        .map(|f| f.split_whitespace().next().unwrap())
        .filter(|b| b.contains(':'))
        .collect();
    assert!(
        bases.iter().all(|b| b.contains("bookworm")),
        "builder and runtime on one Debian release: {bases:?}"
    );
    assert!(
        ins.iter()
            .any(|(op, a)| op == "RUN" && a.contains("cargo chef cook")),
        "a cached dependency layer"
    );

    // The runtime stage: everything after the last FROM.
    let last = ins.iter().rposition(|(op, _)| op == "FROM").unwrap();
    let runtime = &ins[last..];
    let get = |name: &str| {
        runtime
            .iter()
            .filter(|(op, _)| op == name)
            .map(|(_, a)| a.clone())
            .collect::<Vec<_>>()
    };
    // It starts as root, so that a disk mounted owned by root can be handed over, and serves
    // as the image's own unprivileged user: SHOEBOX_RUN_AS names the uid and gid it creates.
    assert_eq!(get("USER"), Vec::<String>::new(), "starts as root");
    let run = get("RUN").join(" ");
    let flag = |name: &str| -> u32 {
        let at = run.find(name).unwrap_or_else(|| panic!("{name} in {run}"));
        run[at + name.len()..]
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("a number after {name}"))
    };
    let (uid, gid) = (
        flag("useradd --system --uid"),
        flag("groupadd --system --gid"),
    );
    assert!(uid != 0 && gid != 0);
    assert!(
        run.contains("chown") && run.contains("/var/data"),
        "the user owns the volume"
    );
    assert_eq!(get("VOLUME"), vec!["/var/data".to_owned()]);
    let expose = get("EXPOSE").pop().expect("EXPOSE");
    let env = get("ENV").join(" ");
    assert!(
        env.split_whitespace()
            .any(|a| a == format!("SHOEBOX_RUN_AS={uid}:{gid}")),
        "serves as uid {uid}, gid {gid}: {env}"
    );
    assert!(
        env.contains(&format!("PORT={expose}")),
        "EXPOSE matches PORT: {env}"
    );
    assert!(env.contains("SHOEBOX_DATA_DIR=/var/data"));
    let known = env_names();
    for assignment in env.split_whitespace() {
        let name = assignment.split('=').next().unwrap();
        assert!(known.contains(name), "ENV {name} is read by the binary");
    }

    // HEALTHCHECK runs a real subcommand with flags it accepts: against a dead port it reports
    // unhealthy (1), not a usage error (2).
    let hc = get("HEALTHCHECK").pop().expect("HEALTHCHECK");
    let cmd = &hc[hc.find("CMD").expect("HEALTHCHECK CMD") + 3..];
    let args: Vec<String> = serde_json::from_str(cmd.trim()).expect("exec-form CMD");
    assert_eq!(args[0], "shoebox");
    let out = Command::new(env!("CARGO_BIN_EXE_shoebox"))
        .env_clear()
        .env("PORT", "9") // discard: nothing listens
        .args(&args[1..])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let entry: Vec<String> = serde_json::from_str(&get("ENTRYPOINT").pop().unwrap()).unwrap();
    let cmd: Vec<String> = serde_json::from_str(&get("CMD").pop().unwrap()).unwrap();
    assert_eq!(entry, vec!["shoebox"]);
    let sub: Vec<&str> = cmd.iter().map(String::as_str).chain(["--help"]).collect();
    assert!(
        shoebox(&sub).status.success(),
        "CMD {cmd:?} is a real subcommand"
    );

    let ignore = repo_file(".dockerignore");
    assert!(
        ignore.lines().any(|l| l.trim_end_matches('/') == "target"),
        "the build context skips target/"
    );
}

#[test]
fn the_systemd_unit_runs_a_real_command_and_waits_for_the_drain() {
    let unit = repo_file("deploy/shoebox.service");
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart");
    let mut parts = exec.split_whitespace();
    assert!(parts.next().unwrap().ends_with("/shoebox"));
    let sub: Vec<&str> = parts.chain(["--help"]).collect();
    assert!(shoebox(&sub).status.success());
    let stop: u64 = unit
        .lines()
        .find_map(|l| l.strip_prefix("TimeoutStopSec="))
        .unwrap()
        .parse()
        .unwrap();
    assert!(stop > 25, "systemd waits longer than the 25 s drain");
    let known = env_names();
    for l in unit.lines().filter_map(|l| l.strip_prefix("Environment=")) {
        let name = l.split('=').next().unwrap();
        assert!(known.contains(name), "{name} is read by the binary");
    }
}

/// The second blueprint, for any number of instances without a disk: the database it declares
/// is the one the service's URL comes from, the key that seals the shared credentials is
/// generated once for every instance, the bucket is asked for, and every variable is one the
/// binary reads. (`render.yaml`, the one-service default, is checked above.)
#[test]
fn the_cluster_blueprint_declares_what_many_instances_need() {
    let docs = YamlLoader::load_from_str(&repo_file("deploy/render-cluster.yaml"))
        .expect("deploy/render-cluster.yaml parses");
    let databases: Vec<&str> = docs[0]["databases"]
        .as_vec()
        .expect("a databases list")
        .iter()
        .map(|d| d["name"].as_str().expect("databases[].name"))
        .collect();
    let services = docs[0]["services"].as_vec().expect("services list");
    assert_eq!(services.len(), 1);
    let web = &services[0];
    assert_eq!(web["type"].as_str(), Some("web"));
    assert_eq!(web["runtime"].as_str(), Some("docker"));
    assert_eq!(web["healthCheckPath"].as_str(), Some("/api/health"));
    assert!(
        web["disk"].is_badvalue(),
        "no disk: it would pin one instance"
    );
    assert!(
        web["numInstances"].as_i64().is_some_and(|n| n >= 2),
        "more than one instance"
    );
    let known = env_names();
    let mut seen = BTreeSet::new();
    for var in web["envVars"].as_vec().expect("envVars") {
        let key = var["key"].as_str().expect("envVars[].key");
        assert!(known.contains(key), "{key} is not read by shoebox serve");
        seen.insert(key);
        match key {
            "SHOEBOX_DATABASE_URL" => {
                let from = &var["fromDatabase"];
                let name = from["name"].as_str().expect("fromDatabase.name");
                assert!(databases.contains(&name), "{name} is declared");
                assert_eq!(from["property"].as_str(), Some("connectionString"));
            }
            "SHOEBOX_SECRET_KEY" | "SHOEBOX_ADMIN_TOKEN" => {
                assert_eq!(var["generateValue"], Yaml::Boolean(true), "{key}")
            }
            "SHOEBOX_BLOB_STORE"
            | "SHOEBOX_BLOB_STORE_ACCESS_KEY_ID"
            | "SHOEBOX_BLOB_STORE_SECRET_ACCESS_KEY" => {
                assert_eq!(var["sync"], Yaml::Boolean(false), "{key} is asked for")
            }
            _ => {}
        }
    }
    for needed in [
        "SHOEBOX_DATABASE_URL",
        "SHOEBOX_SECRET_KEY",
        "SHOEBOX_ADMIN_TOKEN",
        "SHOEBOX_BLOB_STORE",
        "SHOEBOX_BLOB_STORE_ACCESS_KEY_ID",
        "SHOEBOX_BLOB_STORE_SECRET_ACCESS_KEY",
    ] {
        assert!(seen.contains(needed), "{needed} is set");
    }
    assert!(!seen.contains("SHOEBOX_REQUIRE_PERSISTENT_DISK"));
    assert!(web["maxShutdownDelaySeconds"]
        .as_i64()
        .is_some_and(|d| d > 25));
}

/// The compose file of a cluster on one machine: three Garage nodes whose configurations
/// give replication factor 3 and the addresses the compose network gives them, Shoebox
/// instances whose variables the binary reads, a proxy that sends to each of them, a setup
/// script that is valid shell, and an example environment that names every value asked for.
/// (No Docker daemon runs the tests, so this checks the files, not a running cluster; the
/// setup script's Garage commands are the ones the cluster tests run against Garage.)
#[test]
fn the_cluster_compose_file_fits_its_parts_and_the_binary() {
    let text = repo_file("deploy/cluster/compose.yaml");
    let docs = YamlLoader::load_from_str(&text).expect("compose.yaml parses");
    let services = docs[0]["services"].as_hash().expect("services");
    let address = |name: &str| -> String {
        services[&Yaml::String(name.into())]["networks"]["cluster"]["ipv4_address"]
            .as_str()
            .unwrap_or_else(|| panic!("{name} has an address"))
            .to_owned()
    };
    for i in 1..=3 {
        let conf = repo_file(&format!("deploy/cluster/garage{i}.toml"));
        assert!(conf.contains("replication_factor = 3"), "garage{i}");
        assert!(
            conf.contains(&format!(
                "rpc_public_addr = \"{}:3901\"",
                address(&format!("garage{i}"))
            )),
            "garage{i}'s RPC address is its compose address"
        );
    }
    let known = env_names();
    let shoebox_vars: BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.trim().split_once(':').map(|(k, _)| k))
        .filter(|k| k.starts_with("SHOEBOX_"))
        .collect();
    assert!(
        shoebox_vars.contains("SHOEBOX_DATABASE_URL")
            && shoebox_vars.contains("SHOEBOX_BLOB_STORE")
    );
    for var in &shoebox_vars {
        assert!(known.contains(*var), "{var} is not read by shoebox serve");
    }
    let instances: Vec<&str> = ["shoebox-a", "shoebox-b"]
        .into_iter()
        .filter(|n| services.contains_key(&Yaml::String((*n).into())))
        .collect();
    assert_eq!(instances.len(), 2, "two instances");
    let caddy = repo_file("deploy/cluster/Caddyfile");
    for name in instances {
        assert!(
            caddy.contains(&format!("{}:8080", address(name))),
            "the proxy sends to {name}"
        );
    }
    let setup = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/cluster/setup.sh");
    let checked = Command::new("sh")
        .arg("-n")
        .arg(&setup)
        .output()
        .expect("sh");
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );
    let example = repo_file("deploy/cluster/env.example");
    let asked: BTreeSet<String> = [text.as_str(), &repo_file("deploy/cluster/setup.sh")]
        .iter()
        .flat_map(|t| t.match_indices("${").map(move |(i, _)| &t[i + 2..]))
        .map(|rest| {
            rest.chars()
                .take_while(|c| c.is_ascii_uppercase() || *c == '_')
                .collect()
        })
        .filter(|name: &String| !name.is_empty() && name != "GARAGE_EXEC")
        .collect();
    for name in &asked {
        assert!(
            example.lines().any(|l| l.starts_with(&format!("{name}="))),
            "env.example names {name}"
        );
    }
}
