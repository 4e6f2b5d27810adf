#!/bin/bash
# What the BR steps share (backup.sh, restore.sh, log-backup-start.sh source
# it from the same ConfigMap folder). Sourced, never run; uses BR from the
# script that sources it, and only bash.
# shellcheck shell=bash

# s3_flags: appends BR's S3 options that are set (S3_REGION, S3_ENDPOINT,
# S3_PROVIDER) to the array `args`.
s3_flags() {
  if [[ -n "${S3_REGION:-}" ]]; then args+=(--s3.region "$S3_REGION"); fi
  if [[ -n "${S3_ENDPOINT:-}" ]]; then args+=(--s3.endpoint "$S3_ENDPOINT"); fi
  if [[ -n "${S3_PROVIDER:-}" ]]; then args+=(--s3.provider "$S3_PROVIDER"); fi
}

# run_br ARGS...: runs BR with its stdout on stderr and returns its exit
# status. bash is PID 1 in the Job's container, where a signal without a
# handler is ignored and never reaches BR: the trap passes SIGTERM (the Job
# deleted or past its deadline) on to BR, so BR stops within the grace
# period instead of being killed at its end.
run_br() {
  local pid status
  "$BR" "$@" >&2 &
  pid=$!
  trap 'kill -TERM "$pid" 2>/dev/null || true' TERM INT
  while :; do
    status=0
    wait "$pid" || status=$?
    # Above 128: a trapped signal ended the wait, not BR; wait again.
    if ((status > 128)) && kill -0 "$pid" 2>/dev/null; then continue; fi
    break
  done
  trap - TERM INT
  return "$status"
}
