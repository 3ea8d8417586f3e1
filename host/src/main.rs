//! `pfd-host`: the native host of the pfd-edge component (see the library's docs, `lib.rs`). The
//! binary only sets up the process — the allocator, `.env`, the command line, logging, the check
//! for unknown `PFD_*` settings — and hands the parsed command to [`pfd_host::commands::run`].

use clap::{CommandFactory, FromArgMatches};
use pfd_host::commands::{Cli, Command};
use pfd_host::config::{self, LogFormat};
use std::process::ExitCode;
use tracing::{info, warn};

fn main() -> ExitCode {
    pfd_host::allocator::limit_arenas();
    // `.env` first, so that clap sees its values as environment variables (which flags override,
    // and which never override the real environment).
    let dotenv = config::load_dotenv(None);
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    init_logging(cli.log_format);
    let dotenv = match dotenv {
        Ok(d) => {
            if let Some(path) = &d.path {
                info!(path = %path.display(), applied = ?d.applied, "loaded .env");
            }
            d
        }
        Err(e) => {
            tracing::error!("{e:#}");
            return ExitCode::FAILURE;
        }
    };
    if matches!(cli.command, Command::Serve(_) | Command::Config(_)) {
        let names: Vec<String> = std::env::vars_os()
            .filter_map(|(k, _)| k.into_string().ok())
            .collect();
        let unknown =
            config::unknown_settings(&Cli::command(), names.iter().map(String::as_str), &dotenv);
        for u in unknown.iter().filter(|u| !u.from_dotenv) {
            warn!("{u}");
        }
        if let Some(u) = unknown.iter().find(|u| u.from_dotenv) {
            tracing::error!("{u}");
            return ExitCode::FAILURE;
        }
    }
    pfd_host::commands::run(cli, &matches, &dotenv)
}

fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only on a terminal: escape codes in a log file or a container log are noise.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
}
