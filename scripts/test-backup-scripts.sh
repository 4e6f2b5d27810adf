#!/usr/bin/env bash
# Runs src/pod/backup-prune-s3.sh against a real S3 API: moto's S3 server on
# 127.0.0.1 and the real AWS CLI (v1, from PyPI), both from
# scripts/requirements-backup-tests.txt, installed by scripts/validators.sh.
# tests/pod_backup.rs covers the same script against a fake aws; this run
# checks what a fake cannot: the CLI's real options, its paging of a listing
# of more than 1000 folders, its text output, and S3's prefix semantics.
#
#   bash scripts/test-backup-scripts.sh     (from anywhere; needs no build)
#
# The script runs as in its pod: under bash with a cleared environment whose
# PATH holds bash and aws alone (aws being a wrapper that records each call's
# argv, then runs the venv's aws), the credentials in the environment only.
# Cases, each in a bucket of its own:
#   1. KEEP=2 over five runs among other keys: exactly the three oldest runs'
#      objects go, every other key stays (log/, before-v8.5.2/, a sibling
#      prefix, a folder placeholder, names that only look like runs);
#   2. then KEEP larger than the number of runs: nothing goes;
#   3. a run file naming a run that is not in the bucket: exit 1, nothing goes;
#   4. 1105 runs (more than one page of 1000): the newest run is on the last
#      page, so it is found only if every page was listed; KEEP=1103 removes
#      exactly the two oldest.
# Negative controls first: the checks must reject a wrong expectation (a
# KEEP=1 prune checked against the KEEP=2 result), a secret on a command line,
# and the server must really split the 1105 folders into pages. Prints the time
# each part took; any failure makes the exit status non-zero.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }
log() { echo "test-backup-scripts: $*"; }
fail() {
  echo "test-backup-scripts: FAILED: $*" >&2
  exit 1
}
t0=$(now)
bin=$("$root/scripts/validators.sh")
log "venv ready ($(since "$t0"))"
prune="$root/src/pod/backup-prune-s3.sh"

scratch=$(mktemp -d)
moto_pid=""
cleanup() {
  if [ -n "$moto_pid" ]; then
    kill "$moto_pid" 2>/dev/null || true
    wait "$moto_pid" 2>/dev/null || true
  fi
  rm -rf "$scratch"
}
trap cleanup EXIT
# A signal ends the script through exit, which runs the EXIT trap (moto stopped).
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------------------ the server
t=$(now)
port=$("$bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
endpoint="http://127.0.0.1:$port"
"$bin/moto_server" -H 127.0.0.1 -p "$port" >"$scratch/moto.log" 2>&1 &
moto_pid=$!
# The credentials moto accepts (any); the secret must never show on a command line.
access_key="AKIATESTBACKUPPRUNE01"
secret_key="test-secret-never-on-argv-5f2c9a"
mkdir -p "$scratch/home"
# aws as the test harness uses it (not the script under test).
s3() {
  env -i HOME="$scratch/home" PATH="$bin:/usr/bin:/bin" AWS_ACCESS_KEY_ID="$access_key" \
    AWS_SECRET_ACCESS_KEY="$secret_key" AWS_DEFAULT_REGION=us-east-1 \
    "$bin/aws" --endpoint-url "$endpoint" "$@"
}
for ((i = 0; ; i++)); do
  if s3 s3api list-buckets >/dev/null 2>&1; then break; fi
  kill -0 "$moto_pid" 2>/dev/null || {
    cat "$scratch/moto.log" >&2
    fail "moto_server exited"
  }
  ((i < 300)) || fail "moto_server did not answer on $endpoint within 30 s"
  sleep 0.1
done
log "moto_server answers on $endpoint ($(since "$t"))"

# ------------------------------------------------------------------ fixtures
runs=(2026-11-16T020000Z 2026-11-17T020000Z 2026-11-18T020000Z 2026-11-19T020000Z 2026-11-20T020000Z)
# Keys that are not runs under tidb/prod/, or are outside it: never touched.
others=(
  tidb/prod/log/backup.lock
  tidb/prod/log/v1/backupmeta/0001.meta
  tidb/prod/before-v8.5.2/backupmeta
  tidb/prod/2026-11-15T020000Z.txt
  tidb/prod/2026-11-1T020000Z/backupmeta
  tidb/prod/20261114T020000Z/backupmeta
  tidb/prod/notes.txt
  tidb/prod/2026-11-10T020000Z
  tidb/prod-old/2026-11-01T020000Z/backupmeta
  tidb/2026-11-02T020000Z/backupmeta
  other/2026-11-03T020000Z/backupmeta
)
# A folder placeholder (a key ending in /, as consoles create), uploaded apart.
placeholder=tidb/prod/

# keys_of RUN...: the keys of a bucket holding RUNs and the others, sorted.
keys_of() {
  local run
  {
    for run in "$@"; do
      echo "tidb/prod/$run/backupmeta"
      echo "tidb/prod/$run/1/5_2_a.sst"
    done
    printf '%s\n' "${others[@]}" "$placeholder"
  } | LC_ALL=C sort
}

# make_bucket NAME: a bucket with the five runs, the others and the placeholder.
make_bucket() {
  local tree="$scratch/tree-$1" key
  while IFS= read -r key; do
    [[ "$key" == */ ]] && continue
    mkdir -p "$tree/$(dirname "$key")"
    echo "$key" >"$tree/$key"
  done < <(keys_of "${runs[@]}")
  s3 s3api create-bucket --bucket "$1" >/dev/null
  s3 s3 sync --only-show-errors "$tree" "s3://$1/"
  s3 s3api put-object --bucket "$1" --key "$placeholder" >/dev/null
}

# check_keys BUCKET EXPECTED-FILE: the bucket holds exactly the keys listed.
check_keys() {
  local got="$scratch/got.$1"
  s3 s3api list-objects-v2 --bucket "$1" --query 'Contents[].[Key]' --output text | LC_ALL=C sort >"$got"
  if ! cmp -s "$2" "$got"; then
    echo "  bucket $1 does not hold the expected keys (- expected, + found):"
    diff "$2" "$got" | sed -n 's/^</  -/p; s/^>/  +/p' | head -n 20
    return 1
  fi
}

# check_no_secret ARGV-FILE: no call recorded there carries the secret.
check_no_secret() {
  if tr '\0' '\n' <"$1" | grep -qF -- "$secret_key"; then
    echo "  the secret access key is on a command line in $1"
    return 1
  fi
}

# The pod: bash and an aws that records each call's argv (NUL-separated, a
# blank line after each call) before running the real one.
pod="$scratch/pod"
mkdir -p "$pod/bin"
ln -s "$(command -v bash)" "$pod/bin/bash"
cat >"$pod/bin/aws" <<EOF
#!$(command -v bash)
printf '%s\0' "\$@" >>"$pod/argv"
printf '\n' >>"$pod/argv"
exec "$bin/aws" "\$@"
EOF
chmod +x "$pod/bin/aws"

# prune BUCKET KEEP CURRENT [PREFIX]: runs the script as in its pod; its
# stdout in $scratch/out, stderr in $scratch/err; returns its exit status.
prune() {
  printf '%s\n' "$3" >"$pod/run"
  : >"$pod/argv"
  local status=0
  env -i PATH="$pod/bin" HOME="$scratch/home" BUCKET="$1" PREFIX="${4-tidb/prod}" KEEP="$2" \
    RUN_FILE="$pod/run" S3_ENDPOINT="$endpoint" AWS_REGION=us-east-1 \
    AWS_ACCESS_KEY_ID="$access_key" AWS_SECRET_ACCESS_KEY="$secret_key" \
    bash "$prune" >"$scratch/out" 2>"$scratch/err" </dev/null || status=$?
  return "$status"
}

# show_run: what the last prune printed, for a failure message.
show_run() {
  sed 's/^/  stdout: /' "$scratch/out"
  sed 's/^/  stderr: /' "$scratch/err"
}

t=$(now)
for b in keep2 keep1 missing; do make_bucket "$b"; done
log "three buckets of ${#runs[@]} runs and $((${#others[@]} + 1)) other keys ready ($(since "$t"))"

# ------------------------------------------------------------------ negative controls
t=$(now)
keys_of "${runs[@]:3}" >"$scratch/want.keep2"
keys_of "${runs[@]:4}" >"$scratch/want.keep1"
keys_of "${runs[@]}" >"$scratch/want.all"
prune keep1 1 "${runs[4]}" || {
  show_run
  fail "KEEP=1 prune failed"
}
check_keys keep1 "$scratch/want.keep1" || fail "KEEP=1 prune left other keys"
if check_keys keep1 "$scratch/want.keep2" >"$scratch/neg.out"; then
  fail "check_keys accepted a KEEP=1 result as the KEEP=2 one: the check is not working"
fi
grep -qF -- "- tidb/prod/${runs[3]}/backupmeta" "$scratch/neg.out" ||
  fail "check_keys rejected the KEEP=1 result without naming the missing run: $(cat "$scratch/neg.out")"
[ -s "$pod/argv" ] || fail "the aws wrapper recorded no call: the script did not run the wrapper"
printf '%s\0' s3 ls "--secret=$secret_key" >"$scratch/argv.bad"
if check_no_secret "$scratch/argv.bad" >/dev/null; then
  fail "check_no_secret accepted an argv holding the secret: the check is not working"
fi
log "negative controls: a wrong expectation and a secret on argv are each rejected ($(since "$t"))"

# ------------------------------------------------------------------ 1. KEEP=2
t=$(now)
prune keep2 2 "${runs[4]}" || {
  show_run
  fail "case 1: KEEP=2 prune failed"
}
check_keys keep2 "$scratch/want.keep2" || fail "case 1: KEEP=2 did not keep exactly the two newest runs and the other keys"
printf 's3://keep2/tidb/prod/%s/\n' "${runs[@]:0:3}" >"$scratch/want.out"
cmp -s "$scratch/want.out" "$scratch/out" || {
  show_run
  fail "case 1: the removed runs printed are not the three oldest"
}
check_no_secret "$pod/argv" || fail "case 1"
log "1. KEEP=2 over 5 runs: the 3 oldest removed, the other $((${#others[@]} + 1)) keys untouched ($(since "$t"))"

# ------------------------------------------------------------------ 2. KEEP > runs
t=$(now)
prune keep2 10 "${runs[4]}" || {
  show_run
  fail "case 2: KEEP=10 prune failed"
}
check_keys keep2 "$scratch/want.keep2" || fail "case 2: KEEP=10 removed something"
[ ! -s "$scratch/out" ] || fail "case 2: KEEP=10 printed removed runs: $(cat "$scratch/out")"
grep -q "removing 0" "$scratch/err" || {
  show_run
  fail "case 2: no 'removing 0' in the log"
}
log "2. KEEP=10 over the 2 runs left: nothing removed ($(since "$t"))"

# ------------------------------------------------------------------ 3. unknown current run
t=$(now)
status=0
prune missing 1 2026-11-21T020000Z || status=$?
[ "$status" -eq 1 ] || {
  show_run
  fail "case 3: a run file naming a run not in the bucket gave exit status $status, not 1"
}
grep -q "REFUSED" "$scratch/err" || {
  show_run
  fail "case 3: no REFUSED in the log"
}
check_keys missing "$scratch/want.all" || fail "case 3: something was removed"
grep -qzx rm "$pod/argv" && fail "case 3: aws s3 rm was called"
log "3. a run file naming a run not in the bucket: exit 1, nothing removed ($(since "$t"))"

# ------------------------------------------------------------------ 4. pages
t=$(now)
many=1105
tree="$scratch/tree-many"
# Runs an hour apart from 2026-01-01T000000Z, written by python (date's
# arithmetic differs between platforms), one object each, and log/x.
"$bin/python" - "$tree" "$many" >"$scratch/many.runs" <<'PY'
import datetime, os, sys
tree, n = sys.argv[1], int(sys.argv[2])
start = datetime.datetime(2026, 1, 1)
for i in range(n):
    run = (start + datetime.timedelta(hours=i)).strftime("%Y-%m-%dT%H%M%SZ")
    os.makedirs(os.path.join(tree, "big", run))
    with open(os.path.join(tree, "big", run, "backupmeta"), "w") as f:
        f.write(run)
    print(run)
os.makedirs(os.path.join(tree, "big", "log"))
with open(os.path.join(tree, "big", "log", "x"), "w") as f:
    f.write("x")
PY
mapfile -t many_runs <"$scratch/many.runs"
s3 s3api create-bucket --bucket many >/dev/null
s3 s3 sync --only-show-errors "$tree" s3://many/
log "4. a bucket of $many runs ready ($(since "$t"))"
t=$(now)
# The control: the server returns at most 1000 folders a page, so the listing
# the script gets spans two pages (and the newest runs are on the second).
page=$(s3 s3api list-objects-v2 --bucket many --prefix big/ --delimiter / --no-paginate \
  --query '[IsTruncated, length(CommonPrefixes)]' --output text)
[ "$page" = $'True\t1000' ] || fail "case 4: the first page is '$page', not a truncated page of 1000 folders: the case would not test paging"
prune many $((many - 2)) "${many_runs[-1]}" big || {
  show_run
  fail "case 4: KEEP=$((many - 2)) prune over $many runs failed"
}
{
  printf 'big/%s/backupmeta\n' "${many_runs[@]:2}"
  echo big/log/x
} | LC_ALL=C sort >"$scratch/want.many"
check_keys many "$scratch/want.many" || fail "case 4: KEEP=$((many - 2)) did not remove exactly the two oldest of $many runs"
printf 's3://many/big/%s/\n' "${many_runs[@]:0:2}" >"$scratch/want.out"
cmp -s "$scratch/want.out" "$scratch/out" || {
  show_run
  fail "case 4: the removed runs printed are not the two oldest"
}
grep -q "$many runs under big/" "$scratch/err" || {
  show_run
  fail "case 4: the script did not count $many runs"
}
check_no_secret "$pod/argv" || fail "case 4"
log "4. $many runs over two pages: all listed, exactly the 2 oldest removed ($(since "$t"))"

log "the S3 prune passes 4 cases and 3 negative controls against moto_server with the AWS CLI $("$bin/aws" --version 2>&1 | cut -d' ' -f1) ($(since "$t0") in all)"
