//! The `shoebox` binary: parse the command line, start logging, dispatch, map errors to an
//! exit code.

mod commands;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use shoebox::config::{Cli, Command, Config, DataDirArgs, TokenCommand};
use shoebox::credentials::secrets::{self, AdminToken};
use shoebox::privileges;

fn init_tracing(json: bool) {
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // The S3 engine logs every refused request (a wrong signature, a missing key) as an error;
    // the access log already has each request's status. `RUST_LOG=s3s=debug` brings it back.
    if !std::env::var("RUST_LOG").is_ok_and(|v| v.contains("s3s")) {
        if let Ok(quiet) = "s3s=off".parse() {
            filter = filter.add_directive(quiet);
        }
    }
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        // One JSON object per line, fields at the top level, for log pipelines.
        fmt.json()
            .flatten_event(true)
            .with_current_span(false)
            .init();
    } else {
        fmt.with_ansi(std::io::stderr().is_terminal()).init();
    }
}

/// What a command ends in: its exit code, or the error that stopped it.
type CommandResult = Result<ExitCode, Box<dyn std::error::Error>>;

fn main() -> ExitCode {
    // Before anything is created: the store's files are private to the user it runs as.
    privileges::private_umask();
    let cli = Cli::parse();
    let json = match &cli.command {
        None => cli.serve.log_format == "json",
        Some(Command::Serve(args)) => args.log_format == "json",
        Some(_) => std::env::var("SHOEBOX_LOG_FORMAT").is_ok_and(|v| v == "json"),
    };
    init_tracing(json);
    if let Some(data) = data_dir_of(&cli) {
        if let Err(e) = privileges::enter(&data.data_dir, data.run_as) {
            eprintln!("shoebox: {e}");
            return ExitCode::from(2);
        }
    }
    let result = match cli.command {
        None => serve(cli.serve),
        Some(Command::Serve(args)) => serve(*args),
        Some(Command::ResetAdminToken(args)) => reset_admin_token(&args),
        Some(Command::Verify { data, repair }) => commands::verify(&data, repair),
        Some(Command::Gc {
            data,
            grace,
            upload_expiry,
        }) => commands::gc(&data, grace, upload_expiry),
        Some(Command::Rebuild(args)) => commands::rebuild(&args),
        Some(Command::Health { url, timeout }) => commands::health(&url, timeout),
        Some(Command::Token(cmd)) => commands::token(cmd),
        Some(Command::RotateUrlKey { data, keep }) => commands::rotate_url_key(&data, keep),
        Some(Command::Backup {
            data,
            output,
            url,
            token,
        }) => commands::backup(&data, &output, url.as_deref(), token.as_deref()),
        Some(Command::Restore { data, file }) => commands::restore(&data, &file),
        Some(Command::Migrate {
            data,
            to_blob_store,
            to_blob_store_access_key_id,
            to_blob_store_secret_access_key,
            to_database,
        }) => commands::migrate(
            &data,
            commands::migrate::Targets {
                blob_store: to_blob_store,
                key_id: to_blob_store_access_key_id,
                secret: to_blob_store_secret_access_key,
                database: to_database,
            },
        ),
        Some(Command::Import {
            data,
            dir,
            collection,
            url_prefix,
            map,
            public_url,
        }) => commands::import(
            &data,
            &dir,
            collection,
            url_prefix,
            map.as_deref(),
            public_url.as_deref(),
        ),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("shoebox: {e}");
            // 1 is reserved for "verify found damage".
            ExitCode::from(2)
        }
    }
}

/// The data directory a command works on, and whom to work as. Every command that touches
/// it honours SHOEBOX_RUN_AS, not only the server: one run from a root shell in the container
/// (`rebuild`, `token create`) would otherwise leave files the server can no longer read.
fn data_dir_of(cli: &Cli) -> Option<&DataDirArgs> {
    match &cli.command {
        None => Some(&cli.serve.data),
        Some(Command::Serve(args)) => Some(&args.data),
        Some(Command::Health { .. } | Command::Backup { url: Some(_), .. }) => None,
        Some(Command::ResetAdminToken(data) | Command::Rebuild(data)) => Some(data),
        Some(
            Command::Verify { data, .. }
            | Command::Gc { data, .. }
            | Command::RotateUrlKey { data, .. }
            | Command::Backup { data, .. }
            | Command::Restore { data, .. }
            | Command::Import { data, .. }
            | Command::Migrate { data, .. },
        ) => Some(data),
        Some(Command::Token(
            TokenCommand::Create { data, .. }
            | TokenCommand::List(data)
            | TokenCommand::Revoke { data, .. },
        )) => Some(data),
    }
}

fn serve(args: shoebox::config::ServeArgs) -> CommandResult {
    let config = Config::from_args(args)?;
    actix_web::rt::System::new().block_on(shoebox::http::run(config))?;
    Ok(ExitCode::SUCCESS)
}

fn reset_admin_token(data: &DataDirArgs) -> CommandResult {
    if let AdminToken::Generated(_, token) =
        secrets::reset_admin_token(&commands::secrets_for(data)?)?
    {
        println!("{token}");
        eprintln!(
            "The new admin token is above; the old one no longer works once Shoebox restarts."
        );
    }
    Ok(ExitCode::SUCCESS)
}
