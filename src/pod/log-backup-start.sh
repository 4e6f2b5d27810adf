#!/bin/bash
# Starts the cluster's log backup task (the change log that point-in-time
# restore replays on top of a snapshot), once: a Job in the BR image
# (pingcap/br:<version>), run as /bin/bash /etc/tidb-gitops/log-backup-start.sh.
# A cluster has one such task, and it runs inside TiKV until it is stopped, so
# the Job only has to start it when it is not there. Run again (a new Job, a
# retry), it finds the task and changes nothing.
#
# Env:
# - BR: the br binary (default /br).
# - PD_ADDR: PD's client address, host:port (prod-pd.tidb-prod.svc:2379).
# - LOG_STORAGE: where the task writes, as s3://bucket/prefix/log.
# - TASK_NAME: the task's name (pitr).
# - Optional, empty meaning not given: S3_REGION, S3_ENDPOINT, S3_PROVIDER
#   (--s3.region, --s3.endpoint, --s3.provider), SEND_CREDENTIALS (true or
#   false; false gives --send-credentials-to-tikv=false).
# Credentials arrive only as environment variables or a mounted file that BR
# reads itself; this script never puts one on a command line.
#
# Whether the task exists comes from `br log status --task-name=NAME`
# [br/pkg/stream/stream_status.go, br/pkg/stream/stream_metas.go,
# br/cmd/br/main.go in pingcap/tidb; read in the source, not run]:
# - the task exists: exit status 0 and a table with "name: NAME" and
#   "status: NORMAL" (or PAUSE, ERROR);
# - no task of that name: BR fails (exit status 1) with the error
#   "no such task NAME: [BR:PiTR:ErrTaskNotFound]task not found", which cobra
#   prints on stderr ("Error: ...") and BR logs ("br failed");
# - "No Task Yet." with exit status 0 is what BR prints when asked for all
#   tasks; it is taken as "no task" too.
# Unverified: the exact wording in every BR release (the error code
# ErrTaskNotFound and "task not found" are matched, either one suffices), and
# that every failure other than a missing task (PD unreachable, ...) exits
# non-zero without those words. Any other outcome of the status query stops
# the script (exit 1) without starting anything: starting a task that may
# exist would fail anyway.
# A paused or failed task counts as existing: the script does not resume it
# (that needs a person: `br log resume`, after the cause is fixed) and says so.
#
# Output: one line per step on stderr; BR's output goes to stderr too, and its
# logs to files under TMPDIR (default /tmp), shown when BR fails.
# Exit status: 0 the task runs (it was there, or it was started), 1 BR failed,
# 2 bad environment (BR was not started).
# Tools: bash, tail (coreutils, in the Rocky Linux base of the BR image,
# FACTS §1).
set -euo pipefail

log() {
  echo "log-backup-start: $*" >&2
}

usage() {
  log "$*"
  exit 2
}

for v in PD_ADDR LOG_STORAGE TASK_NAME; do
  [[ -n "${!v:-}" ]] || usage "environment variable $v is not set"
done
BR="${BR:-/br}"
[[ "$LOG_STORAGE" =~ ^(s3|gcs|azure)://[^/]+(/.*)?$ ]] ||
  usage "LOG_STORAGE='$LOG_STORAGE' is not s3://, gcs:// or azure:// followed by a bucket (or container) name"
[[ "$TASK_NAME" =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]] ||
  usage "TASK_NAME='$TASK_NAME' is not a task name (letters, digits, '.', '_', '-')"
case "${SEND_CREDENTIALS:-}" in
  "" | true | false) ;;
  *) usage "SEND_CREDENTIALS='$SEND_CREDENTIALS' is neither true nor false" ;;
esac
tmp="${TMPDIR:-/tmp}"
status_log="$tmp/br-log-status.log"
start_log="$tmp/br-log-start.log"

# s3_flags and run_br come from br-lib.sh, next to this script in the same
# ConfigMap.
# shellcheck source-path=SCRIPTDIR source=br-lib.sh
source "${BASH_SOURCE[0]%/*}/br-lib.sh"

# file_text FILE: the file's text, or nothing when it cannot be read.
file_text() {
  if [[ -r "$1" ]]; then printf '%s\n' "$(<"$1")"; fi
}

log "asking PD $PD_ADDR for the log backup task $TASK_NAME"
status=0
# stdin from /dev/null: BR asks nothing here. The query is short, so no
# signal forwarding: the Job's grace period covers it.
out="$("$BR" log status --task-name="$TASK_NAME" --pd "$PD_ADDR" --log-file "$status_log" </dev/null 2>&1)" || status=$?
all="$out"$'\n'"$(file_text "$status_log")"
if ((status == 0)) && [[ "$out" != *"No Task Yet"* ]]; then
  state=""
  for word in NORMAL PAUSE ERROR; do
    if [[ "$out" == *"$word"* ]]; then
      state="$word"
      break
    fi
  done
  case "$state" in
    NORMAL) log "the task $TASK_NAME exists and runs (NORMAL); nothing to do" ;;
    "") log "the task $TASK_NAME exists (br log status succeeded; its state was not recognised); nothing to do" ;;
    *)
      log "WARNING: the task $TASK_NAME exists but is $state: log backup is not advancing; it is not started again here"
      log "see 'br log status --task-name=$TASK_NAME' and resume it with 'br log resume --task-name=$TASK_NAME' once the cause is fixed"
      ;;
  esac
  exit 0
fi
if ((status == 0)) || [[ "$all" == *ErrTaskNotFound* || "$all" == *"task not found"* ]]; then
  log "no log backup task $TASK_NAME yet"
else
  log "br log status failed with exit status $status, and not because the task is missing; its output:"
  if [[ -n "$out" ]]; then printf '%s\n' "$out" >&2; fi
  log "the last lines of its log $status_log:"
  tail -n 20 "$status_log" >&2 || log "(BR wrote no log at $status_log)"
  log "FAILED: cannot tell whether the task exists; nothing started"
  exit 1
fi

args=(log start --task-name="$TASK_NAME" --pd "$PD_ADDR" --storage "$LOG_STORAGE")
s3_flags
if [[ "${SEND_CREDENTIALS:-}" == false ]]; then args+=(--send-credentials-to-tikv=false); fi
args+=(--log-file "$start_log")

log "starting the log backup task $TASK_NAME to $LOG_STORAGE (BR's log: $start_log)"
status=0
run_br "${args[@]}" || status=$?
if ((status != 0)); then
  log "br log start failed with exit status $status; the last lines of its log $start_log:"
  tail -n 40 "$start_log" >&2 || log "(BR wrote no log at $start_log)"
  log "FAILED: the log backup task $TASK_NAME did not start"
  exit 1
fi
log "log backup task $TASK_NAME started, writing to $LOG_STORAGE"
