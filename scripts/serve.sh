#!/usr/bin/env bash
# Builds what is missing and serves the component with pfd-host on 127.0.0.1:3000
# (override with PFD_LISTEN, or pass pfd-host flags: scripts/serve.sh --listen 127.0.0.1:8080).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
source scripts/bootstrap.sh
cargo xtask build-component
cargo build --release --locked -p pfd-host
exec "$CARGO_TARGET_DIR/release/pfd-host" serve --manifest spin.toml "$@"
