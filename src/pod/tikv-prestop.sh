#!/bin/bash
# preStop hook of every TiKV container: moves the store's Region leaders away
# (PD's evict-leader scheduler) before TiKV gets SIGTERM, so the restart does
# not leave Regions without a leader until their election timeout. The entry
# script (tikv-start.sh) removes the scheduler again once the store is back.
#
# Env: PD_URL (e.g. http://prod-pd.tidb-prod.svc:2379), ADVERTISE_ADDR (the
# store address as TiKV registers it), DATA_DIR, optional
# EVICT_TIMEOUT_SECONDS (default 300), POLL_SECONDS (default 5),
# HTTP_TIMEOUT_SECONDS (default 5).
# Tools: bash, wget, grep, sleep, mv, sync.
# - wget is in the TiKV image (verified; the operator needs it). The flags used
#   (-t, -T, --no-proxy, --header, --post-data) are GNU wget's: the image's
#   wget is the Rocky Linux package (inferred, not busybox's applet).
# - grep splits PD's JSON into tokens: the TiKV image has no jq. grep is
#   inferred: it comes with the Rocky Linux base image, not checked in the
#   TiKV image itself.
# - sleep, mv and sync are coreutils.
#
# Steps: find the store id by address in PD's store list; unless a person
# already evicts this store (a scheduler but no marker of ours), write the
# marker $DATA_DIR/.tidb-gitops-evicting (store id, then a nonce) and add the
# evict-leader scheduler; then wait until PD reports no leader on the store,
# at most EVICT_TIMEOUT_SECONDS.
#
# Always exits 0: a failing preStop hook only produces an event, and the pod
# must stop the same way whether or not the leaders could be evicted. Every
# step is logged on stderr.
set -euo pipefail

log() {
  echo "tikv-prestop: $*" >&2
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

for v in PD_URL ADVERTISE_ADDR DATA_DIR; do
  if [[ -z "${!v:-}" ]]; then
    log "environment variable $v is not set; stopping without evicting leaders"
    exit 0
  fi
done

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
EVICT_TIMEOUT_SECONDS="$(number EVICT_TIMEOUT_SECONDS 300)"
# Whole seconds: the deadline is counted with bash's SECONDS.
EVICT_TIMEOUT_SECONDS="${EVICT_TIMEOUT_SECONDS%%.*}"
POLL_SECONDS="$(number POLL_SECONDS 5)"
HTTP_TIMEOUT_SECONDS="$(number HTTP_TIMEOUT_SECONDS 5)"
PD_URL="${PD_URL%/}"
marker="$DATA_DIR/.tidb-gitops-evicting"

# json_flat, json_value, store_id_of and http_get come from pd-api.sh, next
# to this script.
# shellcheck source-path=SCRIPTDIR source=pd-api.sh
source "${BASH_SOURCE[0]%/*}/pd-api.sh"

# http_post_json URL JSON: one try, as http_get. Fails on anything but a 2xx
# reply.
http_post_json() {
  wget -q -O - --no-proxy -t 1 -T "$HTTP_TIMEOUT_SECONDS" \
    --header='Content-Type: application/json' --post-data="$2" "$1" 2>/dev/null
}

# evicted ID: whether PD's evict-leader scheduler already covers store ID.
# GET .../evict-leader-scheduler/list answers {"store-id-ranges":{"<id>":
# [ranges]},"batch":n} (FACTS §4); its answer when no such scheduler runs is
# unverified, so any failure counts as "not evicted".
evicted() {
  local body flat path
  body="$(http_get "$PD_URL/pd/api/v1/scheduler-config/evict-leader-scheduler/list")" || return 1
  flat="$(json_flat <<<"$body")" || return 1
  while IFS=$'\t' read -r path _; do
    if [[ "$path" == ".store-id-ranges.$1["* || "$path" == ".store-id-ranges.$1."* ]]; then
      return 0
    fi
  done <<<"$flat"
  return 1
}

if ! stores="$(http_get "$PD_URL/pd/api/v1/stores")"; then
  log "PD at $PD_URL did not answer GET /pd/api/v1/stores; stopping without evicting leaders"
  exit 0
fi
if ! id="$(store_id_of "$stores" "$ADVERTISE_ADDR")"; then
  log "PD lists no single store with address $ADVERTISE_ADDR; stopping without evicting leaders"
  exit 0
fi
log "store $id has address $ADVERTISE_ADDR"

if [[ ! -e "$marker" ]] && evicted "$id"; then
  # Without a marker of ours, an eviction of this store was set by a person:
  # keep it as it is and do not take it over (the next start would remove
  # it). Only wait for the leaders to go.
  log "store $id is already evicted by a scheduler that tidb-gitops did not add; leaving it as it is"
else
  # The marker comes before the scheduler, so that a scheduler added by this
  # hook is always undone by the next start, even if the hook is cut short
  # (a marker left by an unfinished earlier stop is simply renewed). The second
  # line tells this stop apart from earlier ones: tikv-start.sh removes the
  # marker only if it still holds what it read at its start. Written
  # atomically and synced, so neither a crash nor a node failure leaves a
  # scheduler without its marker. Without the marker no scheduler is added.
  nonce="${EPOCHREALTIME:-$SECONDS}.$$.$RANDOM"
  if ! { printf '%s\n%s\n' "$id" "$nonce" >"$marker.tmp" &&
    sync -- "$marker.tmp" && mv -f -- "$marker.tmp" "$marker"; } 2>/dev/null; then
    log "could not write $marker; stopping without evicting leaders (nothing would undo it)"
    exit 0
  fi
  log "wrote $marker"

  # unverified: "The scheduler is created." or "...has been applied to the
  # store." (FACTS §4); any 2xx reply counts.
  if ! reply="$(http_post_json "$PD_URL/pd/api/v1/schedulers" "{\"name\":\"evict-leader-scheduler\",\"store_id\":$id}")"; then
    # The request may still have reached PD; the marker stays, so the next
    # start removes the scheduler either way (PD answers 404 if it is absent).
    log "PD did not accept the evict-leader scheduler for store $id; stopping without waiting"
    exit 0
  fi
  log "added evict-leader-scheduler for store $id: ${reply//[[:space:]]/ }"
fi

# Wait until PD reports no leader on the store, bounded by the timeout (the
# pod's terminationGracePeriodSeconds must leave room for it). SECONDS steps
# with the clock's whole seconds, so it may tick just after the start; the + 1
# makes the wait at least the timeout (and under a second more).
deadline=$((SECONDS + EVICT_TIMEOUT_SECONDS + 1))
while :; do
  if body="$(http_get "$PD_URL/pd/api/v1/store/$id")" && flat="$(json_flat <<<"$body")"; then
    # A missing leader_count means 0: Go omits zero values (omitempty).
    count="$(json_value .status.leader_count <<<"$flat")" || count=0
    if [[ "$count" =~ ^[0-9]+$ ]]; then
      if ((count == 0)); then
        log "store $id has no leader left; done"
        exit 0
      fi
      log "store $id still has $count leaders"
    else
      log "PD reported leader_count '$count' for store $id; not a number"
    fi
  else
    log "PD did not answer GET /pd/api/v1/store/$id"
  fi
  if ((SECONDS >= deadline)); then
    log "store $id still has leaders after ${EVICT_TIMEOUT_SECONDS}s; giving up, the pod stops anyway"
    exit 0
  fi
  sleep "$POLL_SECONDS"
done
