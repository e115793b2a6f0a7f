#!/usr/bin/env bash
# The whole test suite, on a fresh machine or in CI: installs what it needs, then runs every stage.
#   bash tests/run.sh            # everything
#   STAGES="rust wasm" bash tests/run.sh   # a subset
# Installs (idempotent): the wasm32 target, Debian's lavapipe Vulkan driver (burn-wgpu on the CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
STAGES=${STAGES:-"setup rust matrix wasm web python fuzz"}

# One cargo target dir: reuse one outside the clone when it exists (CI on this machine), never require it.
if [ -z "${CARGO_TARGET_DIR:-}" ] && [ -d /work/cargo-target ]; then export CARGO_TARGET_DIR=/work/cargo-target; fi
export CARGO_TERM_COLOR=never
# burn-wgpu on lavapipe needs a runtime dir; WGPU picks the Vulkan CPU adapter.
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp/samplediff-xdg}; mkdir -p "$XDG_RUNTIME_DIR"; chmod 700 "$XDG_RUNTIME_DIR"

has() { [[ " $STAGES " == *" $1 "* ]]; }
step() { echo; echo "=== $* ($(date +%T))"; }
SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo

if has setup; then
  step "setup"
  rustup target list --installed | grep -q wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
  if ! ldconfig -p | grep -q libvulkan.so.1 || [ ! -e /usr/share/vulkan/icd.d/lvp_icd.x86_64.json ]; then
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq mesa-vulkan-drivers libvulkan1 >/dev/null
  fi
fi

if has rust; then
  step "rust: cargo test (workspace, debug build on optimised dependencies)"
  cargo test --workspace --no-fail-fast 2>&1 | tee "${TMPDIR:-/tmp}/samplediff-cargo-test.log"
fi

if has matrix; then
  step "matrix: every golden workflow on every backend (burn CPU, burn-wgpu on lavapipe) vs ComfyUI"
  cargo build -p samplediff-cli
  "${CARGO_TARGET_DIR:-target}/debug/samplediff" check-backends --workflows tests/fixtures/comfyui
  # The chain alone (recorded model outputs) on burn-wgpu: within 1e-6 of ComfyUI (asserted).
  cargo test -p samplediff-chain --features wgpu --test replay_wgpu
fi

if has wasm; then
  step "wasm: core crates build for wasm32-unknown-unknown"
  cargo build --target wasm32-unknown-unknown \
    -p samplediff-formats -p samplediff-tensor -p samplediff-metrics -p samplediff-chain -p samplediff-model \
    -p samplediff-trace -p samplediff-workflow
fi

# ---- web: the browser viewer, tested in headless Chromium (issue 7) ----------------------------
# Installs (idempotent): Debian's chromium; wasm-bindgen-cli of Cargo.lock's wasm-bindgen version
# (web/build-wasm.sh, from crates.io); the viewer's npm dev dependencies (web/package-lock.json).
# The tests compare the page's report with the debug CLI's `compare --json`, so it builds the CLI.
if has web; then
  step "web: wasm module (cargo profile wasm), viewer, browser tests"
  command -v chromium >/dev/null || { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium >/dev/null; }
  cargo build -p samplediff-cli
  bash web/build-wasm.sh
  (cd web && npm ci --no-audit --no-fund --loglevel=error && npm run --silent typecheck && node build.mjs \
    && node --test test/viewer.test.mjs)
  # The wasm columns (issues 3, 4): golden runs replayed (== ComfyUI within 1e-6) and run whole in wasm
  # (Node; Chromium must agree bit for bit), and run whole on WebGPU in headless Chromium (within 1e-4
  # of ComfyUI), written to tests/artifacts/wasm/; then the backend matrix with them as columns, every
  # pair asserted against its tolerance (docs/backends.md).
  (cd web && node --test test/wasm-workflows.test.mjs && node --test test/wasm-webgpu.test.mjs)
  "${CARGO_TARGET_DIR:-target}/debug/samplediff" check-backends --workflows tests/fixtures/comfyui \
    --include wasm-cpu=tests/artifacts/wasm/wasm-cpu --include wasm-webgpu=tests/artifacts/wasm/wasm-webgpu
fi
# ---- end of web ------------------------------------------------------------------------------------

# ---- fuzz: a 20 s smoke of every fuzz target on the committed corpus (issue 9) -------------------
# fuzz/run.sh builds the libFuzzer targets as cargo-fuzz does (no cargo-fuzz binary needed; nightly
# flags through RUSTC_BOOTSTRAP, AddressSanitizer) under <target dir>/x86_64-unknown-linux-gnu.
if has fuzz; then
  step "fuzz: every fuzz target for 20 s (fuzz/run.sh; longer runs: docs/fuzzing.md)"
  FUZZ_WORK="${TMPDIR:-/tmp}/samplediff-fuzz-smoke" bash fuzz/run.sh all 20
fi
# ---- end of fuzz -----------------------------------------------------------------------------------

# ---- python: the samplediff wheel and its pytest suite (issue 6) ---------------------------------
# Installs (idempotent): a venv under the cargo target dir with maturin, pytest and numpy (PyPI).
# Builds the abi3 wheel with the dev profile (our crates in debug, dependencies optimised: the
# cargo cache is shared with the other stages), installs it and runs crates/samplediff-py/tests:
# numpy only; torch tests skip without torch; the ComfyUI integration test runs only when
# SAMPLEDIFF_COMFYUI names a ComfyUI checkout. compare_files is checked against the debug CLI's
# `compare --json`, so it builds the CLI.
if has python; then
  step "python: samplediff wheel (maturin, dev profile) and pytest"
  PYVENV="${CARGO_TARGET_DIR:-$ROOT/target}/samplediff-pyvenv"
  [ -x "$PYVENV/bin/python" ] || python3 -m venv "$PYVENV"
  "$PYVENV/bin/python" -m pip install -q --disable-pip-version-check "maturin>=1.16,<2" "pytest>=7" "numpy>=1.25"
  cargo build -p samplediff-cli
  rm -rf "$PYVENV/wheels"
  "$PYVENV/bin/maturin" build --profile dev --strip -m crates/samplediff-py/Cargo.toml \
    -i "$PYVENV/bin/python" -o "$PYVENV/wheels"
  "$PYVENV/bin/python" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps "$PYVENV"/wheels/samplediff-*.whl
  (cd crates/samplediff-py && "$PYVENV/bin/python" -m pytest -q -p no:cacheprovider -rs tests)
fi
# ---- end of python ---------------------------------------------------------------------------------

step "done"
