//! The `shoebox` binary: parse the command line, start logging, dispatch, map errors to an
//! exit code.

use std::process::ExitCode;

use clap::Parser;
use shoebox::config::{Cli, Command, Config};
use shoebox::secrets::{self, AdminToken};
use shoebox::store::Layout;

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let result = match cli.command {
        None => serve(cli.serve),
        Some(Command::Serve(args)) => serve(args),
        Some(Command::ResetAdminToken(args)) => reset_admin_token(&args.data_dir),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shoebox: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: shoebox::config::ServeArgs) -> Result<(), Box<dyn std::error::Error>> {
    let config = Config::from_args(args)?;
    actix_web::rt::System::new().block_on(shoebox::http::run(config))
}

fn reset_admin_token(data_dir: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    let layout = Layout::new(data_dir);
    layout.prepare()?;
    if let AdminToken::Generated(_, token) = secrets::reset_admin_token(&layout)? {
        println!("{token}");
        eprintln!(
            "The new admin token is above; the old one no longer works once Shoebox restarts."
        );
    }
    Ok(())
}
