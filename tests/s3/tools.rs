//! The other S3 clients apps and operators use, each against the S3 port: the AWS SDK for
//! JavaScript v3 (npm), the aws CLI (PyPI), rclone and s3cmd (Debian).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::boto::server;
use crate::common::clients::{dir, run};
use crate::common::{self, all_records};

fn found(program: &str, arg: &str, install: &str) -> bool {
    let ok = Command::new(program)
        .arg(arg)
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        common::unavailable(&format!(
            "{program} is not installed ({install}; .ci/run does it)"
        ));
    }
    ok
}

#[test]
fn the_js_sdk_streams_a_body_aws_chunked_and_reads_it_back_and_presigned() {
    let installed = dir()
        .join("node_modules/@aws-sdk/client-s3/package.json")
        .is_file();
    if !installed {
        common::unavailable(
            "the AWS SDK for JavaScript is not installed (npm ci --prefix tests/clients; .ci/run does it)",
        );
        return;
    }
    let s = server();
    let (id, secret) = s.s3_key("js", "upload");
    let tmp = tempfile::tempdir().unwrap();
    let bytes = common::bytes(2 * 1024 * 1024 + 3, 5);
    let file = tmp.path().join("stream.bin");
    std::fs::write(&file, &bytes).unwrap();
    let mut cmd = Command::new("node");
    cmd.arg("s3-js.mjs")
        .args(["--endpoint", &s.s3_url(), "--key", &id, "--secret", &secret])
        .arg("--file")
        .arg(&file);
    let v = run(cmd, Duration::from_secs(120));
    assert_eq!(v["ok"], true, "{v}");
    let want = common::sha256_hex(&bytes);
    assert_eq!(v["sha256"], want.as_str());
    assert_eq!(v["presigned_sha256"], want.as_str());
    assert_eq!(all_records(&s)[0]["hash"], want.as_str());
}

/// A folder of files of many sizes, one past the aws CLI's 8 MiB multipart threshold.
fn folder(root: &Path) {
    let mut rng = common::Rng(0x5eed);
    for i in 0..12 {
        let sub = root.join(format!("d{}", i % 3));
        std::fs::create_dir_all(&sub).unwrap();
        let size = rng.size(300_000);
        std::fs::write(sub.join(format!("f{i}.bin")), common::bytes(size, i)).unwrap();
    }
    std::fs::write(root.join("big.bin"), common::bytes(9 * 1024 * 1024 + 1, 99)).unwrap();
    std::fs::write(root.join("name with spaces é.txt"), b"text").unwrap();
}

fn diff(a: &Path, b: &Path) {
    let out = Command::new("diff")
        .arg("-r")
        .arg(a)
        .arg(b)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn the_aws_cli_copies_and_syncs_a_folder_up_and_back() {
    if !found("aws", "--version", "python3 -m pip install awscli") {
        return;
    }
    let s = server();
    let (id, secret) = s.s3_key("cli", "upload");
    let tmp = tempfile::tempdir().unwrap();
    let (up, down) = (tmp.path().join("up"), tmp.path().join("down"));
    folder(&up);
    let aws = |args: &[&str]| {
        let out = Command::new("aws")
            .args(["--endpoint-url", &s.s3_url()])
            .args(args)
            .env_remove("AWS_CA_BUNDLE")
            .env_remove("AWS_PROFILE")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("AWS_ACCESS_KEY_ID", &id)
            .env("AWS_SECRET_ACCESS_KEY", &secret)
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .output()
            .expect("run aws");
        assert!(
            out.status.success(),
            "aws {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    aws(&["s3", "mb", "s3://media"]);
    aws(&[
        "s3",
        "cp",
        up.join("big.bin").to_str().unwrap(),
        "s3://media/single/big.bin",
    ]);
    aws(&["s3", "sync", up.to_str().unwrap(), "s3://media/tree"]);
    aws(&["s3", "sync", "s3://media/tree", down.to_str().unwrap()]);
    diff(&up, &down);
    // A second sync has nothing to do.
    let again = aws(&["s3", "sync", up.to_str().unwrap(), "s3://media/tree"]);
    assert!(again.trim().is_empty(), "{again}");
    let listed = aws(&["s3", "ls", "--recursive", "s3://media/tree/"]);
    assert_eq!(listed.lines().count(), 14, "{listed}");
}

#[test]
fn rclone_syncs_checks_md5s_and_copies_back() {
    if !found("rclone", "version", "apt-get install rclone") {
        return;
    }
    let s = server();
    let (id, secret) = s.s3_key("rclone", "upload");
    let tmp = tempfile::tempdir().unwrap();
    let (up, down) = (tmp.path().join("up"), tmp.path().join("down"));
    folder(&up);
    let remote = format!(
        ":s3,provider=Other,endpoint='{}',access_key_id={id},secret_access_key={secret},force_path_style=true:",
        s.s3_url()
    );
    let rclone = |args: &[&str]| {
        let out = Command::new("rclone")
            .args(args)
            .args([
                "--config",
                "/dev/null",
                "--retries",
                "1",
                "--low-level-retries",
                "1",
            ])
            .env_remove("AWS_CA_BUNDLE")
            .output()
            .expect("run rclone");
        assert!(
            out.status.success(),
            "rclone {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    rclone(&["mkdir", &format!("{remote}photos")]);
    rclone(&[
        "sync",
        up.to_str().unwrap(),
        &format!("{remote}photos/tree"),
    ]);
    // `check` compares sizes and the MD5s the ETags carry.
    let checked = rclone(&[
        "check",
        up.to_str().unwrap(),
        &format!("{remote}photos/tree"),
    ]);
    assert!(checked.contains("0 differences found"), "{checked}");
    assert!(
        !checked.contains("hash"),
        "every hash was compared: {checked}"
    );
    rclone(&[
        "copy",
        &format!("{remote}photos/tree"),
        down.to_str().unwrap(),
    ]);
    diff(&up, &down);
}

#[test]
fn s3cmd_puts_lists_gets_and_deletes() {
    if !found("s3cmd", "--version", "apt-get install s3cmd") {
        return;
    }
    let s = server();
    let (id, secret) = s.s3_key("s3cmd", "upload");
    let tmp = tempfile::tempdir().unwrap();
    let host = s.s3_url().trim_start_matches("http://").to_owned();
    let config = tmp.path().join("s3cfg");
    std::fs::write(
        &config,
        format!(
            "[default]\naccess_key = {id}\nsecret_key = {secret}\nhost_base = {host}\n\
             host_bucket = {host}\nuse_https = False\nsignature_v2 = False\n\
             bucket_location = us-east-1\n"
        ),
    )
    .unwrap();
    let s3cmd = |args: &[&str]| {
        let out = Command::new("s3cmd")
            .arg("-c")
            .arg(&config)
            .args(args)
            .output()
            .expect("run s3cmd");
        assert!(
            out.status.success(),
            "s3cmd {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let bytes = common::bytes(700_000, 3);
    let file = tmp.path().join("report.pdf");
    std::fs::write(&file, &bytes).unwrap();
    s3cmd(&["mb", "s3://reports"]);
    s3cmd(&[
        "put",
        file.to_str().unwrap(),
        "s3://reports/2024/report.pdf",
    ]);
    let listed = s3cmd(&["ls", "--recursive", "s3://reports"]);
    assert!(listed.contains("s3://reports/2024/report.pdf"), "{listed}");
    let back = tmp.path().join("back.pdf");
    s3cmd(&[
        "get",
        "s3://reports/2024/report.pdf",
        back.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read(&back).unwrap(), bytes);
    s3cmd(&["del", "s3://reports/2024/report.pdf"]);
    assert!(all_records(&s).is_empty());
}

/// A TLS proxy in front of the S3 port (Debian's stunnel4 with a certificate made for the
/// test), so that clients take their HTTPS paths: boto3 then sends unsigned `aws-chunked`
/// bodies with trailing checksums of its own accord.
struct Tls {
    child: std::process::Child,
    url: String,
    cert: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Tls {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tls_in_front_of(target: &str) -> Option<Tls> {
    if !found("stunnel4", "-version", "apt-get install stunnel4")
        || !found("openssl", "version", "apt-get install openssl")
    {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = dir.path().join("stunnel.conf");
    std::fs::write(
        &conf,
        format!(
            "foreground = yes\npid =\n[s3]\naccept = 127.0.0.1:{port}\nconnect = {}\ncert = {}\nkey = {}\n",
            target.trim_start_matches("http://"),
            cert.display(),
            key.display()
        ),
    )
    .unwrap();
    let child = Command::new("stunnel4")
        .arg(&conf)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start stunnel4");
    let url = format!("https://127.0.0.1:{port}");
    common::eventually("stunnel listens", Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    Some(Tls {
        child,
        url,
        cert,
        _dir: dir,
    })
}

#[test]
fn boto3_over_https_sends_trailing_checksums_that_are_checked() {
    if !crate::boto::boto3() {
        return;
    }
    let s = server();
    let Some(tls) = tls_in_front_of(&s.s3_url()) else {
        return;
    };
    let key = s.s3_key("tls", "upload");
    let tmp = tempfile::tempdir().unwrap();
    let bytes = common::bytes(1_500_000, 21);
    let file = tmp.path().join("over-tls.bin");
    std::fs::write(&file, &bytes).unwrap();
    let v = crate::boto::boto(
        "put-file",
        &tls.url,
        &key,
        &[
            "--file",
            file.to_str().unwrap(),
            "--object-key",
            "tls/file.bin",
            "--verify",
            tls.cert.to_str().unwrap(),
            "--stream",
        ],
    );
    crate::boto::passed(&v);
    assert_eq!(v["sha256"], common::sha256_hex(&bytes));
    // The body went aws-chunked, unsigned, with its checksum in a trailer.
    let sent = &v["sent"];
    assert_eq!(
        sent["x-amz-content-sha256"], "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        "{v}"
    );
    assert!(
        sent["x-amz-trailer"]
            .as_str()
            .is_some_and(|t| t.starts_with("x-amz-checksum-")),
        "{v}"
    );
    assert_eq!(all_records(&s)[0]["hash"], common::sha256_hex(&bytes));
}
