//! The command line: every subcommand and flag, each flag with its environment variable (the
//! first of the two configuration stages; [`super::Config`] is the second).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use super::values::{parse_duration, parse_interval, parse_run_as, parse_size, Interval, RunAs};

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
    Serve(Box<ServeArgs>),
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
        /// Remove resumable uploads that saw no bytes for this long (as the server does).
        #[arg(long, env = "SHOEBOX_UPLOAD_EXPIRY", default_value = "24h", value_parser = parse_duration)]
        upload_expiry: Duration,
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
    /// Move a store to another setup, verifying every copy: its blobs to another blob store
    /// (--to-blob-store: a bucket, or `disk` for the data directory's own blobs/), its records,
    /// collections and credentials to another database (--to-database: PostgreSQL, or `sled`
    /// for the data directory's own), or both. The source keeps everything; run it again after
    /// an interruption, then start the server with the new settings. Stop the server first.
    Migrate {
        #[command(flatten)]
        data: DataDirArgs,
        /// Where the blobs go: s3://BUCKET?endpoint=URL&region=REGION, or disk.
        #[arg(long)]
        to_blob_store: Option<String>,
        /// Where the records, collections and credentials go: postgres://USER:PASSWORD@HOST/DB
        /// (with SHOEBOX_SECRET_KEY set), or sled for the data directory's own.
        #[arg(long, env = "SHOEBOX_TO_DATABASE_URL", hide_env_values = true)]
        to_database: Option<String>,
        /// The destination bucket's access key id (default: the source's key, then
        /// AWS_ACCESS_KEY_ID).
        #[arg(long, env = "SHOEBOX_TO_BLOB_STORE_ACCESS_KEY_ID")]
        to_blob_store_access_key_id: Option<String>,
        /// The destination bucket's secret key (default: the source's, then
        /// AWS_SECRET_ACCESS_KEY).
        #[arg(
            long,
            env = "SHOEBOX_TO_BLOB_STORE_SECRET_ACCESS_KEY",
            hide_env_values = true
        )]
        to_blob_store_secret_access_key: Option<String>,
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
    /// Create a token and print it (shown once), with --s3 its S3 credentials too.
    Create {
        #[command(flatten)]
        data: DataDirArgs,
        /// What the token is for, e.g. "blog uploader".
        #[arg(long)]
        name: String,
        /// upload (create media, change only its own), read (read private media) or admin.
        #[arg(long, value_parser = ["upload", "read", "admin"])]
        scope: String,
        /// Stop working after this long (e.g. 30d, 12h).
        #[arg(long, value_parser = parse_duration)]
        expires_in: Option<Duration>,
        /// Also make S3 credentials for the S3 endpoint, printed after the token as
        /// AWS_ACCESS_KEY_ID=… and AWS_SECRET_ACCESS_KEY=… (shown once).
        #[arg(long)]
        s3: bool,
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

    /// Keep blobs in an S3 bucket instead of under the data directory:
    /// s3://BUCKET?endpoint=URL&region=REGION (Garage, MinIO, AWS S3). The data directory
    /// keeps the records and stages uploads.
    #[arg(long, env = "SHOEBOX_BLOB_STORE")]
    pub blob_store: Option<String>,

    /// The blob store's access key id (default: AWS_ACCESS_KEY_ID).
    #[arg(long, env = "SHOEBOX_BLOB_STORE_ACCESS_KEY_ID")]
    pub blob_store_access_key_id: Option<String>,

    /// The blob store's secret access key (default: AWS_SECRET_ACCESS_KEY). Prefer the
    /// environment to the flag, which other users can see in the process list.
    #[arg(
        long,
        env = "SHOEBOX_BLOB_STORE_SECRET_ACCESS_KEY",
        hide_env_values = true
    )]
    pub blob_store_secret_access_key: Option<String>,

    /// Keep the records in PostgreSQL instead of sled and records/ under the data directory:
    /// postgres://USER:PASSWORD@HOST:PORT/DATABASE. With SHOEBOX_BLOB_STORE too, any number of
    /// instances can serve the same store, and the data directory is scratch space.
    #[arg(long, env = "SHOEBOX_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// With SHOEBOX_DATABASE_URL: the key that seals the credentials the instances share in
    /// PostgreSQL (API tokens, S3 keys, the session and URL-signing keys). At least 32
    /// characters, random, the same on every instance; keep it out of the database's backups.
    #[arg(long, env = "SHOEBOX_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<String>,

    /// The most connections to PostgreSQL this process opens.
    #[arg(long, env = "SHOEBOX_DATABASE_POOL_SIZE", default_value_t = 16,
          value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub database_pool_size: u16,
}

impl DataDirArgs {
    /// The PostgreSQL database when `SHOEBOX_DATABASE_URL` names one: connected, its schema
    /// brought up to date.
    pub fn database(&self) -> Result<Option<std::sync::Arc<crate::store::PgMeta>>, String> {
        let Some(url) = self
            .database_url
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())
        else {
            return Ok(None);
        };
        let pg = crate::store::PgMeta::connect(url, usize::from(self.database_pool_size))
            .map_err(|e| format!("SHOEBOX_DATABASE_URL: {e}"))?;
        Ok(Some(std::sync::Arc::new(pg)))
    }

    /// The blob store's bucket when `SHOEBOX_BLOB_STORE` names one: parsed, with its key
    /// (falling back to the usual `AWS_*` variables), connected and checked with one request.
    pub fn bucket(&self) -> Result<Option<std::sync::Arc<crate::store::bucket::Bucket>>, String> {
        use crate::store::bucket::Bucket;
        if self
            .blob_store
            .as_deref()
            .is_none_or(|u| u.trim().is_empty())
        {
            return Ok(None);
        }
        let bucket = Bucket::connect(self.bucket_config()?).map_err(|e| e.to_string())?;
        bucket
            .check()
            .map_err(|e| format!("SHOEBOX_BLOB_STORE ({}): {e}", bucket.describe()))?;
        Ok(Some(std::sync::Arc::new(bucket)))
    }

    /// `SHOEBOX_BLOB_STORE` parsed, with its key.
    pub fn bucket_config(&self) -> Result<crate::store::bucket::BucketConfig, String> {
        use crate::store::bucket::BucketConfig;
        let url = self.blob_store.as_deref().unwrap_or_default().trim();
        let from_env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let key_id = self
            .blob_store_access_key_id
            .clone()
            .or_else(|| from_env("AWS_ACCESS_KEY_ID"))
            .unwrap_or_default();
        let secret = self
            .blob_store_secret_access_key
            .clone()
            .or_else(|| from_env("AWS_SECRET_ACCESS_KEY"))
            .unwrap_or_default();
        let mut config = BucketConfig::parse(url, &key_id, &secret)
            .map_err(|e| format!("SHOEBOX_BLOB_STORE {e}"))?;
        if !url.contains("region=") {
            if let Some(region) = from_env("AWS_REGION").or_else(|| from_env("AWS_DEFAULT_REGION"))
            {
                config.region = region;
            }
        }
        Ok(config)
    }
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

    /// How long a resumable (tus) upload is kept after its last bytes arrived; unfinished
    /// ones are then removed, finished ones forgotten (e.g. 24h, 90m).
    #[arg(long, env = "SHOEBOX_UPLOAD_EXPIRY", default_value = "24h", value_parser = parse_duration)]
    pub upload_expiry: Duration,

    /// Serve the S3 API on this port too (path-style addressing, on the same address as the
    /// main port).
    #[arg(long, env = "SHOEBOX_S3_PORT")]
    pub s3_port: Option<u16>,

    /// Serve the S3 API on the main port for requests whose Host is this name (e.g. a second
    /// custom domain of the same service, such as s3.example.com).
    #[arg(long, env = "SHOEBOX_S3_HOST")]
    pub s3_host: Option<String>,

    /// Also accept virtual-hosted-style S3 requests, BUCKET.DOMAIN (needs SHOEBOX_S3_PORT or
    /// SHOEBOX_S3_HOST).
    #[arg(long, env = "SHOEBOX_S3_DOMAIN")]
    pub s3_domain: Option<String>,

    /// HTTP worker threads (default: one per core; four per core with SHOEBOX_DATABASE_URL,
    /// whose lookups wait on the network).
    #[arg(long, env = "SHOEBOX_WORKERS")]
    pub workers: Option<usize>,

    /// Free space kept for the database and work in flight; uploads get 507 below it
    /// (default: 5 % of the disk, at most 256MiB).
    #[arg(long, env = "SHOEBOX_DISK_RESERVE", value_parser = parse_size)]
    pub disk_reserve: Option<u64>,

    /// Memory for keeping small files (up to 256KiB each) ready to send; 0 turns it off.
    #[arg(long, env = "SHOEBOX_FILE_CACHE", default_value = "16MiB", value_parser = parse_size)]
    pub file_cache: u64,

    /// The widths (and heights) image variants may be asked for with `?w=` and `?h=`; any
    /// other size is refused, so nobody can make the server render unbounded sizes.
    #[arg(
        long,
        env = "SHOEBOX_VARIANT_WIDTHS",
        value_delimiter = ',',
        default_value = "160,320,640,1280,1920"
    )]
    pub variant_widths: Vec<u32>,

    /// Keep uploaded JPEG, PNG and WebP pictures exactly as they came, location and device
    /// metadata included (by default it is removed, without a re-encode).
    #[arg(
        long,
        env = "SHOEBOX_KEEP_METADATA",
        value_parser = clap::builder::BoolishValueParser::new(),
        num_args = 0..=1,
        default_missing_value = "true",
        default_value = "false"
    )]
    pub keep_metadata: bool,

    /// Image variants made at a time (default: the number of cores); more requests wait.
    #[arg(long, env = "SHOEBOX_VARIANT_JOBS")]
    pub variant_jobs: Option<usize>,

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

    /// Answer reads of public files with a redirect (302) to a short-lived presigned URL of
    /// the blob store's bucket, so that the bytes go from the bucket straight to the client
    /// (needs SHOEBOX_BLOB_STORE).
    #[arg(
        long,
        env = "SHOEBOX_BLOB_REDIRECT",
        value_parser = clap::builder::BoolishValueParser::new(),
        num_args = 0..=1,
        default_missing_value = "true",
        default_value = "false"
    )]
    pub blob_redirect: bool,

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
