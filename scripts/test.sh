#!/usr/bin/env bash
# The whole test suite — the README's test command, and what CI runs:
#   1. the wasm components, built for real (cargo xtask build-component; builds pfd-host too);
#   2. native tests: the shared core, the tract backend, pfd-host (units, and its own
#      end-to-end tests against the component built in 1) and xtask;
#   3. end-to-end tests: pfd-host serving the components over HTTP (tests/, pytest);
#   4. deploy artifacts validated with the real tools (deploy/validate.sh).
# Native tests run in the release profile: they share every compiled dependency (wasmtime,
# cranelift…) with the release pfd-host instead of building them a second time.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
source scripts/bootstrap.sh

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "wasm components (and pfd-host)"
cargo xtask build-component
export PFD_HOST_BIN="$CARGO_TARGET_DIR/release/pfd-host"

step "native tests"
# The same package selection as xtask's pfd-host build (every native crate; pfd-edge is the
# wasm component), so every dependency is compiled once, with one feature set.
PFD_REQUIRE_COMPONENT=1 cargo test --workspace --exclude pfd-edge --release --locked

step "end-to-end tests (pfd-host + component over HTTP)"
"$PFD_VENV/bin/python" -m pytest tests -q -rs "$@"

step "deploy artifacts (helm, kubernetes schemas, promtool, hadolint, compose)"
bash deploy/validate.sh
