//! The kit against the real engines: PostgreSQL keeps a committed row across a SIGKILL.

use std::path::PathBuf;
use std::process::{Command, Output};

use shoebox_testkit::Postgres;

#[test]
fn postgres_keeps_a_committed_row_across_a_kill_and_a_restart() {
    let Some(mut pg) = Postgres::start() else {
        return;
    };
    let url = pg.database("a");
    assert_eq!(
        url,
        format!("postgres://postgres@127.0.0.1:{}/a", pg.port())
    );
    assert_eq!(pg.database("a"), url, "a second call finds the database");
    assert_eq!(psql(&url, "SHOW listen_addresses"), "127.0.0.1");
    assert_eq!(psql(&url, "SHOW fsync"), "on");
    assert_eq!(psql(&url, "SELECT current_database()"), "a");

    psql(
        &url,
        "CREATE TABLE t (v text); INSERT INTO t VALUES ('kept')",
    );
    pg.kill();
    let down = psql_command(&url, "SELECT 1")
        .output()
        .expect("running psql");
    assert!(
        !down.status.success(),
        "the server still answers after kill()"
    );

    pg.restart();
    assert_eq!(psql(&url, "SELECT v FROM t"), "kept");
    assert_eq!(
        pg.database("b"),
        format!("postgres://postgres@127.0.0.1:{}/b", pg.port())
    );
}

/// psql's unaligned output for `sql` on `url`, trimmed; panics when psql fails.
fn psql(url: &str, sql: &str) -> String {
    let out = psql_command(url, sql).output().expect("running psql");
    assert!(out.status.success(), "psql {sql:?}: {}", describe(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn psql_command(url: &str, sql: &str) -> Command {
    let mut cmd = Command::new(psql_program());
    cmd.args([
        "-X",
        "-w",
        "-v",
        "ON_ERROR_STOP=1",
        "-tA",
        "-d",
        url,
        "-c",
        sql,
    ]);
    cmd
}

/// psql on PATH, or in the newest /usr/lib/postgresql/*/bin.
fn psql_program() -> PathBuf {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("psql"))
            .find(|p| p.is_file())
    });
    on_path
        .or_else(|| {
            let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path().join("bin/psql"))
                .filter(|p| p.is_file())
                .collect();
            found.sort();
            found.pop()
        })
        .expect("psql, since Postgres::start found PostgreSQL's programs")
}

fn describe(out: &Output) -> String {
    format!(
        "{}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
