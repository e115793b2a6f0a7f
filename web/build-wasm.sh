#!/usr/bin/env bash
# Builds the wasm module into web/pkg (gitignored): cargo for wasm32-unknown-unknown in the
# `wasm` profile (release-like, modest optimisation for CI's two cores), then the wasm-bindgen
# CLI of exactly the version in Cargo.lock (installed from crates.io when missing), --target web.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
if [ -z "${CARGO_TARGET_DIR:-}" ] && [ -d /work/cargo-target ]; then export CARGO_TARGET_DIR=/work/cargo-target; fi
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}

# wasm-bindgen's CLI must match the library version in Cargo.lock exactly.
WB_VERSION=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
if [ -z "$WB_VERSION" ]; then echo "wasm-bindgen is not in Cargo.lock" >&2; exit 2; fi
if ! command -v wasm-bindgen >/dev/null || [ "$(wasm-bindgen --version | awk '{print $2}')" != "$WB_VERSION" ]; then
  echo "installing wasm-bindgen-cli $WB_VERSION (a few minutes, once)"
  cargo install wasm-bindgen-cli --version "$WB_VERSION"
fi
rustup target list --installed | grep -q wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown

cargo build --target wasm32-unknown-unknown -p samplediff-wasm --profile wasm
wasm-bindgen --target web --remove-name-section --out-dir web/pkg --out-name samplediff_wasm \
  "$TARGET_DIR/wasm32-unknown-unknown/wasm/samplediff_wasm.wasm"
echo "web/pkg built ($(du -h web/pkg/samplediff_wasm_bg.wasm | cut -f1) of wasm)"
