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
# Per target: libFuzzer starts from the working corpus fuzz/work/TARGET
# (kept between runs, not committed) and the committed fuzz/corpus/TARGET,
# and writes new inputs to the working corpus; a crash stops the run with
# the reproducer in fuzz/artifacts/TARGET (fix it, then copy it into the
# corpus as crash-NAME so the replay test keeps it). Afterwards a set-cover
# merge (`cargo fuzz cmin`) shrinks the working corpus, and the committed
# corpus becomes its seeds and crash reproducers plus a sample of the
# working corpus spread over its sizes, MAX_CORPUS files in all (half as
# many for the pipeline target, whose inputs are slow to replay). The
# summary of each run (executions, exec/s, corpus sizes) is in
# fuzz/logs/TARGET.txt, the whole log next to it (not committed);
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
    work="work/$target"
    mkdir -p "$corpus" "$work" "artifacts/$target"
    log="logs/$target.txt"
    echo "== $target: ${seconds}s" >&2
    set +e
    # New inputs go to the first folder, the working corpus (not committed).
    "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -max_len="$MAX_LEN" -print_final_stats=1 \
        -artifact_prefix="artifacts/$target/" "$work" "$corpus" \
        >"logs/$target.full.txt" 2>&1
    code=$?
    set -e
    grep -E '^(stat::|Done |#[0-9]+ *DONE)|ERROR|panicked|SUMMARY' "logs/$target.full.txt" >"$log" || true
    echo "working corpus before minimizing: $(find "$work" -type f | wc -l) files" >>"$log"
    if [ "$code" -ne 0 ]; then
        echo "fuzz.sh: $target failed (exit $code); see fuzz/logs/$target.full.txt and fuzz/artifacts/$target" >&2
        status=1
        continue
    fi
    # What `cargo fuzz cmin` does (a libFuzzer merge into an empty folder),
    # with a set-cover merge for a smaller corpus, on the built binary.
    minimized="$(mktemp -d)"
    "$bin" -merge=1 -set_cover_merge=1 -timeout=10 -rss_limit_mb=2048 \
        "$minimized" "$work" "$corpus" >"logs/$target.cmin.txt" 2>&1
    rm -rf "$work"
    mv "$minimized" "$work"
    echo "working corpus after minimizing: $(find "$work" -type f | wc -l) files" >>"$log"
    # The committed corpus: seeds and crash reproducers, and a sample of
    # the minimized corpus evenly spread over its sizes, MAX_CORPUS in all.
    find "$corpus" -type f ! -name 'crash-*' ! -name 'seed-*' -delete
    # A pipeline input compiles a cluster several times: fewer of them keep
    # the replay test at a few seconds in a debug build.
    cap="$MAX_CORPUS"
    [ "$target" != pipeline ] || cap=$((MAX_CORPUS / 2))
    room=$((cap - $(find "$corpus" -type f | wc -l)))
    if [ "$room" -gt 0 ]; then
        find "$work" -type f -printf '%s %p\n' | sort -n | awk '{print $2}' >"$log.files"
        total=$(wc -l <"$log.files")
        awk -v total="$total" -v room="$room" \
            'BEGIN { step = total / room; if (step < 1) step = 1; next_pick = 0 }
             NR - 1 >= next_pick && picked < room { print; picked++; next_pick += step }' \
            "$log.files" | xargs -r cp -t "$corpus"
        rm -f "$log.files"
    fi
    echo "committed corpus: $(find "$corpus" -type f | wc -l) files" >>"$log"
    cat "$log" >&2
done
exit "$status"
