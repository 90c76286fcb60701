//! TLS to PostgreSQL with libpq's `sslmode` and `sslrootcert` in the database URL, against a
//! real PostgreSQL serving a certificate signed by a CA that `openssl` makes for the test.

use std::path::{Path, PathBuf};
use std::process::Command;

use shoebox_testkit::Postgres;

use crate::common::{self, TestServer};
use crate::upload;

const SECRET_KEY: &str = "a-test-key-of-more-than-32-characters-0123456789";

/// Runs openssl in `dir`, panicking with its output when it fails.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA named `name` in `dir`: its certificate (`name.pem`) and key.
fn ca(dir: &Path, name: &str) -> PathBuf {
    let (pem, key) = (format!("{name}.pem"), format!("{name}.key"));
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &pem,
            "-days",
            "2",
            "-subj",
            &format!("/CN=Shoebox test {name}"),
        ],
    );
    dir.join(pem)
}

/// A server certificate for 127.0.0.1 signed by the CA `ca`: (certificate, key), PEM.
fn server_certificate(dir: &Path, ca: &str) -> (Vec<u8>, Vec<u8>) {
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ],
    );
    (
        std::fs::read(dir.join("server.pem")).unwrap(),
        std::fs::read(dir.join("server.key")).unwrap(),
    )
}

fn with_database(url: &str) -> common::Builder {
    TestServer::builder()
        .arg("--database-url")
        .arg(url)
        .arg("--secret-key")
        .arg(SECRET_KEY)
}

#[test]
fn the_database_url_chooses_tls_as_libpq_does() {
    if Command::new("openssl").arg("version").output().is_err() {
        common::unavailable("openssl, to make the test's certificates (apt-get install openssl)");
        return;
    }
    let Some(pg) = Postgres::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let trusted = ca(dir.path(), "trusted");
    let other = ca(dir.path(), "other");
    let (cert, key) = server_certificate(dir.path(), "trusted");
    pg.enable_tls(&cert, &key);
    let url = pg.database("shoebox");
    let tls_sessions = || {
        pg.psql(
            "shoebox",
            "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) \
             WHERE application_name = 'shoebox' AND ssl",
        )
    };

    // Verified against the CA the URL names: the records travel encrypted.
    let verified = format!(
        "{url}?sslmode=verify-full&sslrootcert={}",
        trusted.display()
    );
    let s = with_database(&verified).start();
    let item = upload(&s, "over-tls.bin", b"encrypted on the way to PostgreSQL");
    assert_eq!(
        s.media_bytes(item["id"].as_str().unwrap()),
        b"encrypted on the way to PostgreSQL"
    );
    assert_ne!(tls_sessions(), "0", "Shoebox's connections use TLS");
    drop(s);

    // A certificate from another CA is refused at start, with the reason.
    let wrong = format!("{url}?sslmode=verify-full&sslrootcert={}", other.display());
    let scratch = tempfile::tempdir().unwrap();
    let (status, out) = with_database(&wrong)
        .data_dir(&scratch.path().join("wrong"))
        .start_expecting_failure();
    assert!(!status.success(), "{out}");
    assert!(out.to_lowercase().contains("certificate"), "{out}");

    // `require` encrypts without checking the certificate, as libpq's does; so does the
    // default (`prefer`) when the server offers TLS.
    for url in [format!("{url}?sslmode=require"), url.clone()] {
        let s = with_database(&url).start();
        upload(&s, "plain-url.bin", b"still encrypted");
        assert_ne!(tls_sessions(), "0", "{url}");
    }
    let (status, out) = with_database(&format!("{url}?sslmode=sometimes"))
        .data_dir(&scratch.path().join("sometimes"))
        .start_expecting_failure();
    assert!(!status.success() && out.contains("sslmode"), "{out}");
}
