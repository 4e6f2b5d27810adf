#!/bin/bash
# A full snapshot backup of the cluster with BR: the first step of the backup
# CronJob, and the whole of the Job that backs up before an upgrade. Runs in
# the BR image (pingcap/br:<version>) as /bin/bash /etc/tidb-gitops/backup.sh.
#
# Every run writes to a folder of its own under STORAGE_BASE, because BR
# refuses a destination that already holds a backup and because the prune
# step tells the runs apart by their folder names. The folder is RUN_NAME
# when given (the Job before an upgrade: before-v8.5.2), else the start time
# in UTC, as 2026-11-20T020000Z: one name a second, sorted in time order.
#
# Env:
# - BR: the br binary (default /br).
# - PD_ADDR: PD's client address, host:port (prod-pd.tidb-prod.svc:2379).
# - STORAGE_BASE: s3://bucket[/prefix], gcs://bucket[/prefix] or
#   azure://container[/prefix], without a trailing slash.
# - Optional, empty meaning not given: S3_REGION, S3_ENDPOINT, S3_PROVIDER
#   (--s3.region, --s3.endpoint, --s3.provider); RATE_LIMIT (MiB/s for each
#   TiKV, --ratelimit); CONCURRENCY (--concurrency); SEND_CREDENTIALS (true or
#   false; false gives --send-credentials-to-tikv=false, for TiKV pods that
#   reach the storage with their own cloud identity); RUN_NAME (the run's
#   folder instead of the time); RUN_FILE (a file in a volume shared with the
#   prune step, which gets the run name once the backup succeeded).
# Credentials arrive only as environment variables (AWS_ACCESS_KEY_ID, ...)
# or a mounted file that BR reads itself (GOOGLE_APPLICATION_CREDENTIALS):
# this script never puts one on a command line.
#
# Output: the backup's URL on stdout, nothing else. BR's own output and one
# line per step go to stderr. BR's log goes to a file under TMPDIR (default
# /tmp, an emptyDir: the root filesystem may be read-only); its last lines
# are shown when BR fails.
# Exit status: 0 done, 1 BR failed or the run file could not be written,
# 2 bad environment (BR was not started).
# Tools: bash, date, tail: coreutils, in the Rocky Linux base of the BR image
# (FACTS §1).
set -euo pipefail

log() {
  echo "backup: $*" >&2
}

usage() {
  log "$*"
  exit 2
}

for v in PD_ADDR STORAGE_BASE; do
  [[ -n "${!v:-}" ]] || usage "environment variable $v is not set"
done
BR="${BR:-/br}"
[[ "$STORAGE_BASE" =~ ^(s3|gcs|azure)://[^/]+(/.*)?$ ]] ||
  usage "STORAGE_BASE='$STORAGE_BASE' is not s3://, gcs:// or azure:// followed by a bucket (or container) name"
[[ "$STORAGE_BASE" != */ ]] || usage "STORAGE_BASE='$STORAGE_BASE' must not end in /"
for v in RATE_LIMIT CONCURRENCY; do
  [[ -z "${!v:-}" || "${!v}" =~ ^[1-9][0-9]*$ ]] || usage "$v='${!v}' is not a whole number of at least 1"
done
case "${SEND_CREDENTIALS:-}" in
  "" | true | false) ;;
  *) usage "SEND_CREDENTIALS='$SEND_CREDENTIALS' is neither true nor false" ;;
esac
if [[ -n "${RUN_NAME:-}" ]]; then
  # One folder name: no slash, no dot-only name, nothing a URL would escape.
  [[ "$RUN_NAME" =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]] ||
    usage "RUN_NAME='$RUN_NAME' is not a folder name (letters, digits, '.', '_', '-', starting with a letter or digit)"
  run="$RUN_NAME"
else
  run="$(date -u +%Y-%m-%dT%H%M%SZ)"
  [[ "$run" =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{6}Z$ ]] || {
    log "date printed '$run', not a time as 2026-11-20T020000Z"
    exit 1
  }
fi
url="$STORAGE_BASE/$run"
br_log="${TMPDIR:-/tmp}/br-backup-$run.log"

# s3_flags and run_br come from br-lib.sh, next to this script in the same
# ConfigMap.
# shellcheck source-path=SCRIPTDIR source=br-lib.sh
source "${BASH_SOURCE[0]%/*}/br-lib.sh"

args=(backup full --pd "$PD_ADDR" --storage "$url")
s3_flags
if [[ -n "${RATE_LIMIT:-}" ]]; then args+=(--ratelimit "$RATE_LIMIT"); fi
if [[ -n "${CONCURRENCY:-}" ]]; then args+=(--concurrency "$CONCURRENCY"); fi
if [[ "${SEND_CREDENTIALS:-}" == false ]]; then args+=(--send-credentials-to-tikv=false); fi
args+=(--log-file "$br_log")

log "backing up the cluster of PD $PD_ADDR to $url (run $run; BR's log: $br_log)"
status=0
run_br "${args[@]}" || status=$?
if ((status != 0)); then
  log "br backup full failed with exit status $status; the last lines of its log $br_log:"
  tail -n 40 "$br_log" >&2 || log "(BR wrote no log at $br_log)"
  log "FAILED: no backup at $url"
  exit 1
fi
log "backup done: $url"
if [[ -n "${RUN_FILE:-}" ]]; then
  printf '%s\n' "$run" >"$RUN_FILE" || {
    log "could not write the run name to RUN_FILE=$RUN_FILE"
    exit 1
  }
  log "wrote the run name $run to $RUN_FILE"
fi
printf '%s\n' "$url"
