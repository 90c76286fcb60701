//! Configuration in two stages: clap parses flags and environment variables (every flag has
//! one), then [`Config`] holds the validated values that handlers read.

mod cli;
mod values;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use cli::{Cli, Command, DataDirArgs, ServeArgs, TokenCommand};
pub use values::{parse_duration, parse_interval, parse_run_as, parse_size, Interval, RunAs};

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

/// The host of an `http(s)://` URL, without its port.
fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    Some(match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    })
}

/// Validated settings for a running server.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// The data directory's settings, with where blobs live (see [`DataDirArgs::bucket`]).
    pub data: DataDirArgs,
    pub admin_token: Option<String>,
    /// Without a trailing slash.
    pub public_url: Option<String>,
    pub max_upload_bytes: u64,
    pub shutdown_timeout: Duration,
    /// How long a client may send nothing while a request is open.
    pub client_timeout: Duration,
    /// How long a resumable upload is kept after its last bytes arrived.
    pub upload_expiry: Duration,
    /// The S3 API's own port.
    pub s3_port: Option<u16>,
    /// The host name for which the main port answers with the S3 API (lower case).
    pub s3_host: Option<String>,
    /// The domain under which `BUCKET.DOMAIN` names a bucket (lower case).
    pub s3_domain: Option<String>,
    pub workers: Option<usize>,
    /// Bytes of small files kept in memory.
    pub file_cache: u64,
    /// Bytes of the metadata database's page cache.
    pub db_cache: u64,
    /// The sizes image variants may be asked for, ascending.
    pub variant_widths: Vec<u32>,
    /// Image variants made at a time.
    pub variant_jobs: usize,
    /// Keep uploaded pictures' metadata (location, device) rather than remove it.
    pub keep_metadata: bool,
    pub disk_reserve: Option<u64>,
    /// Between scrub passes; `None` when the scrub is off.
    pub scrub_interval: Option<Duration>,
    /// Bytes a second the scrub reads.
    pub scrub_rate: u64,
    pub require_persistent_disk: bool,
    /// Public reads answered with a redirect to a presigned URL of the blob store's bucket.
    pub blob_redirect: bool,
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
        if args.upload_expiry.is_zero() {
            return Err("SHOEBOX_UPLOAD_EXPIRY must be at least 1s".into());
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
        let mut variant_widths = args.variant_widths.clone();
        variant_widths.sort_unstable();
        variant_widths.dedup();
        if variant_widths.is_empty() || variant_widths.iter().any(|&w| w == 0 || w > 8192) {
            return Err("SHOEBOX_VARIANT_WIDTHS must list widths from 1 to 8192".into());
        }
        if args.variant_jobs == Some(0) {
            return Err("SHOEBOX_VARIANT_JOBS must be at least 1".into());
        }
        if args.workers == Some(0) {
            return Err("SHOEBOX_WORKERS must be at least 1".into());
        }
        if args.s3_port.is_some_and(|p| p != 0 && p == args.port) {
            return Err("SHOEBOX_S3_PORT must differ from SHOEBOX_PORT; to serve S3 on the main port, set SHOEBOX_S3_HOST".into());
        }
        let host_name = |name: &str, value: &Option<String>| -> Result<Option<String>, String> {
            let Some(v) = value.as_deref().map(str::trim).filter(|v| !v.is_empty()) else {
                return Ok(None);
            };
            let v = v.trim_end_matches('.').to_ascii_lowercase();
            let label_ok = |l: &str| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            };
            if v.len() > 253 || !v.split('.').all(label_ok) {
                return Err(format!(
                    "{name}: {v:?} is not a host name (no scheme, port or path)"
                ));
            }
            Ok(Some(v))
        };
        let s3_host = host_name("SHOEBOX_S3_HOST", &args.s3_host)?;
        let app_host = public_url
            .as_deref()
            .and_then(url_host)
            .map(|h| h.to_ascii_lowercase());
        if s3_host.is_some() && s3_host == app_host {
            return Err("SHOEBOX_S3_HOST names the app's own host (SHOEBOX_PUBLIC_URL): every request would go to the S3 API; give S3 a host of its own".into());
        }
        let s3_domain = host_name("SHOEBOX_S3_DOMAIN", &args.s3_domain)?;
        if s3_domain.is_some() && s3_host.is_none() && args.s3_port.is_none() {
            return Err("SHOEBOX_S3_DOMAIN needs SHOEBOX_S3_PORT or SHOEBOX_S3_HOST".into());
        }
        if args
            .data
            .blob_store
            .as_deref()
            .is_some_and(|u| !u.trim().is_empty())
        {
            // Checked here for its shape; the server connects at start.
            args.data.bucket_config()?;
        } else if args.blob_redirect {
            return Err(
                "SHOEBOX_BLOB_REDIRECT needs SHOEBOX_BLOB_STORE: it redirects reads to \
                        the blob store's bucket"
                    .into(),
            );
        }
        Ok(Config {
            listen: SocketAddr::new(args.bind, args.port),
            data_dir: args.data.data_dir.clone(),
            data: args.data,
            admin_token,
            public_url,
            max_upload_bytes: args.max_upload_bytes,
            shutdown_timeout: Duration::from_secs(args.shutdown_timeout),
            client_timeout: args.client_timeout,
            upload_expiry: args.upload_expiry,
            s3_port: args.s3_port,
            s3_host,
            s3_domain,
            workers: args.workers,
            file_cache: args.file_cache,
            db_cache: args.db_cache,
            variant_widths,
            keep_metadata: args.keep_metadata,
            variant_jobs: args.variant_jobs.unwrap_or_else(|| {
                std::thread::available_parallelism().map_or(2, std::num::NonZero::get)
            }),
            disk_reserve: args.disk_reserve,
            scrub_interval: args.scrub_interval.0,
            scrub_rate: args.scrub_rate,
            require_persistent_disk: args.require_persistent_disk,
            blob_redirect: args.blob_redirect,
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
    use clap::Parser;

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
            ("blob-redirect", "SHOEBOX_BLOB_REDIRECT"),
            ("blob-store", "SHOEBOX_BLOB_STORE"),
            (
                "blob-store-access-key-id",
                "SHOEBOX_BLOB_STORE_ACCESS_KEY_ID",
            ),
            (
                "blob-store-secret-access-key",
                "SHOEBOX_BLOB_STORE_SECRET_ACCESS_KEY",
            ),
            ("client-timeout", "SHOEBOX_CLIENT_TIMEOUT"),
            ("database-url", "SHOEBOX_DATABASE_URL"),
            ("database-pool-size", "SHOEBOX_DATABASE_POOL_SIZE"),
            ("secret-key", "SHOEBOX_SECRET_KEY"),
            ("upload-expiry", "SHOEBOX_UPLOAD_EXPIRY"),
            ("cors-origins", "SHOEBOX_CORS_ORIGINS"),
            ("trusted-proxies", "SHOEBOX_TRUSTED_PROXIES"),
            ("data-dir", "SHOEBOX_DATA_DIR"),
            ("db-cache", "SHOEBOX_DB_CACHE"),
            ("disk-reserve", "SHOEBOX_DISK_RESERVE"),
            ("file-cache", "SHOEBOX_FILE_CACHE"),
            ("keep-metadata", "SHOEBOX_KEEP_METADATA"),
            ("log-format", "SHOEBOX_LOG_FORMAT"),
            ("metrics-token", "SHOEBOX_METRICS_TOKEN"),
            ("max-upload-bytes", "SHOEBOX_MAX_UPLOAD_BYTES"),
            ("port", "PORT"),
            ("public-url", "SHOEBOX_PUBLIC_URL"),
            ("require-persistent-disk", "SHOEBOX_REQUIRE_PERSISTENT_DISK"),
            ("run-as", "SHOEBOX_RUN_AS"),
            ("s3-domain", "SHOEBOX_S3_DOMAIN"),
            ("s3-host", "SHOEBOX_S3_HOST"),
            ("s3-port", "SHOEBOX_S3_PORT"),
            ("scrub-interval", "SHOEBOX_SCRUB_INTERVAL"),
            ("scrub-rate", "SHOEBOX_SCRUB_RATE"),
            ("shutdown-timeout", "SHOEBOX_SHUTDOWN_TIMEOUT"),
            ("variant-jobs", "SHOEBOX_VARIANT_JOBS"),
            ("variant-widths", "SHOEBOX_VARIANT_WIDTHS"),
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
