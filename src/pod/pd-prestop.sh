#!/bin/bash
# preStop hook of every PD container: if this member leads the PD cluster,
# hands leadership to a healthy member before pd-server gets SIGTERM, so the
# cluster does not wait for an election timeout (as the operator does before
# it restarts the leader).
#
# Env: PD_NAME (this member's name), optional LOCAL_URL (default
# http://127.0.0.1:2379), TRANSFER_TIMEOUT_SECONDS (default 30), POLL_SECONDS
# (default 1), HTTP_TIMEOUT_SECONDS (default 3).
# Tools: bash, wget, jq, sleep.
# - wget and jq are in the PD image (verified). The flags used (-t, -T,
#   --no-proxy, --post-data) are GNU wget's: the image's wget is the Rocky
#   Linux package (inferred, not busybox's applet). wget rather than pd-ctl:
#   plain HTTP calls, no client to configure.
# - jq reads PD's JSON replies, so their layout does not matter (PD indents
#   them; the exact layout is unverified).
# - sleep is coreutils.
#
# Always exits 0: a failing preStop hook only produces an event, and the pod
# must stop the same way whether or not leadership moved. Every step is
# logged on stderr.
set -euo pipefail

log() {
  echo "pd-prestop: $*" >&2
}

# Whatever ends the script (set -e included), it exits 0.
on_exit() {
  local status=$?
  if ((status != 0)); then
    log "stopped early by an unexpected error (status $status); the pod stops as usual"
  fi
  exit 0
}
trap on_exit EXIT

if [[ -z "${PD_NAME:-}" ]]; then
  log "environment variable PD_NAME is not set; stopping without moving leadership"
  exit 0
fi

# number NAME DEFAULT: the value of NAME when it is a number of seconds
# (fractions allowed: sleep and wget -T take them), else DEFAULT.
number() {
  local value="${!1:-$2}"
  if [[ "$value" =~ ^[0-9]+([.][0-9]+)?$ ]]; then
    printf '%s\n' "$value"
  else
    log "$1='$value' is not a number of seconds; using $2"
    printf '%s\n' "$2"
  fi
}
LOCAL_URL="${LOCAL_URL:-http://127.0.0.1:2379}"
LOCAL_URL="${LOCAL_URL%/}"
TRANSFER_TIMEOUT_SECONDS="$(number TRANSFER_TIMEOUT_SECONDS 30)"
# Whole seconds: the deadline is counted with bash's SECONDS.
TRANSFER_TIMEOUT_SECONDS="${TRANSFER_TIMEOUT_SECONDS%%.*}"
POLL_SECONDS="$(number POLL_SECONDS 1)"
HTTP_TIMEOUT_SECONDS="$(number HTTP_TIMEOUT_SECONDS 3)"

# One try each; no proxy. Fails on anything but a 2xx reply.
http_get() {
  wget -q -O - --no-proxy -t 1 -T "$HTTP_TIMEOUT_SECONDS" "$1" 2>/dev/null
}

http_post() {
  wget -q -O - --no-proxy -t 1 -T "$HTTP_TIMEOUT_SECONDS" --post-data= "$1" 2>/dev/null
}

# leader: prints the name of the PD leader as this member sees it.
leader() {
  local body
  body="$(http_get "$LOCAL_URL/pd/api/v1/leader")" || return 1
  jq -er '.name | strings' <<<"$body" 2>/dev/null
}

# healthy_other: prints the name of the first member other than this one that
# PD's health check reports healthy; fails when there is none.
healthy_other() {
  local body name
  body="$(http_get "$LOCAL_URL/pd/api/v1/health")" || return 1
  name="$(jq -r --arg me "$PD_NAME" \
    'first(.[] | select(.health == true and .name != $me) | .name | strings) // empty' \
    <<<"$body" 2>/dev/null)" || return 1
  [[ -n "$name" ]] || return 1
  printf '%s\n' "$name"
}

if ! current="$(leader)"; then
  log "PD at $LOCAL_URL did not name a leader (GET /pd/api/v1/leader); stopping without moving leadership"
  exit 0
fi
if [[ "$current" != "$PD_NAME" ]]; then
  log "$current leads, not $PD_NAME; nothing to do"
  exit 0
fi
log "$PD_NAME leads the PD cluster; moving leadership away"

moved=""
if target="$(healthy_other)"; then
  # unverified: the reply text "The transfer command is submitted." (FACTS §4);
  # any 2xx reply counts.
  if reply="$(http_post "$LOCAL_URL/pd/api/v1/leader/transfer/$target")"; then
    log "asked PD to transfer leadership to $target: ${reply//[[:space:]]/ }"
    moved=yes
  else
    log "PD did not accept the transfer to $target"
  fi
else
  log "no other member is reported healthy (GET /pd/api/v1/health)"
fi
if [[ -z "$moved" ]]; then
  # Resigning lets the other members elect a leader among themselves.
  if reply="$(http_post "$LOCAL_URL/pd/api/v1/leader/resign")"; then
    log "asked PD to resign leadership: ${reply//[[:space:]]/ }"
  else
    log "PD did not accept the resign either; stopping without moving leadership"
    exit 0
  fi
fi

# SECONDS steps with the clock's whole seconds, so it may tick just after
# the start; the + 1 makes the wait at least the timeout (and under a second
# more).
deadline=$((SECONDS + TRANSFER_TIMEOUT_SECONDS + 1))
while :; do
  if current="$(leader)"; then
    if [[ "$current" != "$PD_NAME" ]]; then
      log "$current leads now; done"
      exit 0
    fi
    log "$PD_NAME still leads"
  else
    log "no leader known yet (an election may be running)"
  fi
  if ((SECONDS >= deadline)); then
    log "$PD_NAME still leads after ${TRANSFER_TIMEOUT_SECONDS}s; giving up, the pod stops anyway"
    exit 0
  fi
  sleep "$POLL_SECONDS"
done
