//! `cargo xtask <task>` — build tasks that need more than cargo.
//!
//! `build-component` turns the root package into the shipped `.wasm` components:
//!
//! 1. compile the crate for `wasm32-wasip1` as a reactor `cdylib`, with `+simd128` (tract's
//!    kernels run ~1.8x faster with it). The toolchain is detected, not assumed: a rustup
//!    `wasm32-wasip1` target when one is installed (a developer laptop), else Debian's
//!    `rustc-web` + `rust-web-src` + `-Zbuild-std` + `wasm-ld` + `wasi-libc` (machines whose
//!    rustup cannot download targets). See `../shared/docs/toolchain.md` in the project docs.
//! 2. pre-initialise it (wizer, through `pfd-host preinit`): the default model's tract plan is
//!    built once here instead of in every fresh instance (`--no-preinit` skips this, to measure
//!    what it saves);
//! 3. wrap the core module into a component with the preview1 reactor adapter (wit-component).
//!
//! Steps 2–3 are skipped when their inputs are unchanged (a content hash in
//! `build/<output>.inputs`; see [`inputs_hash`]).
//!
//! Outputs land in `build/` at the workspace root (stable paths that `spin.toml` and pfd-host
//! name), whatever `CARGO_TARGET_DIR` is.
//!
//! `deps` checks that no crate's modules form a cycle, between files or folders (see [`deps`]).

mod deps;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

const TARGET: &str = "wasm32-wasip1";

/// One component build: which package and cargo features, which output file.
struct Flavour {
    name: &'static str,
    package: &'static str,
    features: &'static str,
    output: &'static str,
    /// Pre-initialised with the default model (the shipped components).
    preinit: bool,
    /// Built only when asked for by name (`--only`): not shipped, not part of a plain build.
    test_only: bool,
}

/// Two shipped builds from one source, because component imports cannot be optional: the
/// portable one (tract only, WASI 0.2 imports only) is what `spin.toml` serves on every Spin
/// host; the wasi-nn one imports `wasi:nn` (hosts without it refuse to start it) and is pfd-host's
/// default. Plus the fault component pfd-host's tests serve (`tests/fault-component`).
const FLAVOURS: &[Flavour] = &[
    Flavour {
        name: "portable",
        package: "pfd-edge",
        features: "",
        output: "pfd-edge.wasm",
        preinit: true,
        test_only: false,
    },
    Flavour {
        name: "wasi-nn",
        package: "pfd-edge",
        features: "wasi-nn",
        output: "pfd-edge-nn.wasm",
        preinit: true,
        test_only: false,
    },
    Flavour {
        name: "fault",
        package: "pfd-fault",
        features: "",
        output: "pfd-fault.wasm",
        preinit: false,
        test_only: true,
    },
];

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("build-component") => build_component(&args[1..]),
        Some("deps") => deps::run(&workspace_root(), &args[1..]),
        _ => {
            eprintln!("usage: cargo xtask build-component [--debug] [--no-preinit] [--only portable|wasi-nn|fault]");
            eprintln!("       cargo xtask deps [--graph]");
            std::process::exit(2)
        }
    }
}

/// The workspace root, from the `CARGO_MANIFEST_DIR` that `cargo run` sets at run time. Not the
/// compile-time `env!`: with a target directory shared between checkouts (CI caches one outside
/// the clone), cargo reuses an xtask binary built in another checkout, which would then build
/// *that* checkout.
fn workspace_root() -> PathBuf {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest_dir
        .parent()
        .expect("xtask/ is in the workspace")
        .to_path_buf()
}

/// How the wasm target is compiled on this machine.
enum Toolchain {
    Rustup,
    /// Debian's rustc-web with `-Zbuild-std`.
    Debian {
        rustc: PathBuf,
        wasm_ld: PathBuf,
        libc_dir: PathBuf,
    },
}

fn detect_toolchain() -> Result<Toolchain> {
    let rustup_has_target = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.trim() == TARGET)
        })
        .unwrap_or(false);
    if rustup_has_target {
        return Ok(Toolchain::Rustup);
    }
    let rustc = PathBuf::from("/usr/bin/rustc");
    let std_src = Path::new("/usr/lib/rustlib/src/rust/library");
    let wasm_ld = PathBuf::from("/usr/lib/llvm-19/bin/wasm-ld");
    let libc_dir = PathBuf::from("/usr/lib/wasm32-wasi");
    let missing: Vec<&str> = [
        (rustc.exists(), "rustc-web (/usr/bin/rustc)"),
        (std_src.exists(), "rust-web-src (/usr/lib/rustlib/src/rust)"),
        (wasm_ld.exists(), "lld-19 (wasm-ld)"),
        (
            libc_dir.join("libc.a").exists(),
            "wasi-libc (/usr/lib/wasm32-wasi)",
        ),
    ]
    .into_iter()
    .filter(|(ok, _)| !ok)
    .map(|(_, what)| what)
    .collect();
    if !missing.is_empty() {
        bail!(
            "no wasm toolchain: either `rustup target add {TARGET}`, or install Debian's \
             rustc-web rust-web-src lld-19 wasi-libc (missing: {})",
            missing.join(", ")
        );
    }
    Ok(Toolchain::Debian {
        rustc,
        wasm_ld,
        libc_dir,
    })
}

/// Cargo's target directory for native builds.
fn native_target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

fn target_dir() -> PathBuf {
    // A separate directory: the wasm build may use another rustc and always other RUSTFLAGS,
    // which must not invalidate the native build's cache.
    native_target_dir().join("wasm")
}

fn build_component(args: &[String]) -> Result<()> {
    let release = !args.iter().any(|a| a == "--debug");
    let preinit = !args.iter().any(|a| a == "--no-preinit");
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1));
    if let Some(name) = only.filter(|o| !FLAVOURS.iter().any(|f| f.name == o.as_str())) {
        bail!("unknown flavour {name:?} (portable, wasi-nn, fault)");
    }
    let toolchain = detect_toolchain()?;
    let out_dir = workspace_root().join("build");
    std::fs::create_dir_all(&out_dir)?;
    let selected: Vec<&Flavour> = FLAVOURS
        .iter()
        .filter(|f| match only {
            Some(o) => o == f.name,
            None => !f.test_only,
        })
        .collect();
    let host = if preinit && selected.iter().any(|f| f.preinit) {
        Some(build_host()?)
    } else {
        None
    };
    let shared = shared_inputs(host.as_deref())?;
    for flavour in selected {
        let host = host.as_ref().filter(|_| flavour.preinit);
        let started = Instant::now();
        let mut core = cargo_build(&toolchain, flavour, release)?;
        let compiled = started.elapsed();
        let out = out_dir.join(flavour.output);
        let stamp = out.with_extension("wasm.inputs");
        let inputs = inputs_hash(&shared, &core)?;
        if out.exists() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(&inputs) {
            eprintln!(
                "xtask: {} component {} is up to date (inputs unchanged; {:.1}s)",
                flavour.name,
                out.display(),
                started.elapsed().as_secs_f64()
            );
            continue;
        }
        // Removed first, so an interrupted build never leaves a stamp beside an old output.
        let _ = std::fs::remove_file(&stamp);
        if let Some(host) = host {
            let snapshot = core.with_extension("preinit.wasm");
            run(Command::new(host)
                .current_dir(workspace_root())
                .args(["preinit", "--manifest", "spin.toml", "--input"])
                .arg(&core)
                .arg("--output")
                .arg(&snapshot))?;
            core = snapshot;
        }
        let prepared = started.elapsed();
        let wasm = std::fs::read(&core).with_context(|| format!("reading {}", core.display()))?;
        let component = componentize(&wasm)?;
        std::fs::write(&out, &component)?;
        std::fs::write(&stamp, &inputs)?;
        eprintln!(
            "xtask: {} component {} ({:.1} MB{}) — cargo {:.1}s, preinit {:.1}s, componentize {:.1}s",
            flavour.name,
            out.display(),
            component.len() as f64 / 1e6,
            if host.is_some() { ", pre-initialised" } else { "" },
            compiled.as_secs_f64(),
            (prepared - compiled).as_secs_f64(),
            (started.elapsed() - prepared).as_secs_f64()
        );
    }
    Ok(())
}

/// A content hash of everything a shipped component is made from, so an unchanged build skips
/// pre-initialisation and componentisation (~20 s per flavour) — what makes a second
/// `scripts/serve.sh` start in seconds. The inputs: the core module cargo built; with
/// pre-initialisation, the pfd-host binary that runs it (its code decides what the snapshot
/// holds), `spin.toml` (mounts and environment it runs under) and every file under `models/`
/// (what it reads; `models/scripts/` excluded, it is never mounted); and this xtask binary (the
/// componentiser and the preview1 adapter are compiled into it). Hashed with length framing, so
/// no two different input sets can produce the same byte stream.
///
/// Everything but the core module is the same for both flavours: [`shared_inputs`] hashes it
/// once, and each flavour continues from a copy of that state.
fn inputs_hash(shared: &Sha256, core: &Path) -> Result<String> {
    let mut hasher = shared.clone();
    add_input(&mut hasher, "core module", &read_input(core)?);
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// The hash state after the inputs every flavour shares (see [`inputs_hash`]).
fn shared_inputs(host: Option<&Path>) -> Result<Sha256> {
    let mut hasher = Sha256::new();
    add_input(
        &mut hasher,
        "xtask",
        &read_input(&std::env::current_exe()?)?,
    );
    let Some(host) = host else {
        add_input(&mut hasher, "not pre-initialised", b"");
        return Ok(hasher);
    };
    let root = workspace_root();
    add_input(&mut hasher, "pfd-host", &read_input(host)?);
    add_input(
        &mut hasher,
        "spin.toml",
        &read_input(&root.join("spin.toml"))?,
    );
    let models = root.join("models");
    for file in files_under(&models, &models.join("scripts"))? {
        let name = file
            .strip_prefix(&models)
            .unwrap_or(&file)
            .to_string_lossy()
            .into_owned();
        add_input(&mut hasher, &name, &read_input(&file)?);
    }
    Ok(hasher)
}

/// One labelled input, length-framed.
fn add_input(hasher: &mut Sha256, label: &str, bytes: &[u8]) {
    for part in [label.as_bytes(), bytes] {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
}

fn read_input(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// Every file below `dir` except those below `skip`, in a stable (sorted) order.
fn files_under(dir: &Path, skip: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))?
        {
            let path = entry?.path();
            if path.starts_with(skip) {
                continue;
            }
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("xtask: {cmd:?}");
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

/// Builds pfd-host (release), which hosts the wizer step (`preinit`), so the build needs no second
/// wasmtime. Why the workspace's default members (every native crate; the wasm packages are not
/// among them) rather than `-p pfd-host`: that is the package selection `scripts/test.sh` tests,
/// and cargo unifies dependency features per selection — with `-p pfd-host` alone `serde_json`,
/// `indexmap` and friends got other features than in the test build, so the tests recompiled
/// wasmtime and tract (~4 min of a cold CI run). One selection, one build of every dependency.
fn build_host() -> Result<PathBuf> {
    let target_dir = native_target_dir();
    run(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(workspace_root())
            .args(["build", "--release", "--locked", "--target-dir"])
            .arg(&target_dir),
    )?;
    Ok(target_dir.join("release").join("pfd-host"))
}

fn cargo_build(toolchain: &Toolchain, flavour: &Flavour, release: bool) -> Result<PathBuf> {
    let root = workspace_root();
    let target_dir = target_dir();
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(&root)
        .args([
            "build",
            "-p",
            flavour.package,
            "--target",
            TARGET,
            "--target-dir",
        ])
        .arg(&target_dir);
    if release {
        cmd.arg("--release");
    }
    if !flavour.features.is_empty() {
        cmd.args(["--features", flavour.features]);
    }
    // tract's matrix kernels have wasm SIMD versions; every current host supports simd128.
    let mut rustflags = vec!["-C".to_string(), "target-feature=+simd128".to_string()];
    match toolchain {
        Toolchain::Rustup => {}
        Toolchain::Debian {
            rustc,
            wasm_ld,
            libc_dir,
        } => {
            cmd.env("RUSTC", rustc)
                .env("RUSTC_BOOTSTRAP", "1")
                .env(
                    format!(
                        "CARGO_TARGET_{}_LINKER",
                        TARGET.to_uppercase().replace('-', "_")
                    ),
                    wasm_ld,
                )
                .args(["-Zbuild-std=std,panic_abort"]);
            rustflags.extend([
                "-C".into(),
                "link-self-contained=no".into(),
                "-L".into(),
                libc_dir.display().to_string(),
                "-C".into(),
                format!("link-arg={}", libc_dir.join("crt1-reactor.o").display()),
            ]);
        }
    }
    // CARGO_ENCODED_RUSTFLAGS (0x1f-separated) applies to the target only, not build scripts.
    cmd.env("CARGO_ENCODED_RUSTFLAGS", rustflags.join("\u{1f}"))
        .env_remove("RUSTFLAGS");
    run(&mut cmd)?;
    Ok(target_dir
        .join(TARGET)
        .join(if release { "release" } else { "debug" })
        .join(format!("{}.wasm", flavour.package.replace('-', "_"))))
}

fn componentize(core: &[u8]) -> Result<Vec<u8>> {
    wit_component::ComponentEncoder::default()
        .module(core)
        .context("reading the core module's component-type section")?
        .adapter(
            "wasi_snapshot_preview1",
            wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
        )
        .context("loading the preview1 reactor adapter")?
        .validate(true)
        .encode()
        .context("encoding the component")
}
