#!/usr/bin/env bash
# Runs every cargo-fuzz target of fuzz/ in turn, then minimizes its corpus.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET [TARGET...]]
#
# SECONDS_PER_TARGET defaults to 300. One target runs at a time (one job):
# the fuzzers are meant for a developer machine, not for CI, and .ci/run
# never calls this script; CI replays the committed corpus as an ordinary
# test (tests/fuzz_corpus.rs). Installs cargo-fuzz when it is missing and
# needs the nightly toolchain (`rustup toolchain install nightly`).
#
# Per target: libFuzzer starts from fuzz/corpus/TARGET and writes new
# inputs there; a crash stops the run with the reproducer in
# fuzz/artifacts/TARGET (fix it, then copy it into the corpus so the replay
# test keeps it). Afterwards a set-cover merge (`cargo fuzz cmin`) shrinks
# the corpus, and at most MAX_CORPUS files are kept (reproducers and seeds
# first, then the smallest). The last lines of each run's log, with the
# executions and exec/s, are copied to fuzz/logs/TARGET.txt (not committed);
# docs/fuzzing.md records them.

set -euo pipefail

seconds="${1:-300}"
shift || true
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root/fuzz"

all=(cluster_toml inventory_toml placement_lock observed_json pipeline)
targets=("$@")
[ "${#targets[@]}" -gt 0 ] || targets=("${all[@]}")

MAX_CORPUS="${MAX_CORPUS:-40}"
# Parser inputs stay small: huge inputs are tests/bad_input.rs' business.
MAX_LEN="${MAX_LEN:-4096}"

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz.sh: the nightly toolchain is needed: rustup toolchain install nightly" >&2
    exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

# Build every target once, then run the binaries themselves: `cargo fuzz
# run` would rebuild whenever a source file changed in the meantime.
cargo +nightly fuzz build
triple="$(rustc +nightly -vV | sed -n 's/^host: //p')"
mkdir -p logs
status=0
for target in "${targets[@]}"; do
    bin="target/$triple/release/$target"
    corpus="corpus/$target"
    mkdir -p "$corpus" "artifacts/$target"
    log="logs/$target.txt"
    echo "== $target: ${seconds}s" >&2
    set +e
    "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -max_len="$MAX_LEN" -print_final_stats=1 \
        -artifact_prefix="artifacts/$target/" "$corpus" \
        >"logs/$target.full.txt" 2>&1
    code=$?
    set -e
    grep -E '^(stat::|Done |#[0-9]+ *DONE)|ERROR|panicked|SUMMARY' "logs/$target.full.txt" >"$log" || true
    echo "files before minimizing: $(find "$corpus" -type f | wc -l)" >>"$log"
    if [ "$code" -ne 0 ]; then
        echo "fuzz.sh: $target failed (exit $code); see fuzz/logs/$target.full.txt and fuzz/artifacts/$target" >&2
        status=1
        continue
    fi
    # What `cargo fuzz cmin` does (a libFuzzer merge into an empty folder),
    # with a set-cover merge for a smaller corpus, on the built binary.
    minimized="$(mktemp -d)"
    "$bin" -merge=1 -set_cover_merge=1 -timeout=10 -rss_limit_mb=2048 \
        "$minimized" "$corpus" >"logs/$target.cmin.txt" 2>&1
    # Reproducers and seeds stay whatever their coverage.
    find "$corpus" -type f \( -name 'crash-*' -o -name 'seed-*' \) -exec cp -t "$minimized" {} +
    rm -rf "$corpus"
    mv "$minimized" "$corpus"
    count=$(find "$corpus" -type f | wc -l)
    if [ "$count" -gt "$MAX_CORPUS" ]; then
        # Keep reproducers and seeds, then the smallest files.
        keep=$((MAX_CORPUS - $(find "$corpus" -type f \( -name 'crash-*' -o -name 'seed-*' \) | wc -l)))
        find "$corpus" -type f ! -name 'crash-*' ! -name 'seed-*' -printf '%s %p\n' |
            sort -n | awk '{print $2}' | tail -n +"$((keep > 0 ? keep + 1 : 1))" |
            xargs -r rm --
    fi
    echo "files after minimizing: $(find "$corpus" -type f | wc -l)" >>"$log"
    cat "$log" >&2
done
exit "$status"
