//! The effective configuration of `pfd-host serve`, and `pfd-host config`, which prints it.
//!
//! Two layers configure a running service:
//!
//! - **pfd-host's own settings** — its flags, each also a `PFD_*` variable (see [`crate::config`]
//!   for the precedence: flag > environment > `.env` > default). clap records where each value came
//!   from; `.env` values are told apart from the environment by the names [`load_dotenv`] applied.
//! - **the component's settings** — the environment the guest sees: `spin.toml`'s `environment`,
//!   overridden by same-named host variables, then by `--env KEY=VALUE`. They are checked here with
//!   the component's own parser ([`pfd_core::config::Config::from_vars`]), so a bad value stops
//!   `serve` at start, naming the setting, instead of every request answering 500.
//!
//! `serve` and `config` both call [`component`](super::serve::component), so what `config` prints is what `serve` runs with.
//! Secrets (the component's `secret` settings, and any name containing `KEY`, `TOKEN`, `SECRET` or
//! `PASSWORD`) are printed as `<redacted>` — or `<empty>` when unset, which is worth knowing.
//!
//! [`load_dotenv`]: crate::config::load_dotenv

use super::serve::{component, Component, ServeArgs};
use crate::config::DotEnv;
use anyhow::Result;
use clap::parser::ValueSource;
use clap::ArgMatches;
use clap::{Args, ValueEnum};
use serde::Serialize;

/// `pfd-host config`.
#[derive(Debug, Clone, Args)]
pub struct ConfigArgs {
    /// Output: aligned `NAME=value  # source` lines, or one JSON object.
    #[arg(long, value_enum, default_value_t = ConfigFormat::Text)]
    pub format: ConfigFormat,

    #[command(flatten)]
    pub serve: ServeArgs,
}

/// `pfd-host config --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ConfigFormat {
    Text,
    Json,
}

/// `pfd-host config`: prints the settings `serve` would run with. `cli` is the whole command line
/// (for each flag's variable), `top` its matches (global flags) and `sub` the `config` subcommand's.
pub fn run(
    args: &ConfigArgs,
    cli: &clap::Command,
    top: &ArgMatches,
    sub: &ArgMatches,
    dotenv: &DotEnv,
) -> Result<()> {
    let component = component(&args.serve)?;
    let host = host_settings(cli, top, sub, dotenv);
    let guest = component_settings(&component, &args.serve, dotenv);
    print!("{}", render(args.format, dotenv, &host, &guest));
    Ok(())
}

/// Where a value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Flag,
    Environment,
    DotEnv,
    Default,
    Unset,
    /// The manifest's `environment` table (component settings).
    Manifest,
    /// `--env KEY=VALUE` (component settings).
    EnvFlag,
}

impl Serialize for Source {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::Flag => "flag",
            Source::Environment => "environment",
            Source::DotEnv => ".env",
            Source::Default => "default",
            Source::Unset => "unset",
            Source::Manifest => "spin.toml",
            Source::EnvFlag => "--env",
        }
    }
}

/// One printed setting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Setting {
    /// The variable (or, for flags without one, the flag).
    pub name: String,
    /// The value, secrets redacted.
    pub value: String,
    pub source: Source,
}

fn is_secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    pfd_core::config::SETTINGS
        .iter()
        .any(|s| s.secret && (s.name == upper || s.legacy == Some(upper.as_str())))
        || ["KEY", "TOKEN", "SECRET", "PASSWORD"]
            .iter()
            .any(|w| upper.contains(w))
}

fn shown(name: &str, value: &str) -> String {
    match (is_secret(name), value.is_empty()) {
        (true, true) => "<empty>".into(),
        (true, false) => "<redacted>".into(),
        (false, _) => value.into(),
    }
}

/// pfd-host's settings for `serve`, from the `config` subcommand's matches (which has `serve`'s
/// flags) and the top-level matches (global flags).
pub fn host_settings(
    command: &clap::Command,
    top: &ArgMatches,
    sub: &ArgMatches,
    dotenv: &DotEnv,
) -> Vec<Setting> {
    let config_cmd = command
        .find_subcommand("config")
        .expect("the config subcommand exists");
    let args = command
        .get_arguments()
        .filter(|a| a.is_global_set())
        .chain(config_cmd.get_arguments());
    let mut out = Vec::new();
    for arg in args {
        let id = arg.get_id().as_str();
        if matches!(id, "help" | "version" | "format") {
            continue;
        }
        let matches = if sub.try_get_raw(id).is_ok() {
            sub
        } else {
            top
        };
        let env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
        let name = env
            .clone()
            .unwrap_or_else(|| format!("--{}", arg.get_long().unwrap_or(id)));
        let raw: Vec<String> = matches
            .try_get_raw(id)
            .ok()
            .flatten()
            .map(|values| values.map(|v| v.to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        let value = if id == "guest_env" {
            // `--env K=V`: the value of a secret K is redacted.
            raw.iter()
                .map(|kv| match kv.split_once('=') {
                    Some((k, v)) => format!("{k}={}", shown(k, v)),
                    None => kv.clone(),
                })
                .collect::<Vec<_>>()
                .join(",")
        } else {
            shown(&name, &raw.join(","))
        };
        let source = match matches.value_source(id) {
            Some(ValueSource::CommandLine) => Source::Flag,
            Some(ValueSource::EnvVariable)
                if env.as_ref().is_some_and(|e| dotenv.applied.contains(e)) =>
            {
                Source::DotEnv
            }
            Some(ValueSource::EnvVariable) => Source::Environment,
            Some(ValueSource::DefaultValue) => Source::Default,
            _ => Source::Unset,
        };
        out.push(Setting {
            name,
            value,
            source,
        });
    }
    out
}

/// The component's environment, with where each value came from.
pub fn component_settings(
    component: &Component,
    args: &ServeArgs,
    dotenv: &DotEnv,
) -> Vec<Setting> {
    component
        .env
        .vars
        .iter()
        .map(|(name, value)| {
            let source = if args.guest_env.iter().any(|(k, _)| k == name) {
                Source::EnvFlag
            } else if component.env.overridden.contains(name) {
                if dotenv.applied.contains(name) {
                    Source::DotEnv
                } else {
                    Source::Environment
                }
            } else {
                Source::Manifest
            };
            Setting {
                name: name.clone(),
                value: shown(name, value),
                source,
            }
        })
        .collect()
}

/// Renders both layers.
pub fn render(
    format: ConfigFormat,
    dotenv: &DotEnv,
    host: &[Setting],
    component: &[Setting],
) -> String {
    match format {
        ConfigFormat::Json => {
            let v = serde_json::json!({
                "dotenv": dotenv.path,
                "host": host,
                "component": component,
            });
            serde_json::to_string_pretty(&v).expect("serializable") + "\n"
        }
        ConfigFormat::Text => {
            let mut out = String::new();
            out.push_str("# pfd-host serve (precedence: flag > environment > .env > default)\n");
            match &dotenv.path {
                Some(p) => out.push_str(&format!(
                    "# .env: {} ({} applied)\n",
                    p.display(),
                    dotenv.applied.len()
                )),
                None => out.push_str("# .env: none\n"),
            }
            write_lines(&mut out, host);
            out.push_str(
                "\n# component environment (spin.toml, overridden by same-named host variables, then --env)\n",
            );
            write_lines(&mut out, component);
            out
        }
    }
}

fn write_lines(out: &mut String, settings: &[Setting]) {
    let width = settings
        .iter()
        .map(|s| s.name.len() + s.value.len() + 1)
        .max()
        .unwrap_or(0);
    for s in settings {
        let line = format!("{}={}", s.name, s.value);
        out.push_str(&format!("{line:<width$}  # {}\n", s.source.as_str()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_and_empty_ones_say_so() {
        assert_eq!(shown("PFD_API_KEY", "s3cret"), "<redacted>");
        assert_eq!(shown("API_KEY", "s3cret"), "<redacted>");
        assert_eq!(shown("PFD_API_KEY", ""), "<empty>");
        assert_eq!(shown("UPSTREAM_TOKEN", "t"), "<redacted>");
        assert_eq!(shown("PFD_LISTEN", "0.0.0.0:3000"), "0.0.0.0:3000");
    }

    #[test]
    fn text_lines_align_and_name_their_source() {
        let host = [
            Setting {
                name: "PFD_LISTEN".into(),
                value: "127.0.0.1:3000".into(),
                source: Source::Default,
            },
            Setting {
                name: "PFD_RATE_LIMIT".into(),
                value: "5".into(),
                source: Source::DotEnv,
            },
        ];
        let text = render(ConfigFormat::Text, &DotEnv::default(), &host, &[]);
        assert!(
            text.contains("PFD_LISTEN=127.0.0.1:3000  # default\n"),
            "{text}"
        );
        assert!(
            text.contains("PFD_RATE_LIMIT=5           # .env\n"),
            "{text}"
        );
        let json: serde_json::Value =
            serde_json::from_str(&render(ConfigFormat::Json, &DotEnv::default(), &host, &[]))
                .unwrap();
        assert_eq!(json["host"][1]["source"], ".env");
    }
}
