#!/bin/bash
# Entry script of every TiKV pod. Ends with `exec` so tikv-server is PID 1 and
# receives the pod's signals.
#
# If the last stop evicted this store's leaders (tikv-prestop.sh left its
# marker), a background loop removes the evict-leader scheduler once this
# TiKV's status server answers and PD sees the store Up again, then removes
# the marker. If the pod is stopped again
# before the loop is done, the marker stays and the next start resumes it.
#
# Env: PD_URL (e.g. http://prod-pd.tidb-prod.svc:2379), ADVERTISE_ADDR (the
# store address as TiKV registers it), DATA_DIR, optional TIKV_SERVER (default
# /tikv-server), STATUS_URL (default http://127.0.0.1:20180/status, this
# TiKV's status server), RETRY_SECONDS (default 10), HTTP_TIMEOUT_SECONDS
# (default 5).
# Arguments: tikv-server's, passed on unchanged.
# Tools: bash, wget, grep, sleep, mv, rm.
# - wget is in the TiKV image (verified; the operator needs it). The flags used
#   (-t, -T, --no-proxy, -S, --method=DELETE) are GNU wget's: the image's wget
#   is the Rocky Linux package (inferred, not busybox's applet).
# - grep splits PD's JSON into tokens: the TiKV image has no jq. grep is
#   inferred: it comes with the Rocky Linux base image, not checked in the
#   TiKV image itself.
# - sleep, mv and rm are coreutils.
set -euo pipefail

die() {
  echo "tikv-start: $*" >&2
  exit 1
}

log() {
  echo "tikv-start: $*" >&2
}

for v in PD_URL ADVERTISE_ADDR DATA_DIR; do
  [[ -n "${!v:-}" ]] || die "environment variable $v is not set"
done
TIKV_SERVER="${TIKV_SERVER:-/tikv-server}"
RETRY_SECONDS="${RETRY_SECONDS:-10}"
STATUS_URL="${STATUS_URL:-http://127.0.0.1:20180/status}"
HTTP_TIMEOUT_SECONDS="${HTTP_TIMEOUT_SECONDS:-5}"
# Fractions allowed: sleep and wget -T take them.
for v in RETRY_SECONDS HTTP_TIMEOUT_SECONDS; do
  [[ "${!v}" =~ ^[0-9]+([.][0-9]+)?$ ]] || die "$v='${!v}' is not a number of seconds"
done
PD_URL="${PD_URL%/}"
marker="$DATA_DIR/.tidb-gitops-evicting"

# json_flat, json_value, store_id_of and http_get come from pd-api.sh, next
# to this script.
# shellcheck source-path=SCRIPTDIR source=pd-api.sh
source "${BASH_SOURCE[0]%/*}/pd-api.sh"

# http_delete URL: prints the reply's HTTP status, 000 when there was none.
# wget exits 8 on any 4xx/5xx, so the status comes from the headers that -S
# prints on stderr (the last status line, in case of redirects).
http_delete() {
  local headers line code=000 re='^HTTP/[0-9.]+ ([0-9]{3})'
  headers="$(wget -S -q -O /dev/null --no-proxy -t 1 -T "$HTTP_TIMEOUT_SECONDS" \
    --method=DELETE "$1" 2>&1)" || true
  while read -r line; do
    if [[ "$line" =~ $re ]]; then code="${BASH_REMATCH[1]}"; fi
  done <<<"$headers"
  printf '%s\n' "$code"
}

# undo_eviction TOKEN: one attempt at removing the scheduler named by the
# marker that held TOKEN when the loop started. Returns 0 when there is nothing
# left to do, 1 to try again later.
undo_eviction() {
  local token="$1" now id body flat state code claimed="$marker.undoing"
  if [[ ! -e "$marker" ]]; then
    log "$marker is gone (removed by someone else); leaving the schedulers alone"
    return 0
  fi
  if ! now="$(<"$marker")"; then
    log "cannot read $marker; retrying in ${RETRY_SECONDS}s"
    return 1
  fi
  if [[ "$now" != "$token" ]]; then
    # tikv-prestop.sh wrote a new marker: the pod is stopping again. The marker
    # stays, so the next start removes that stop's scheduler.
    log "$marker was rewritten: the pod is stopping again; the next start undoes the eviction"
    return 0
  fi

  # The marker names the store; an old or damaged one is looked up by address.
  id="${token%%$'\n'*}"
  if ! [[ "$id" =~ ^[0-9]+$ ]]; then
    if ! body="$(http_get "$PD_URL/pd/api/v1/stores")"; then
      log "PD at $PD_URL did not answer GET /pd/api/v1/stores; retrying in ${RETRY_SECONDS}s"
      return 1
    fi
    if ! id="$(store_id_of "$body" "$ADVERTISE_ADDR")"; then
      log "PD lists no single store with address $ADVERTISE_ADDR; retrying in ${RETRY_SECONDS}s"
      return 1
    fi
  fi

  # First this TiKV's own status server: it answers only once recovery is
  # done, while right after a quick restart PD may still show the old
  # process's Up for a few seconds (unverified threshold). Leaders should
  # come back only to a store that serves.
  if ! http_get "$STATUS_URL" >/dev/null; then
    log "TiKV's status server at $STATUS_URL does not answer yet; retrying in ${RETRY_SECONDS}s"
    return 1
  fi

  # Up means TiKV registered again and heartbeats.
  if ! body="$(http_get "$PD_URL/pd/api/v1/store/$id")" || ! flat="$(json_flat <<<"$body")"; then
    log "PD did not answer GET /pd/api/v1/store/$id; retrying in ${RETRY_SECONDS}s"
    return 1
  fi
  state="$(json_value .store.state_name <<<"$flat")" || state="(no state_name)"
  if [[ "$state" != '"Up"' ]]; then
    log "store $id is $state, not Up yet; retrying in ${RETRY_SECONDS}s"
    return 1
  fi

  code="$(http_delete "$PD_URL/pd/api/v1/schedulers/evict-leader-scheduler-$id")"
  case "$code" in
    200) log "removed evict-leader-scheduler-$id" ;;
    404) log "evict-leader-scheduler-$id was already gone" ;;
    *)
      log "PD answered $code to DELETE /pd/api/v1/schedulers/evict-leader-scheduler-$id; retrying in ${RETRY_SECONDS}s"
      return 1
      ;;
  esac

  # Remove the marker only if no new stop wrote it meanwhile: take it aside
  # (atomic rename), then check what it holds. A new stop's marker goes back,
  # as its scheduler may have been added after the DELETE above.
  if ! mv -f -- "$marker" "$claimed" 2>/dev/null; then
    log "$marker is gone (removed by someone else); done"
    return 0
  fi
  if [[ "$(<"$claimed")" == "$token" ]]; then
    rm -f -- "$claimed"
    log "removed $marker; done"
  else
    mv -f -- "$claimed" "$marker"
    log "$marker was rewritten: the pod is stopping again; kept it for the next start"
  fi
  return 0
}

undo_eviction_loop() {
  local token
  if ! token="$(<"$marker")"; then
    log "cannot read $marker; leaving the evict-leader scheduler to a person"
    return 0
  fi
  # Never fails, never signals the server: it only talks to PD, and it ends
  # with the container. Until then it retries.
  until undo_eviction "$token"; do
    sleep "$RETRY_SECONDS"
  done
}

if [[ -e "$marker" ]]; then
  log "found $marker: the last stop evicted this store's leaders; undoing that once the store is Up"
  # In the background, so the server starts now. Its stdin is /dev/null and its
  # output goes to the container's stderr, so its log lines stay visible.
  # After the exec below the server is its parent and, not expecting children,
  # leaves one zombie once the loop is done (harmless).
  undo_eviction_loop </dev/null >&2 &
fi

exec "$TIKV_SERVER" "$@"
