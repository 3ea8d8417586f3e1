//! Reading the Spin application manifest (`spin.toml`, manifest version 2).
//!
//! pfd-host serves the same component that `spin up` serves, configured by the same file, so the
//! two hosts cannot drift apart: one place says which `.wasm` to run, which directories the guest
//! sees and which environment variables it gets. Only the subset of the Spin manifest that a single
//! HTTP component needs is understood:
//!
//! ```toml
//! spin_manifest_version = 2
//!
//! [[trigger.http]]
//! route = "/..."               # "/..." = everything; "/api/..." = a prefix; "/x" = exact
//! component = "pfd-edge"       # or an inline table with the component's fields
//!
//! [component.pfd-edge]
//! source = "build/pfd-edge.wasm"
//! files = [{ source = "models", destination = "/models" }, "static/**/*.json"]
//! environment = { PFD_MODEL = "lstm-pfd" }
//! ```
//!
//! Design choices and trade-offs:
//! - **Strict where it matters, lenient elsewhere.** Keys pfd-host does not use (`[application]`,
//!   `build`, `description`, `variables`, …) are ignored, because the same file also drives
//!   `spin build`/`spin up`; but anything that would make pfd-host run the component *differently*
//!   from Spin (a remote `source`, several HTTP triggers, a private route) is a hard error at start
//!   rather than a surprise at the first request.
//! - **Paths are relative to the manifest's directory**, as in Spin, so `pfd-host serve --manifest
//!   /elsewhere/spin.toml` works from any working directory.
//! - **`files` mounts are read-only.** `{ source = "dir", destination = "/dir" }` preopens the
//!   directory itself (no copy: a model directory can be large). A string entry is a glob relative
//!   to the manifest directory; a plain directory name (or `dir/**`, `dir/**/*`) is also preopened
//!   directly at `/dir`, any other pattern is resolved once at start into a staging directory that
//!   holds copies of exactly the matched files, mounted at `/` (Spin's semantics: a matched file
//!   `a/b.txt` appears at `/a/b.txt`, and nothing else of `a/` is visible).
//! - **Environment**: the manifest's values are defaults; a variable of the same name in the host
//!   process's environment wins (see [`GuestEnv::resolve`]), so a container sets secrets such as
//!   `PFD_API_KEY` without editing the manifest. Only keys the manifest names are passed: the host's
//!   environment never leaks into the guest wholesale.

use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Component as PathComponent, Path, PathBuf};

/// The parts of a Spin manifest that pfd-host acts on, resolved against the manifest directory.
#[derive(Debug, Clone, PartialEq)]
pub struct AppManifest {
    /// The manifest file itself (absolute or as given).
    pub path: PathBuf,
    /// `[application] name`, for logs.
    pub app_name: Option<String>,
    /// The HTTP route the component is mounted at.
    pub route: Route,
    /// The component id (`[component.<id>]`), or `"inline"` for an inline trigger component.
    pub component_id: String,
    /// `source`, resolved against the manifest directory.
    pub source: PathBuf,
    /// Read-only mounts for the guest.
    pub mounts: Vec<Mount>,
    /// `environment`, in manifest order (sorted by key).
    pub environment: BTreeMap<String, String>,
    /// Keys present in the component table that pfd-host knowingly does not implement.
    pub warnings: Vec<String>,
}

/// A route pattern of Spin's `[[trigger.http]] route`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `"/prefix/..."` (or `"/..."`): the prefix and everything below it.
    Prefix(String),
    /// `"/exact"`: only this path.
    Exact(String),
}

impl Route {
    /// Parses Spin's route syntax.
    pub fn parse(route: &str) -> Result<Self> {
        let route = route.trim();
        if !route.starts_with('/') {
            bail!("route {route:?} must start with '/'");
        }
        if let Some(prefix) = route.strip_suffix("/...") {
            Ok(Route::Prefix(prefix.trim_end_matches('/').to_string()))
        } else if route.contains("...") || route.contains(':') {
            bail!(
                "route {route:?}: only exact routes and a trailing \"/...\" wildcard are supported"
            )
        } else {
            let exact = route.trim_end_matches('/');
            Ok(Route::Exact(if exact.is_empty() {
                "/".into()
            } else {
                exact.into()
            }))
        }
    }

    /// If `path` is served by this route, the part of it below the route (Spin's `spin-path-info`).
    pub fn path_info<'a>(&self, path: &'a str) -> Option<&'a str> {
        match self {
            Route::Prefix(prefix) => {
                let rest = path.strip_prefix(prefix.as_str())?;
                (rest.is_empty() || rest.starts_with('/')).then_some(rest)
            }
            Route::Exact(exact) => {
                let trimmed = path.trim_end_matches('/');
                let trimmed = if trimmed.is_empty() { "/" } else { trimmed };
                (trimmed == exact).then_some("")
            }
        }
    }

    /// The route as written in the manifest (for Spin's `spin-component-route` header and logs).
    pub fn as_manifest_str(&self) -> String {
        match self {
            Route::Prefix(p) => format!("{p}/..."),
            Route::Exact(e) => e.clone(),
        }
    }

    /// The base path (Spin's `spin-component-route` without the wildcard).
    pub fn base(&self) -> &str {
        match self {
            Route::Prefix(p) | Route::Exact(p) => p,
        }
    }
}

/// One read-only directory made visible to the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mount {
    /// Preopen `host` (a directory) at `guest`.
    Dir { host: PathBuf, guest: String },
    /// Copy the files matching `pattern` (relative to `base`, excluding `exclude`) into a staging
    /// directory at start, and mount that at `/`.
    Glob {
        base: PathBuf,
        pattern: String,
        exclude: Vec<String>,
    },
}

// ---- raw TOML shapes -------------------------------------------------------------------------

#[derive(Deserialize)]
struct RawManifest {
    spin_manifest_version: Option<toml::Value>,
    #[serde(default)]
    application: Option<RawApplication>,
    #[serde(default)]
    trigger: BTreeMap<String, toml::Value>,
    #[serde(default)]
    component: BTreeMap<String, RawComponent>,
}

#[derive(Deserialize)]
struct RawApplication {
    name: Option<String>,
}

#[derive(Deserialize)]
struct RawHttpTrigger {
    route: toml::Value,
    component: RawComponentRef,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawComponentRef {
    Id(String),
    Inline(Box<RawComponent>),
}

#[derive(Deserialize, Clone)]
struct RawComponent {
    source: toml::Value,
    #[serde(default)]
    files: Vec<RawFile>,
    #[serde(default)]
    exclude_files: Vec<String>,
    #[serde(default)]
    environment: BTreeMap<String, String>,
    #[serde(default)]
    allowed_outbound_hosts: Vec<String>,
    #[serde(default)]
    key_value_stores: Vec<String>,
    #[serde(default)]
    sqlite_databases: Vec<String>,
    #[serde(default)]
    variables: BTreeMap<String, toml::Value>,
    #[serde(default)]
    dependencies: BTreeMap<String, toml::Value>,
}

#[derive(Deserialize, Clone)]
#[serde(untagged)]
enum RawFile {
    Pattern(String),
    Mapping { source: String, destination: String },
}

// ---- parsing ---------------------------------------------------------------------------------

impl AppManifest {
    /// Reads and resolves a manifest file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read manifest {}", path.display()))?;
        let dir = path
            .parent()
            .map(|p| {
                if p.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    p
                }
            })
            .unwrap_or(Path::new("."));
        Self::parse(&text, path, dir).with_context(|| format!("in manifest {}", path.display()))
    }

    /// Parses manifest text; relative paths resolve against `dir`.
    pub fn parse(text: &str, path: &Path, dir: &Path) -> Result<Self> {
        let raw: RawManifest = toml::from_str(text).context("invalid TOML")?;
        match raw.spin_manifest_version.as_ref() {
            Some(toml::Value::Integer(2)) => {}
            Some(toml::Value::String(s)) if s == "2" => {}
            Some(other) => bail!("spin_manifest_version = {other} is not supported (only 2)"),
            None => {
                bail!("missing `spin_manifest_version = 2` (manifest version 1 is not supported)")
            }
        }

        let http = raw
            .trigger
            .get("http")
            .ok_or_else(|| anyhow!("no [[trigger.http]] section"))?;
        let triggers: Vec<RawHttpTrigger> = match http {
            toml::Value::Array(items) => items
                .iter()
                .map(|v| v.clone().try_into())
                .collect::<Result<_, _>>()
                .context("invalid [[trigger.http]]")?,
            _ => bail!("`trigger.http` must be an array of tables ([[trigger.http]])"),
        };
        let trigger = match triggers.as_slice() {
            [t] => t,
            [] => bail!("no [[trigger.http]] entry"),
            _ => bail!(
                "{} [[trigger.http]] entries: pfd-host serves exactly one HTTP component",
                triggers.len()
            ),
        };
        let route = match &trigger.route {
            toml::Value::String(s) => Route::parse(s)?,
            _ => bail!("only string routes are supported (private routes have no HTTP endpoint)"),
        };

        let (component_id, component) = match &trigger.component {
            RawComponentRef::Id(id) => {
                let c = raw.component.get(id).ok_or_else(|| {
                    anyhow!("trigger refers to component {id:?} but there is no [component.{id}]")
                })?;
                (id.clone(), c.clone())
            }
            RawComponentRef::Inline(c) => ("inline".to_string(), (**c).clone()),
        };

        let source = match &component.source {
            toml::Value::String(s) => dir.join(s),
            toml::Value::Table(t) if t.contains_key("url") => {
                bail!("component {component_id:?}: a remote `source = {{ url = … }}` is not supported; download it and give a path")
            }
            _ => bail!("component {component_id:?}: `source` must be a path to a .wasm file"),
        };

        let mut mounts = Vec::new();
        for file in &component.files {
            mounts.push(resolve_file(dir, file, &component.exclude_files)?);
        }
        if !component.exclude_files.is_empty()
            && !mounts.is_empty()
            && mounts.iter().all(|m| matches!(m, Mount::Dir { .. }))
        {
            // exclude_files only applies to glob-staged files; say so rather than silently expose.
            bail!("component {component_id:?}: `exclude_files` is only supported with glob `files` entries, not directory mounts");
        }

        let mut warnings = Vec::new();
        if !component.allowed_outbound_hosts.is_empty() {
            warnings.push(format!(
                "allowed_outbound_hosts = {:?} is ignored: pfd-host denies all outbound requests from the guest",
                component.allowed_outbound_hosts
            ));
        }
        for (key, present) in [
            ("key_value_stores", !component.key_value_stores.is_empty()),
            ("sqlite_databases", !component.sqlite_databases.is_empty()),
            ("variables", !component.variables.is_empty()),
            ("dependencies", !component.dependencies.is_empty()),
        ] {
            if present {
                warnings.push(format!(
                    "`{key}` is ignored: pfd-host provides only WASI 0.2 interfaces (configuration travels in `environment`)"
                ));
            }
        }

        Ok(AppManifest {
            path: path.to_path_buf(),
            app_name: raw.application.and_then(|a| a.name),
            route,
            component_id,
            source,
            mounts,
            environment: component.environment,
            warnings,
        })
    }
}

fn resolve_file(dir: &Path, file: &RawFile, exclude: &[String]) -> Result<Mount> {
    match file {
        RawFile::Mapping {
            source,
            destination,
        } => {
            if !destination.starts_with('/') {
                bail!("files: destination {destination:?} must be an absolute guest path");
            }
            Ok(Mount::Dir {
                host: dir.join(source),
                guest: destination.clone(),
            })
        }
        RawFile::Pattern(pattern) => {
            check_relative(pattern)?;
            // A directory (optionally with a "match everything below" suffix) is mounted as such.
            let plain = pattern
                .strip_suffix("/**/*")
                .or_else(|| pattern.strip_suffix("/**"))
                .unwrap_or(pattern)
                .trim_end_matches('/');
            let is_glob = |s: &str| s.contains(['*', '?', '[', '{']);
            if exclude.is_empty() && !is_glob(plain) && dir.join(plain).is_dir() {
                return Ok(Mount::Dir {
                    host: dir.join(plain),
                    guest: format!("/{}", plain.trim_start_matches("./")),
                });
            }
            Ok(Mount::Glob {
                base: dir.to_path_buf(),
                pattern: pattern.clone(),
                exclude: exclude.to_vec(),
            })
        }
    }
}

fn check_relative(pattern: &str) -> Result<()> {
    let p = Path::new(pattern);
    if p.is_absolute()
        || p.components()
            .any(|c| matches!(c, PathComponent::ParentDir))
    {
        bail!(
            "files: pattern {pattern:?} must be relative to the manifest directory, without '..'"
        );
    }
    Ok(())
}

/// Copies the files that glob mounts select into `staging` (once, at start). Returns how many.
pub fn stage_globs(mounts: &[Mount], staging: &Path) -> Result<usize> {
    let mut count = 0;
    for mount in mounts {
        let Mount::Glob {
            base,
            pattern,
            exclude,
        } = mount
        else {
            continue;
        };
        let excluded = exclude
            .iter()
            .map(|e| {
                glob::Pattern::new(e).with_context(|| format!("exclude_files: bad pattern {e:?}"))
            })
            .collect::<Result<Vec<_>>>()?;
        let full = base.join(pattern);
        let full = full.to_str().context("non-UTF-8 path in files pattern")?;
        let mut matched = 0;
        for entry in glob::glob(full).with_context(|| format!("files: bad pattern {pattern:?}"))? {
            let path = entry?;
            if !path.is_file() {
                continue;
            }
            let rel = path.strip_prefix(base).unwrap_or(&path);
            if excluded.iter().any(|e| e.matches_path(rel)) {
                continue;
            }
            let dest = staging.join(rel);
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::copy(&path, &dest)
                .with_context(|| format!("staging {} for the guest", path.display()))?;
            matched += 1;
        }
        if matched == 0 {
            tracing::warn!(pattern = %pattern, "files pattern matched no file");
        }
        count += matched;
    }
    Ok(count)
}

/// The guest's environment: manifest values overridden by same-named host variables.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GuestEnv {
    /// Final `(key, value)` pairs, sorted by key.
    pub vars: Vec<(String, String)>,
    /// Keys whose value came from the host environment rather than the manifest.
    pub overridden: Vec<String>,
}

impl GuestEnv {
    /// Applies host overrides (`lookup` is usually `std::env::var`) and then `extra`
    /// (`--env K=V` flags, which win over everything).
    pub fn resolve(
        manifest: &BTreeMap<String, String>,
        lookup: impl Fn(&str) -> Option<String>,
        extra: &[(String, String)],
    ) -> Self {
        let mut vars: BTreeMap<String, String> = BTreeMap::new();
        let mut overridden = Vec::new();
        for (key, value) in manifest {
            match lookup(key) {
                Some(host) => {
                    overridden.push(key.clone());
                    vars.insert(key.clone(), host);
                }
                None => {
                    vars.insert(key.clone(), value.clone());
                }
            }
        }
        for (key, value) in extra {
            if !overridden.contains(key) {
                overridden.push(key.clone());
            }
            vars.insert(key.clone(), value.clone());
        }
        GuestEnv {
            vars: vars.into_iter().collect(),
            overridden,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<AppManifest> {
        AppManifest::parse(text, Path::new("/app/spin.toml"), Path::new("/app"))
    }

    const FULL: &str = r#"
spin_manifest_version = 2

[application]
name = "pfd-edge"
version = "0.1.0"

[[trigger.http]]
route = "/..."
component = "pfd-edge"

[component.pfd-edge]
source = "build/pfd-edge.wasm"
files = [{ source = "models", destination = "/models" }]
environment = { PFD_MODEL = "lstm-pfd", PFD_API_KEY = "" }

[component.pfd-edge.build]
command = "cargo xtask build-component"
"#;

    #[test]
    fn parses_the_project_manifest_shape() {
        let m = parse(FULL).unwrap();
        assert_eq!(m.app_name.as_deref(), Some("pfd-edge"));
        assert_eq!(m.route, Route::Prefix(String::new()));
        assert_eq!(m.component_id, "pfd-edge");
        assert_eq!(m.source, PathBuf::from("/app/build/pfd-edge.wasm"));
        assert_eq!(
            m.mounts,
            vec![Mount::Dir {
                host: PathBuf::from("/app/models"),
                guest: "/models".into()
            }]
        );
        assert_eq!(m.environment.get("PFD_MODEL").unwrap(), "lstm-pfd");
        assert!(m.warnings.is_empty());
    }

    #[test]
    fn inline_component_and_string_version() {
        let m = parse(
            r#"
spin_manifest_version = "2"
[[trigger.http]]
route = "/api/..."
component = { source = "x.wasm", environment = { A = "1" } }
"#,
        )
        .unwrap();
        assert_eq!(m.component_id, "inline");
        assert_eq!(m.route, Route::Prefix("/api".into()));
        assert_eq!(m.source, PathBuf::from("/app/x.wasm"));
    }

    #[test]
    fn rejects_what_would_run_differently_from_spin() {
        let cases = [
            ("", "spin_manifest_version"),
            ("spin_manifest_version = 1\n[[trigger.http]]\nroute='/...'\ncomponent='a'\n[component.a]\nsource='a.wasm'", "not supported"),
            ("spin_manifest_version = 2\n[component.a]\nsource='a.wasm'", "no [[trigger.http]]"),
            ("spin_manifest_version = 2\n[[trigger.http]]\nroute='/...'\ncomponent='b'\n[component.a]\nsource='a.wasm'", "no [component.b]"),
            ("spin_manifest_version = 2\n[[trigger.http]]\nroute='/a/...'\ncomponent='a'\n[[trigger.http]]\nroute='/b/...'\ncomponent='a'\n[component.a]\nsource='a.wasm'", "exactly one"),
            ("spin_manifest_version = 2\n[[trigger.http]]\nroute='/...'\ncomponent='a'\n[component.a]\nsource={ url='https://x/a.wasm', digest='sha256:00' }", "remote"),
            ("spin_manifest_version = 2\n[[trigger.http]]\nroute={ private = true }\ncomponent='a'\n[component.a]\nsource='a.wasm'", "private"),
            ("spin_manifest_version = 2\n[[trigger.http]]\nroute='/x/:id'\ncomponent='a'\n[component.a]\nsource='a.wasm'", "only exact routes"),
            ("spin_manifest_version = 2\n[[trigger.http]]\nroute='/...'\ncomponent='a'\n[component.a]\nsource='a.wasm'\nfiles=[{source='m', destination='models'}]", "absolute guest path"),
            ("spin_manifest_version = 2\n[[trigger.http]]\nroute='/...'\ncomponent='a'\n[component.a]\nsource='a.wasm'\nfiles=['../secrets/*']", "without '..'"),
            ("spin_manifest_version = 2\n[[trigger.http]]\nroute='/...'\ncomponent='a'\n[component.a]\nsource='a.wasm'\nfiles=[{source='m', destination='/m'}]\nexclude_files=['*.tmp']", "exclude_files"),
            ("not toml [", "invalid TOML"),
        ];
        for (text, needle) in cases {
            let err = format!("{:#}", parse(text).unwrap_err());
            assert!(err.contains(needle), "{text:?}: {err:?} lacks {needle:?}");
        }
    }

    #[test]
    fn unsupported_features_become_warnings() {
        let m = parse(
            "spin_manifest_version = 2\n[[trigger.http]]\nroute='/...'\ncomponent='a'\n[component.a]\nsource='a.wasm'\nallowed_outbound_hosts=['https://x']\nkey_value_stores=['default']",
        )
        .unwrap();
        assert_eq!(m.warnings.len(), 2, "{:?}", m.warnings);
    }

    #[test]
    fn routes() {
        let all = Route::parse("/...").unwrap();
        assert_eq!(all.path_info("/predict"), Some("/predict"));
        assert_eq!(all.path_info("/"), Some("/"));
        let api = Route::parse("/api/...").unwrap();
        assert_eq!(api.path_info("/api/predict"), Some("/predict"));
        assert_eq!(api.path_info("/api"), Some(""));
        assert_eq!(api.path_info("/apix"), None);
        assert_eq!(api.path_info("/other"), None);
        let exact = Route::parse("/predict").unwrap();
        assert_eq!(exact.path_info("/predict"), Some(""));
        assert_eq!(exact.path_info("/predict/"), Some(""));
        assert_eq!(exact.path_info("/predict/x"), None);
        assert_eq!(Route::parse("/").unwrap().path_info("/"), Some(""));
        assert_eq!(api.as_manifest_str(), "/api/...");
        assert!(Route::parse("predict").is_err());
    }

    #[test]
    fn file_patterns_resolve_to_dirs_or_staged_globs() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path();
        std::fs::create_dir_all(base.join("models/lstm")).unwrap();
        std::fs::write(base.join("models/lstm/model.onnx"), b"onnx").unwrap();
        std::fs::write(base.join("models/lstm/model.json"), b"{}").unwrap();
        std::fs::write(base.join("models/notes.tmp"), b"x").unwrap();
        let text = r#"
spin_manifest_version = 2
[[trigger.http]]
route = "/..."
component = "a"
[component.a]
source = "a.wasm"
files = ["models", "models/**/*.json"]
"#;
        let m = AppManifest::parse(text, &base.join("spin.toml"), base).unwrap();
        assert_eq!(
            m.mounts[0],
            Mount::Dir {
                host: base.join("models"),
                guest: "/models".into()
            }
        );
        assert!(
            matches!(&m.mounts[1], Mount::Glob { pattern, .. } if pattern == "models/**/*.json")
        );

        let staging = tempfile::tempdir().unwrap();
        assert_eq!(stage_globs(&m.mounts, staging.path()).unwrap(), 1);
        assert!(staging.path().join("models/lstm/model.json").is_file());
        assert!(!staging.path().join("models/lstm/model.onnx").exists());

        // exclude_files turns even a directory pattern into a staged copy, minus the exclusions.
        let text = text.replace(
            "files = [\"models\", \"models/**/*.json\"]",
            "files = [\"models/**/*\"]\nexclude_files = [\"**/*.tmp\"]",
        );
        let m = AppManifest::parse(&text, &base.join("spin.toml"), base).unwrap();
        let staging = tempfile::tempdir().unwrap();
        assert_eq!(stage_globs(&m.mounts, staging.path()).unwrap(), 2);
        assert!(!staging.path().join("models/notes.tmp").exists());
    }

    #[test]
    fn host_environment_overrides_manifest_values_by_name_only() {
        let manifest: BTreeMap<String, String> = [("PFD_API_KEY", ""), ("PFD_MODEL", "lstm-pfd")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let host = |k: &str| match k {
            "PFD_API_KEY" => Some("s3cret".to_string()),
            "HOME" => Some("/root".to_string()),
            _ => None,
        };
        let env = GuestEnv::resolve(&manifest, host, &[("EXTRA".into(), "1".into())]);
        assert_eq!(
            env.vars,
            vec![
                ("EXTRA".to_string(), "1".to_string()),
                ("PFD_API_KEY".to_string(), "s3cret".to_string()),
                ("PFD_MODEL".to_string(), "lstm-pfd".to_string()),
            ]
        );
        assert_eq!(
            env.overridden,
            vec!["PFD_API_KEY".to_string(), "EXTRA".to_string()]
        );
        assert!(!env.vars.iter().any(|(k, _)| k == "HOME"));
    }
}
