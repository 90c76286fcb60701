//! Configuration in two stages: clap parses flags and environment variables (every flag has
//! one), then [`Config`] holds the validated values that handlers read.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "shoebox",
    version,
    about = "A single-binary media store: durable uploads, direct serving and a metadata API",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Without a subcommand, shoebox serves.
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the web app and the API (the default).
    Serve(ServeArgs),
    /// Replace a generated admin token with a new one and print it (stop the server first).
    ResetAdminToken(DataDirArgs),
    /// Re-hash every blob and check every record, count, index and record file; exit 1 on
    /// damage. Run with the server stopped.
    Verify {
        #[command(flatten)]
        data: DataDirArgs,
        /// Quarantine corrupt blobs and the records that lost their bytes, recreate counts
        /// and indexes, rewrite record files.
        #[arg(long)]
        repair: bool,
    },
    /// Remove blobs that no record and no record file uses, and stale derived files; refuses
    /// a damaged database.
    Gc {
        #[command(flatten)]
        data: DataDirArgs,
        /// Leave orphans younger than this alone (e.g. 30s, 15m, 2h).
        #[arg(long, default_value = "15m", value_parser = parse_duration)]
        grace: Duration,
    },
    /// Recreate the metadata database from the record files (the old one is moved aside).
    Rebuild(DataDirArgs),
    /// Manage API tokens (works on the data directory; a running server picks changes up
    /// within a second).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Add a new URL-signing key; existing signed URLs keep working unless --keep drops their
    /// key. Restart the server to sign with the new key.
    RotateUrlKey {
        #[command(flatten)]
        data: DataDirArgs,
        /// Keep only this many newest keys (e.g. 1 invalidates every URL signed before).
        #[arg(long)]
        keep: Option<usize>,
    },
    /// Ask a running Shoebox whether it is healthy; exit 0 when it is, 1 when not (for
    /// container health checks, which have no curl).
    Health {
        /// Base URL of the server (default: this machine on $PORT, else 8080).
        #[arg(long, env = "SHOEBOX_HEALTH_URL", default_value_t = default_health_url())]
        url: String,
        /// Seconds to wait for an answer.
        #[arg(long, default_value = "5s", value_parser = parse_duration)]
        timeout: Duration,
    },
    /// Write a backup archive: from the data directory when the server is stopped, or from a
    /// running server with --url.
    Backup {
        #[command(flatten)]
        data: DataDirArgs,
        /// Where to write the archive (a tar file).
        #[arg(long, short)]
        output: PathBuf,
        /// Fetch the archive from a running Shoebox at this base URL instead.
        #[arg(long)]
        url: Option<String>,
        /// The admin token, for --url.
        #[arg(long, env = "SHOEBOX_ADMIN_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
    /// Restore a backup archive into an empty or new data directory, checking every file.
    Restore {
        #[command(flatten)]
        data: DataDirArgs,
        /// The archive written by `shoebox backup` or GET /api/backup.
        file: PathBuf,
    },
    /// Adopt every file under DIR as media, keeping old paths so old URLs keep working.
    Import {
        #[command(flatten)]
        data: DataDirArgs,
        /// The uploads folder to adopt.
        dir: PathBuf,
        /// Put every imported file in this collection.
        #[arg(long)]
        collection: Option<String>,
        /// The URL path the folder was served under (e.g. /uploads); the server then answers
        /// GET <prefix>/<old path> with the file.
        #[arg(long)]
        url_prefix: Option<String>,
        /// Write the old-path-to-new-URL mapping here (.csv or .json); default: CSV on stdout.
        #[arg(long)]
        map: Option<PathBuf>,
        /// Base URL for absolute links in the mapping.
        #[arg(long, env = "SHOEBOX_PUBLIC_URL")]
        public_url: Option<String>,
    },
}

fn default_health_url() -> String {
    let port = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or(8080);
    format!("http://127.0.0.1:{port}")
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it (shown once).
    Create {
        #[command(flatten)]
        data: DataDirArgs,
        /// What the token is for, e.g. "blog uploader".
        #[arg(long)]
        name: String,
        /// upload (create media, change only its own), read (read private media) or admin.
        #[arg(long)]
        scope: crate::tokens::Scope,
        /// Stop working after this long (e.g. 30d, 12h).
        #[arg(long, value_parser = parse_duration)]
        expires_in: Option<Duration>,
    },
    /// List tokens (never their values).
    List(DataDirArgs),
    /// Revoke a token by id.
    Revoke {
        #[command(flatten)]
        data: DataDirArgs,
        id: String,
    },
}

/// Parses a duration: seconds, or a number with s, m, h or d.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration such as 90s, 15m or 2h"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        other => {
            return Err(format!(
                "unknown duration unit {other:?} (use s, m, h or d)"
            ))
        }
    };
    Ok(Duration::from_secs(secs))
}

#[derive(Debug, Clone, Args)]
pub struct DataDirArgs {
    /// Directory holding blobs, metadata and secrets; put it on a persistent disk.
    #[arg(long, env = "SHOEBOX_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// When started as root: give the data directory to this user and group (UID:GID, e.g.
    /// 10001:10001) if it is empty or root's, then drop to them for good before opening
    /// anything. Ignored when not started as root.
    #[arg(long, env = "SHOEBOX_RUN_AS", value_parser = parse_run_as)]
    pub run_as: Option<RunAs>,
}

/// The unprivileged user and group a process started as root works as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunAs {
    pub uid: u32,
    pub gid: u32,
}

/// Parses `UID:GID`; either side may be a name from the system's user or group database
/// (`shoebox:shoebox`). Root on either side is refused: it would drop nothing.
pub fn parse_run_as(s: &str) -> Result<RunAs, String> {
    let (user, group) = s
        .trim()
        .split_once(':')
        .ok_or_else(|| format!("{s:?} is not USER:GROUP such as 10001:10001 or shoebox:shoebox"))?;
    use nix::unistd::{Group, User};
    let uid = numeric_id(user, "user", |n| {
        Some(User::from_name(n).ok()??.uid.as_raw())
    })?;
    let gid = numeric_id(group, "group", |n| {
        Some(Group::from_name(n).ok()??.gid.as_raw())
    })?;
    // u32::MAX is -1 to the kernel: "leave unchanged".
    if [uid, gid].iter().any(|id| *id == 0 || *id == u32::MAX) {
        return Err(format!(
            "{s:?}: run as an unprivileged user and group, not root (e.g. 10001:10001)"
        ));
    }
    Ok(RunAs { uid, gid })
}

/// A number, or a name the system's user or group database knows.
fn numeric_id(s: &str, what: &str, by_name: impl Fn(&str) -> Option<u32>) -> Result<u32, String> {
    let s = s.trim();
    s.parse()
        .ok()
        .or_else(|| by_name(s))
        .ok_or_else(|| format!("no {what} named {s:?} (use a number, e.g. 10001)"))
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// TCP port to listen on (Render sets PORT).
    #[arg(long, env = "PORT", default_value_t = 8080)]
    pub port: u16,

    /// Address to bind.
    #[arg(long, env = "SHOEBOX_BIND", default_value = "0.0.0.0")]
    pub bind: IpAddr,

    #[command(flatten)]
    pub data: DataDirArgs,

    /// Admin token; when unset, one is generated on first start and only its hash is stored.
    #[arg(long, env = "SHOEBOX_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// A file holding the admin token (a mounted secret), instead of SHOEBOX_ADMIN_TOKEN.
    #[arg(long, env = "SHOEBOX_ADMIN_TOKEN_FILE", conflicts_with = "admin_token")]
    pub admin_token_file: Option<PathBuf>,

    /// Public base URL (e.g. https://media.example.com) used to make absolute links.
    #[arg(long, env = "SHOEBOX_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Largest accepted file, in bytes or with a unit (500MiB, 2GiB, 10MB).
    #[arg(long, env = "SHOEBOX_MAX_UPLOAD_BYTES", default_value = "1GiB", value_parser = parse_size)]
    pub max_upload_bytes: u64,

    /// Seconds that in-flight requests get to finish after SIGTERM.
    #[arg(long, env = "SHOEBOX_SHUTDOWN_TIMEOUT", default_value_t = 25)]
    pub shutdown_timeout: u64,

    /// How long a client may send nothing while a request is open (its head or its body)
    /// before it is cut off with 408 (e.g. 60s).
    #[arg(long, env = "SHOEBOX_CLIENT_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub client_timeout: Duration,

    /// HTTP worker threads (default: one per core).
    #[arg(long, env = "SHOEBOX_WORKERS")]
    pub workers: Option<usize>,

    /// Free space kept for the database and work in flight; uploads get 507 below it
    /// (default: 5 % of the disk, at most 256MiB).
    #[arg(long, env = "SHOEBOX_DISK_RESERVE", value_parser = parse_size)]
    pub disk_reserve: Option<u64>,

    /// Memory for keeping small files (up to 256KiB each) ready to send; 0 turns it off.
    #[arg(long, env = "SHOEBOX_FILE_CACHE", default_value = "16MiB", value_parser = parse_size)]
    pub file_cache: u64,

    /// Memory for the metadata database's page cache (sled's `cache_capacity`): more keeps
    /// more of a large store's records in memory. sled holds it loosely (a scan may keep a few
    /// thousand pages beyond it). At least 1MiB.
    #[arg(long, env = "SHOEBOX_DB_CACHE", default_value = "32MiB", value_parser = parse_size)]
    pub db_cache: u64,

    /// How often the background scrub re-reads every blob to find bytes the disk damaged
    /// (e.g. 7d, 12h); `off` turns it off.
    #[arg(long, env = "SHOEBOX_SCRUB_INTERVAL", default_value = "7d", value_parser = parse_interval)]
    pub scrub_interval: Interval,

    /// How fast the scrub reads, per second, so that it never competes with serving.
    #[arg(long, env = "SHOEBOX_SCRUB_RATE", default_value = "16MiB", value_parser = parse_size)]
    pub scrub_rate: u64,

    /// Refuse to start unless the data directory is on a persistent disk of its own.
    #[arg(
        long,
        env = "SHOEBOX_REQUIRE_PERSISTENT_DISK",
        value_parser = clap::builder::BoolishValueParser::new(),
        num_args = 0..=1,
        default_missing_value = "true",
        default_value = "false"
    )]
    pub require_persistent_disk: bool,

    /// A token that may read /metrics only (the admin token always may).
    #[arg(long, env = "SHOEBOX_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,

    /// Origins allowed to read files and public listings from other sites: a comma list of
    /// origins (https://example.com), or * for any. Never applies to writes or credentials.
    #[arg(long, env = "SHOEBOX_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,

    /// Content types accepted for upload, e.g. image/*,video/*,application/pdf (default: any).
    #[arg(long, env = "SHOEBOX_ALLOWED_TYPES", value_delimiter = ',')]
    pub allowed_types: Vec<String>,

    /// Reverse proxies (IPs or CIDRs) whose X-Forwarded-For is believed for rate limiting.
    #[arg(long, env = "SHOEBOX_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<String>,

    /// Log format: text (for terminals) or json (one object per line).
    #[arg(long, env = "SHOEBOX_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
}

/// Parses a byte count: a plain number, or a number with a binary (KiB, MiB, GiB, TiB) or
/// decimal (KB, MB, GB, TB) unit. Single letters (K, M, G, T) are binary.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let num: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size such as 1048576, 500MiB or 2GB"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        other => {
            return Err(format!(
                "unknown size unit {other:?} (use KiB, MiB, GiB, KB, MB or GB)"
            ))
        }
    };
    num.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// A duration that may be switched off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval(pub Option<Duration>);

/// Parses a duration (see [`parse_duration`]), or `off` (also `0`) for none.
pub fn parse_interval(s: &str) -> Result<Interval, String> {
    match s.trim() {
        "off" | "0" | "" => Ok(Interval(None)),
        other => parse_duration(other).map(|d| Interval(Some(d))),
    }
}

/// Reads an admin token from a file (`SHOEBOX_ADMIN_TOKEN_FILE`), so that orchestrators can
/// mount it as a secret instead of putting it on a command line or in the environment.
fn read_token_file(path: &std::path::Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "could not read the admin token from {}: {e}",
            path.display()
        )
    })?;
    let token = text.trim();
    if token.len() < 16 {
        return Err(format!(
            "the admin token in {} must be at least 16 characters",
            path.display()
        ));
    }
    Ok(token.to_owned())
}

fn clean_list(items: &[String]) -> Vec<String> {
    items
        .iter()
        .map(|s| s.trim().trim_end_matches('/').to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Validated settings for a running server.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub admin_token: Option<String>,
    /// Without a trailing slash.
    pub public_url: Option<String>,
    pub max_upload_bytes: u64,
    pub shutdown_timeout: Duration,
    /// How long a client may send nothing while a request is open.
    pub client_timeout: Duration,
    pub workers: Option<usize>,
    /// Bytes of small files kept in memory.
    pub file_cache: u64,
    /// Bytes of the metadata database's page cache.
    pub db_cache: u64,
    pub disk_reserve: Option<u64>,
    /// Between scrub passes; `None` when the scrub is off.
    pub scrub_interval: Option<Duration>,
    /// Bytes a second the scrub reads.
    pub scrub_rate: u64,
    pub require_persistent_disk: bool,
    pub metrics_token: Option<String>,
    /// Empty: no CORS; `["*"]`: any origin.
    pub cors_origins: Vec<String>,
    /// Lower-case patterns like `image/*` or `application/pdf`; empty allows everything.
    pub allowed_types: Vec<String>,
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl Config {
    /// Whether a content type may be uploaded.
    pub fn type_allowed(&self, content_type: &str) -> bool {
        let ct = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        self.allowed_types.is_empty()
            || self
                .allowed_types
                .iter()
                .any(|p| match p.strip_suffix("/*") {
                    Some(top) => ct.split('/').next() == Some(top),
                    None => *p == ct,
                })
    }
}

impl Config {
    pub fn from_args(args: ServeArgs) -> Result<Config, String> {
        if let Some(token) = &args.admin_token {
            if token.trim().len() < 16 {
                return Err("SHOEBOX_ADMIN_TOKEN must be at least 16 characters; unset it to have one generated".into());
            }
        }
        let admin_token = match &args.admin_token_file {
            Some(path) => Some(read_token_file(path)?),
            None => args.admin_token.map(|t| t.trim().to_owned()),
        };
        let public_url = match args.public_url.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(u) if u.starts_with("http://") || u.starts_with("https://") => {
                Some(u.trim_end_matches('/').to_owned())
            }
            Some(u) => {
                return Err(format!(
                    "SHOEBOX_PUBLIC_URL must start with http:// or https:// (got {u:?})"
                ))
            }
        };
        if args.max_upload_bytes == 0 {
            return Err("SHOEBOX_MAX_UPLOAD_BYTES must be greater than zero".into());
        }
        for t in clean_list(&args.allowed_types) {
            let ok = t
                .split_once('/')
                .is_some_and(|(a, b)| !a.is_empty() && !b.is_empty() && !a.contains('*'));
            if !ok {
                return Err(format!(
                    "SHOEBOX_ALLOWED_TYPES: {t:?} is not a type like image/* or application/pdf"
                ));
            }
        }
        for o in clean_list(&args.cors_origins) {
            if o != "*" && !(o.starts_with("http://") || o.starts_with("https://")) {
                return Err(format!(
                    "SHOEBOX_CORS_ORIGINS: {o:?} is not an origin like https://example.com, or *"
                ));
            }
        }
        if args.client_timeout.is_zero() {
            return Err("SHOEBOX_CLIENT_TIMEOUT must be at least 1s".into());
        }
        if args.scrub_rate == 0 {
            return Err("SHOEBOX_SCRUB_RATE must be greater than zero; set SHOEBOX_SCRUB_INTERVAL=off to turn the scrub off".into());
        }
        if args.db_cache < 1 << 20 {
            return Err("SHOEBOX_DB_CACHE must be at least 1MiB".into());
        }
        if args.workers == Some(0) {
            return Err("SHOEBOX_WORKERS must be at least 1".into());
        }
        Ok(Config {
            listen: SocketAddr::new(args.bind, args.port),
            data_dir: args.data.data_dir,
            admin_token,
            public_url,
            max_upload_bytes: args.max_upload_bytes,
            shutdown_timeout: Duration::from_secs(args.shutdown_timeout),
            client_timeout: args.client_timeout,
            workers: args.workers,
            file_cache: args.file_cache,
            db_cache: args.db_cache,
            disk_reserve: args.disk_reserve,
            scrub_interval: args.scrub_interval.0,
            scrub_rate: args.scrub_rate,
            require_persistent_disk: args.require_persistent_disk,
            metrics_token: args.metrics_token.filter(|t| !t.trim().is_empty()),
            cors_origins: clean_list(&args.cors_origins),
            allowed_types: clean_list(&args.allowed_types)
                .iter()
                .map(|t| t.to_ascii_lowercase())
                .collect(),
            trusted_proxies: clean_list(&args.trusted_proxies)
                .iter()
                .map(|p| {
                    p.parse::<ipnet::IpNet>()
                        .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                        .map_err(|_| {
                            format!("SHOEBOX_TRUSTED_PROXIES: {p:?} is not an IP address or CIDR")
                        })
                })
                .collect::<Result<_, _>>()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn every_serve_flag_reads_the_documented_environment_variable() {
        let cmd = Cli::command();
        let mut envs: Vec<(String, String)> = cmd
            .get_arguments()
            .filter(|a| a.get_long().is_some())
            .map(|a| {
                let env = a
                    .get_env()
                    .map(|e| e.to_string_lossy().into_owned())
                    .unwrap_or_default();
                (a.get_long().unwrap_or_default().to_owned(), env)
            })
            .collect();
        envs.sort();
        let expected = [
            ("admin-token", "SHOEBOX_ADMIN_TOKEN"),
            ("admin-token-file", "SHOEBOX_ADMIN_TOKEN_FILE"),
            ("allowed-types", "SHOEBOX_ALLOWED_TYPES"),
            ("bind", "SHOEBOX_BIND"),
            ("client-timeout", "SHOEBOX_CLIENT_TIMEOUT"),
            ("cors-origins", "SHOEBOX_CORS_ORIGINS"),
            ("trusted-proxies", "SHOEBOX_TRUSTED_PROXIES"),
            ("data-dir", "SHOEBOX_DATA_DIR"),
            ("db-cache", "SHOEBOX_DB_CACHE"),
            ("disk-reserve", "SHOEBOX_DISK_RESERVE"),
            ("file-cache", "SHOEBOX_FILE_CACHE"),
            ("log-format", "SHOEBOX_LOG_FORMAT"),
            ("metrics-token", "SHOEBOX_METRICS_TOKEN"),
            ("max-upload-bytes", "SHOEBOX_MAX_UPLOAD_BYTES"),
            ("port", "PORT"),
            ("public-url", "SHOEBOX_PUBLIC_URL"),
            ("require-persistent-disk", "SHOEBOX_REQUIRE_PERSISTENT_DISK"),
            ("run-as", "SHOEBOX_RUN_AS"),
            ("scrub-interval", "SHOEBOX_SCRUB_INTERVAL"),
            ("scrub-rate", "SHOEBOX_SCRUB_RATE"),
            ("shutdown-timeout", "SHOEBOX_SHUTDOWN_TIMEOUT"),
            ("workers", "SHOEBOX_WORKERS"),
        ];
        let mut expected: Vec<(String, String)> = expected
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        expected.sort();
        assert_eq!(envs, expected);
        cmd.debug_assert();
    }

    #[test]
    fn defaults_serve_on_8080_from_data() {
        let cli = Cli::try_parse_from(["shoebox"]).unwrap();
        assert!(cli.command.is_none());
        // PORT may be set in the environment running the tests; only check when it is not.
        if std::env::var_os("PORT").is_none() {
            assert_eq!(cli.serve.port, 8080);
        }
        if std::env::var_os("SHOEBOX_DATA_DIR").is_none() {
            assert_eq!(cli.serve.data.data_dir, PathBuf::from("./data"));
        }
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("3w").is_err());
        assert_eq!(parse_interval("off"), Ok(Interval(None)));
        assert_eq!(
            parse_interval("12h"),
            Ok(Interval(Some(Duration::from_secs(43200))))
        );
    }

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("500 MiB"), Ok(500 << 20));
        assert_eq!(parse_size("10MB"), Ok(10_000_000));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        assert!(parse_size("ten").is_err());
        assert!(parse_size("5 parsecs").is_err());
        assert!(parse_size("99999999999TiB").is_err());
    }

    #[test]
    fn run_as_parses_numbers_and_names_and_refuses_root() {
        let ids = parse_run_as("10001:10002").map(|r| (r.uid, r.gid));
        assert_eq!(ids, Ok((10001, 10002)));
        assert!(parse_run_as("10001").is_err(), "a group is needed");
        assert!(parse_run_as("0:10001").is_err());
        assert!(parse_run_as("10001:0").is_err());
        assert!(parse_run_as("root:root").is_err(), "root by name is root");
        assert!(parse_run_as("no-such-user-here:10001").is_err());
        let cli = Cli::try_parse_from(["shoebox", "verify", "--run-as", "10001:10001"]).unwrap();
        let Some(Command::Verify { data, .. }) = cli.command else {
            panic!("verify")
        };
        assert_eq!(data.run_as.map(|r| r.uid), Some(10001));
    }

    #[test]
    fn validation_rejects_bad_values() {
        let parse = |args: &[&str]| {
            let mut all = vec!["shoebox"];
            all.extend_from_slice(args);
            Config::from_args(Cli::try_parse_from(all).unwrap().serve)
        };
        assert!(parse(&["--admin-token", "short"]).is_err());
        assert!(parse(&["--public-url", "media.example.com"]).is_err());
        assert!(parse(&["--db-cache", "512KiB"]).is_err());
        let ok = parse(&["--public-url", "https://media.example.com/", "--port", "0"]).unwrap();
        assert_eq!(ok.public_url.as_deref(), Some("https://media.example.com"));
        if std::env::var_os("SHOEBOX_DB_CACHE").is_none() {
            assert_eq!(ok.db_cache, 32 << 20);
        }
    }
}
