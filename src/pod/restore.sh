#!/bin/bash
# Restores a backup into the cluster with BR: a Job in the BR image
# (pingcap/br:<version>), run as /bin/bash /etc/tidb-gitops/restore.sh. The
# target cluster should be empty, or at least hold none of the restored
# tables (FACTS §7); BR checks that itself.
#
# Two modes (FACTS §7):
# - full: the snapshot at FROM, as it was taken:
#   br restore full --pd PD_ADDR --storage FROM ...
# - point: the snapshot at FROM, then the log backup at LOG_FROM replayed up
#   to RESTORED_TS (point-in-time restore):
#   br restore point --pd PD_ADDR --storage LOG_FROM
#     --full-backup-storage FROM --restored-ts RESTORED_TS ...
#
# Env:
# - BR: the br binary (default /br).
# - PD_ADDR: PD's client address, host:port (prod-pd.tidb-prod.svc:2379).
# - MODE: full or point.
# - FROM: the snapshot's URL, as backup.sh printed it
#   (s3://bucket/prefix/2026-11-20T020000Z).
# - For point only: LOG_FROM (the log backup's URL, s3://bucket/prefix/log)
#   and RESTORED_TS (the time to restore to, as 2026-11-20 10:00:00+0000).
# - Optional, empty meaning not given: S3_REGION, S3_ENDPOINT, S3_PROVIDER
#   (--s3.region, --s3.endpoint, --s3.provider), SEND_CREDENTIALS (true or
#   false; false gives --send-credentials-to-tikv=false).
# Credentials arrive only as environment variables or a mounted file that BR
# reads itself; this script never puts one on a command line.
#
# Output: one line per step on stderr; BR's output goes to stderr too, its
# log to a file under TMPDIR (default /tmp), whose last lines are shown when
# BR fails.
# Exit status: 0 restored, 1 BR failed, 2 bad environment (BR was not
# started).
# Tools: bash, tail (coreutils, in the Rocky Linux base of the BR image,
# FACTS §1).
set -euo pipefail

log() {
  echo "restore: $*" >&2
}

usage() {
  log "$*"
  exit 2
}

for v in PD_ADDR MODE FROM; do
  [[ -n "${!v:-}" ]] || usage "environment variable $v is not set"
done
BR="${BR:-/br}"
case "$MODE" in
  full) ;;
  point)
    for v in LOG_FROM RESTORED_TS; do
      [[ -n "${!v:-}" ]] || usage "environment variable $v is not set (MODE=point needs it)"
    done
    ;;
  *) usage "MODE='$MODE' is neither full nor point" ;;
esac
for v in FROM LOG_FROM; do
  [[ -z "${!v:-}" || "${!v}" =~ ^(s3|gcs|azure)://[^/]+(/.*)?$ ]] ||
    usage "$v='${!v}' is not s3://, gcs:// or azure:// followed by a bucket (or container) name"
done
case "${SEND_CREDENTIALS:-}" in
  "" | true | false) ;;
  *) usage "SEND_CREDENTIALS='$SEND_CREDENTIALS' is neither true nor false" ;;
esac
br_log="${TMPDIR:-/tmp}/br-restore-$MODE.log"

# s3_flags and run_br come from br-lib.sh, next to this script in the same
# ConfigMap.
# shellcheck source-path=SCRIPTDIR source=br-lib.sh
source "${BASH_SOURCE[0]%/*}/br-lib.sh"

if [[ "$MODE" == full ]]; then
  args=(restore full --pd "$PD_ADDR" --storage "$FROM")
  what="the snapshot $FROM"
else
  args=(restore point --pd "$PD_ADDR" --storage "$LOG_FROM" --full-backup-storage "$FROM" --restored-ts "$RESTORED_TS")
  what="the snapshot $FROM and the log backup $LOG_FROM up to $RESTORED_TS"
fi
s3_flags
if [[ "${SEND_CREDENTIALS:-}" == false ]]; then args+=(--send-credentials-to-tikv=false); fi
args+=(--log-file "$br_log")

log "restoring $what into the cluster of PD $PD_ADDR (BR's log: $br_log)"
status=0
run_br "${args[@]}" || status=$?
if ((status != 0)); then
  log "br restore $MODE failed with exit status $status; the last lines of its log $br_log:"
  tail -n 40 "$br_log" >&2 || log "(BR wrote no log at $br_log)"
  log "FAILED: the restore did not finish; the cluster may hold part of the data"
  exit 1
fi
log "restored $what"
