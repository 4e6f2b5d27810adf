#!/usr/bin/env bash
# The whole test suite: unit, golden, property and schema tests, then the
# external validators. README.md and .ci/run both call this.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet
bash scripts/validate.sh
if cargo nextest --version >/dev/null 2>&1; then
  # The crate has no Rust doctests (its doc examples are TOML), so nextest
  # alone runs every test.
  cargo nextest run --no-fail-fast
else
  cargo test --no-fail-fast
fi
