#!/usr/bin/env bash
# The whole test suite: unit, golden, property and schema tests, then the
# external validators. README.md and .ci/run both call this.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet
bash scripts/validate.sh
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --no-fail-fast
  # nextest does not run doctests.
  cargo test --quiet --doc
else
  cargo test --no-fail-fast
fi
