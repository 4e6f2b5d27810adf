#!/bin/bash
# Store removal Job (TiKV image): takes the TiKV store of one retired instance
# out of the cluster through PD (DELETE /pd/api/v1/store/{id}), so PD moves its
# Regions to the other stores and, once it holds none, marks it Tombstone.
# It does not wait for Tombstone, which can take hours: the compiler waits for
# that evidence itself (pd-ctl store) before it lets the directory go.
#
# Steps, repeated until done or DEADLINE_SECONDS have passed:
# 1. GET /pd/api/v1/stores?state=0&state=1&state=2 lists the stores in every
#    state (PD lists Up and Offline without a state parameter, and takes the
#    parameter more than once: Up=0, Offline=1, Tombstone=2). Disconnected and
#    Down are Up stores that miss heartbeats.
# 2. The stores whose address is STORE_ADDRESS:
#    - none: PD does not know the address (the store never registered, or its
#      Tombstone record was purged). Done: nothing to remove.
#    - Tombstone only: already removed. Done.
#    - Offline: PD is already moving its Regions away. Done, without asking
#      again (PD refuses a second request that differs in force, and one
#      removal is enough).
#    - Up, Disconnected or Down: DELETE /pd/api/v1/store/{id}, with ?force
#      when FORCE=true (the node is declared destroyed: PD then skips its
#      check that enough Up stores are left). 200 means PD set the store
#      Offline: done. 410 (already Tombstone) and 404 (record gone) are done
#      too.
#    A Tombstone record and a live store can share an address (a store that
#    came back as a new one); the live one is what counts.
# 3. Anything else (no reply, an error reply such as PD's refusal while fewer
#    than max-replicas Up stores would remain, a reply that is not a store
#    list, a state this script does not know) is logged with PD's message and
#    retried after a pause that doubles from RETRY_SECONDS up to
#    RETRY_MAX_SECONDS.
#
# Env: PD_URL (e.g. http://prod-pd.tidb-prod.svc:2379), STORE_ADDRESS (the
# store address as TiKV registers it, e.g.
# prod-tikv-3-0.prod-tikv-peer.tidb-prod.svc:20160), FORCE (true or false),
# INSTANCE (e.g. tikv-3, for messages); optional DEADLINE_SECONDS (default
# 600), RETRY_SECONDS (default 5), RETRY_MAX_SECONDS (default 60),
# HTTP_TIMEOUT_SECONDS (default 5).
# Exit: 0 the store is out or on its way out (or unknown to PD), 1 PD still
# refused or did not answer at the deadline, 2 bad environment. Every step is
# logged on stderr.
# Tools: bash, wget, grep, sleep.
# - wget is in the TiKV image (verified; the operator needs it). The flags used
#   (-S, -t, -T, --no-proxy, --method, --content-on-error) are GNU wget's: the
#   image's wget is the Rocky Linux package (inferred, not busybox's applet).
# - grep splits PD's JSON into tokens (pd-api.sh): the TiKV image has no jq.
#   grep is inferred: it comes with the Rocky Linux base image, not checked in
#   the TiKV image itself.
# - sleep is coreutils.
# No temporary files and no here-documents or here-strings (bash may write
# those to a temp file): the Job's root filesystem is read-only.
set -euo pipefail

log() {
  echo "store-delete: $*" >&2
}

bad_env() {
  log "$*"
  exit 2
}

for v in PD_URL STORE_ADDRESS FORCE INSTANCE; do
  [[ -n "${!v:-}" ]] || bad_env "environment variable $v is not set"
done
case "$FORCE" in
  true) query="?force" ;;
  false) query="" ;;
  *) bad_env "FORCE must be true or false, not '$FORCE'" ;;
esac
DEADLINE_SECONDS="${DEADLINE_SECONDS:-600}"
RETRY_SECONDS="${RETRY_SECONDS:-5}"
RETRY_MAX_SECONDS="${RETRY_MAX_SECONDS:-60}"
HTTP_TIMEOUT_SECONDS="${HTTP_TIMEOUT_SECONDS:-5}"
# Whole seconds: the deadline is counted with bash's SECONDS.
[[ "$DEADLINE_SECONDS" =~ ^[0-9]+$ ]] || bad_env "DEADLINE_SECONDS='$DEADLINE_SECONDS' is not a whole number of seconds"
# Fractions allowed: sleep and wget -T take them.
for v in RETRY_SECONDS RETRY_MAX_SECONDS HTTP_TIMEOUT_SECONDS; do
  [[ "${!v}" =~ ^[0-9]+([.][0-9]+)?$ ]] || bad_env "$v='${!v}' is not a number of seconds"
done
[[ "$STORE_ADDRESS" != *[[:space:]\"\\]* ]] || bad_env "STORE_ADDRESS='$STORE_ADDRESS' holds a blank, a quote or a backslash"
PD_URL="${PD_URL%/}"

# json_flat comes from pd-api.sh, next to this script.
# shellcheck source-path=SCRIPTDIR source=pd-api.sh
source "${BASH_SOURCE[0]%/*}/pd-api.sh"

# millis, http_call and request come from pd-http.sh, next to this script.
# shellcheck source-path=SCRIPTDIR source=pd-http.sh
source "${BASH_SOURCE[0]%/*}/pd-http.sh"

# brief TEXT: PD's reply on one line for a message: a JSON string loses its
# quotes, blanks shrink to one space, and the whole is cut at 300 characters.
brief() {
  local text="${1:0:4000}"
  text="${text//[[:space:]]/ }"
  while [[ "$text" == *"  "* ]]; do text="${text//  / }"; done
  text="${text# }"
  text="${text% }"
  if [[ "$text" == \"*\" ]]; then
    text="${text#\"}"
    text="${text%\"}"
    text="${text//\\\"/\"}"
  fi
  if ((${#text} > 300)); then text="${text:0:300}..."; fi
  printf '%s\n' "${text:-(empty reply)}"
}

# answer: what PD answered, for a message.
answer() {
  if [[ "$code" == 000 ]]; then
    printf 'no reply\n'
  else
    printf 'HTTP %s: %s\n' "$code" "$(brief "$body")"
  fi
}

# attempt: one pass. Returns 0 when done; otherwise sets reason and returns 1.
attempt() {
  local path value i flat listed=0 id state item
  local -A address=() store_id=() state_name=()
  local -a tombstone=() offline=() live=() unknown=()
  local list="/pd/api/v1/stores?state=0&state=1&state=2"
  local re='^[.]stores[[]([0-9]+)[]][.]store[.](id|address|state_name)$'

  request GET "$list"
  if [[ "$code" != 200 ]]; then
    reason="GET $list: $(answer)"
    return 1
  fi
  if ! flat="$(printf '%s\n' "$body" | json_flat)"; then
    reason="GET $list: not a store list: $(brief "$body")"
    return 1
  fi
  while IFS=$'\t' read -r path value; do
    if [[ "$path" == .count ]]; then
      listed=1
    elif [[ "$path" =~ $re ]]; then
      value="${value#\"}"
      value="${value%\"}"
      case "${BASH_REMATCH[2]}" in
        id) store_id[${BASH_REMATCH[1]}]="$value" ;;
        address) address[${BASH_REMATCH[1]}]="$value" ;;
        state_name) state_name[${BASH_REMATCH[1]}]="$value" ;;
      esac
    fi
  done < <(printf '%s\n' "$flat")
  if ((!listed)); then
    reason="GET $list: not a store list: $(brief "$body")"
    return 1
  fi

  for i in "${!address[@]}"; do
    [[ "${address[$i]}" == "$STORE_ADDRESS" ]] || continue
    id="${store_id[$i]:-}"
    state="${state_name[$i]:-}"
    if ! [[ "$id" =~ ^[0-9]+$ ]]; then
      unknown+=("a store without an id")
      continue
    fi
    case "$state" in
      Tombstone) tombstone+=("$id") ;;
      Offline) offline+=("$id") ;;
      Up | Disconnected | Down) live+=("$id:$state") ;;
      *) unknown+=("store $id (state '${state:-none}')") ;;
    esac
  done
  if ((${#unknown[@]} > 0)); then
    reason="PD lists ${unknown[*]} at $STORE_ADDRESS, in no state this script knows"
    return 1
  fi

  if ((${#live[@]} + ${#offline[@]} + ${#tombstone[@]} == 0)); then
    log "PD at $PD_URL knows no store at $STORE_ADDRESS (in any state): $INSTANCE never registered, or its store was removed and its record purged; nothing to do"
    return 0
  fi
  if ((${#live[@]} + ${#offline[@]} == 0)); then
    log "store ${tombstone[*]} at $STORE_ADDRESS ($INSTANCE) is already Tombstone; nothing to do"
    return 0
  fi

  for id in "${offline[@]}"; do
    log "store $id at $STORE_ADDRESS ($INSTANCE) is already Offline: PD is moving its Regions away and marks it Tombstone when it holds none; not asking again"
  done
  for item in "${live[@]}"; do
    id="${item%%:*}"
    state="${item#*:}"
    request DELETE "/pd/api/v1/store/$id$query"
    case "$code" in
      200)
        log "store $id at $STORE_ADDRESS ($INSTANCE) was $state; PD accepted DELETE /pd/api/v1/store/$id$query ($(brief "$body")): it is Offline now and turns Tombstone once its Regions have moved (not waited for here)"
        ;;
      410)
        log "store $id at $STORE_ADDRESS ($INSTANCE) was $state and is now already removed (Tombstone): $(brief "$body")"
        ;;
      404)
        log "store $id at $STORE_ADDRESS ($INSTANCE) is gone from PD: $(brief "$body")"
        ;;
      *)
        reason="store $id at $STORE_ADDRESS ($INSTANCE) is $state; DELETE /pd/api/v1/store/$id$query: $(answer)"
        return 1
        ;;
    esac
  done
  return 0
}

# bash runs as PID 1 in the Job's container, where a signal without a handler
# is ignored.
trap 'log "stopped by a signal; the store may not be removed yet"; exit 143' TERM INT

if [[ -n "$query" ]]; then
  log "removing the store of $INSTANCE ($STORE_ADDRESS) through PD at $PD_URL, forced: its node is declared destroyed"
else
  log "removing the store of $INSTANCE ($STORE_ADDRESS) through PD at $PD_URL"
fi
# SECONDS steps with the clock's whole seconds, so it may tick just after the
# start; the + 1 makes the deadline at least DEADLINE_SECONDS away.
deadline=$((SECONDS + DEADLINE_SECONDS + 1))
pause_ms="$(millis "$RETRY_SECONDS")"
max_ms="$(millis "$RETRY_MAX_SECONDS")"
reason=""
until attempt; do
  left_ms=$(((deadline - SECONDS) * 1000))
  if ((left_ms <= 0)); then
    log "gave up after ${DEADLINE_SECONDS}s: $reason"
    exit 1
  fi
  ms=$((pause_ms < left_ms ? pause_ms : left_ms))
  printf -v wait '%d.%03d' $((ms / 1000)) $((ms % 1000))
  log "not yet: $reason; retrying in ${wait}s"
  sleep "$wait"
  pause_ms=$((pause_ms * 2 < max_ms ? pause_ms * 2 : max_ms))
done
