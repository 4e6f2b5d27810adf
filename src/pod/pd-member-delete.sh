#!/bin/bash
# Member removal Job (PD image): takes one PD member out of the PD cluster by
# name, for a PD instance that is retired or lost. A lost member must go before
# a PD with empty data may join under a new name, and it counts against the
# quorum until it is gone (FACTS §8 item 7).
#
# Steps, repeated until done or DEADLINE_SECONDS have passed:
# 1. GET /pd/api/v1/members: when MEMBER is not listed, it is gone. Done (the
#    first time: nothing to do; after a removal: confirmed).
# 2. GET /pd/api/v1/leader: when MEMBER leads, leadership goes first to a
#    member that GET /pd/api/v1/health reports healthy
#    (POST /pd/api/v1/leader/transfer/{name}), and the script waits, at most
#    TRANSFER_TIMEOUT_SECONDS, until GET /pd/api/v1/leader names another
#    member. Without a healthy member to take over, it does not go on.
# 3. DELETE /pd/api/v1/members/name/{MEMBER}: after 200 (removed) or 404
#    (not a member), GET /pd/api/v1/members must no longer list it. Done.
# Anything else (no reply, an error reply, a reply that is not the JSON
# expected) is logged with PD's message and retried after a pause that
# doubles from RETRY_SECONDS up to RETRY_MAX_SECONDS. PD's embedded etcd
# refuses a removal that would leave too few started members for a quorum
# (PD enables etcd's strict reconfiguration check unless told otherwise;
# inferred from PD's source, not run): that refusal is retried like the rest.
#
# Env: PD_URL (PD's client Service, e.g. http://prod-pd.tidb-prod.svc:2379),
# MEMBER (the member's name, e.g. pd-1); optional DEADLINE_SECONDS (default
# 600), TRANSFER_TIMEOUT_SECONDS (default 30), POLL_SECONDS (default 1),
# RETRY_SECONDS (default 5), RETRY_MAX_SECONDS (default 60),
# HTTP_TIMEOUT_SECONDS (default 5).
# Exit: 0 the member is gone, 1 it is still listed at the deadline, 2 bad
# environment. Every step is logged on stderr.
# Tools: bash, wget, jq, sleep.
# - wget and jq are in the PD image (verified). The flags used (-S, -t, -T,
#   --no-proxy, --method, --content-on-error) are GNU wget's: the image's wget
#   is the Rocky Linux package (inferred, not busybox's applet).
# - jq reads PD's JSON replies, so their layout does not matter.
# - sleep is coreutils.
# No temporary files and no here-strings (bash may write those to a temp
# file): the Job's root filesystem is read-only.
set -euo pipefail

log() {
  echo "pd-member-delete: $*" >&2
}

bad_env() {
  log "$*"
  exit 2
}

for v in PD_URL MEMBER; do
  [[ -n "${!v:-}" ]] || bad_env "environment variable $v is not set"
done
# The name goes into a URL path as it is.
[[ "$MEMBER" =~ ^[A-Za-z0-9][-A-Za-z0-9_.]*$ ]] || bad_env "MEMBER='$MEMBER' is not a PD member name (letters, digits, '-', '_', '.')"
DEADLINE_SECONDS="${DEADLINE_SECONDS:-600}"
TRANSFER_TIMEOUT_SECONDS="${TRANSFER_TIMEOUT_SECONDS:-30}"
POLL_SECONDS="${POLL_SECONDS:-1}"
RETRY_SECONDS="${RETRY_SECONDS:-5}"
RETRY_MAX_SECONDS="${RETRY_MAX_SECONDS:-60}"
HTTP_TIMEOUT_SECONDS="${HTTP_TIMEOUT_SECONDS:-5}"
# Whole seconds: deadlines are counted with bash's SECONDS.
for v in DEADLINE_SECONDS TRANSFER_TIMEOUT_SECONDS; do
  [[ "${!v}" =~ ^[0-9]+$ ]] || bad_env "$v='${!v}' is not a whole number of seconds"
done
# Fractions allowed: sleep and wget -T take them.
for v in POLL_SECONDS RETRY_SECONDS RETRY_MAX_SECONDS HTTP_TIMEOUT_SECONDS; do
  [[ "${!v}" =~ ^[0-9]+([.][0-9]+)?$ ]] || bad_env "$v='${!v}' is not a number of seconds"
done
PD_URL="${PD_URL%/}"

# millis, http_call and request come from pd-http.sh, next to this script.
# shellcheck source-path=SCRIPTDIR source=pd-http.sh
source "${BASH_SOURCE[0]%/*}/pd-http.sh"

# body_jq ARGS...: jq ARGS on the last reply's body, its complaints dropped.
# A pipe, not a here-string: bash writes a long here-string to a temp file.
body_jq() {
  printf '%s\n' "$body" | jq "$@" 2>/dev/null
}

# brief TEXT: PD's reply on one line for a message: a JSON string is shown
# as its text, blanks shrink to one space, and the whole is cut at 300
# characters.
brief() {
  local text
  text="$(printf '%s\n' "${1:0:4000}" | jq -er 'strings' 2>/dev/null)" || text="${1:0:4000}"
  text="${text//[[:space:]]/ }"
  while [[ "$text" == *"  "* ]]; do text="${text//  / }"; done
  text="${text# }"
  text="${text% }"
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

# listed: after GET /pd/api/v1/members, whether MEMBER is in .members; fails
# with reason set when the reply is no member list.
listed() {
  local found
  # shellcheck disable=SC2016 # $m is jq's variable
  if [[ "$code" != 200 ]] ||
    ! found="$(body_jq -r --arg m "$MEMBER" \
      'if (.members | type) == "array" then any(.members[]; .name == $m) else error("no member list") end')"; then
    reason="GET /pd/api/v1/members: $(answer)"
    return 2
  fi
  [[ "$found" == true ]]
}

# current_leader: after GET /pd/api/v1/leader, prints the leader's name.
current_leader() {
  [[ "$code" == 200 ]] || return 1
  body_jq -er '.name | strings | select(. != "")'
}

# healthy_other: sets target to the name of the first member other than
# MEMBER that GET /pd/api/v1/health reports healthy; fails with reason set
# when there is none. (Not in a command substitution: reason must survive.)
healthy_other() {
  local name
  request GET /pd/api/v1/health
  if [[ "$code" != 200 ]]; then
    reason="GET /pd/api/v1/health: $(answer)"
    return 1
  fi
  # shellcheck disable=SC2016 # $me is jq's variable
  if ! name="$(body_jq -r --arg me "$MEMBER" \
    'first(.[] | select(.health == true and .name != $me) | .name | strings) // empty')"; then
    reason="GET /pd/api/v1/health: not a health list: $(brief "$body")"
    return 1
  fi
  if [[ -z "$name" ]]; then
    reason="$MEMBER leads and no other member is reported healthy (GET /pd/api/v1/health), so no one can take over"
    return 1
  fi
  target="$name"
}

# move_leadership: MEMBER leads; hands leadership to a healthy member and
# waits until another member leads. Fails with reason set.
move_leadership() {
  local target now stop_at
  healthy_other || return 1
  request POST "/pd/api/v1/leader/transfer/$target"
  if [[ "$code" != 200 ]]; then
    reason="POST /pd/api/v1/leader/transfer/$target: $(answer)"
    return 1
  fi
  log "$MEMBER leads; asked PD to transfer leadership to $target"
  # + 1: SECONDS may tick just after the start.
  stop_at=$((SECONDS + TRANSFER_TIMEOUT_SECONDS + 1))
  while :; do
    request GET /pd/api/v1/leader
    if now="$(current_leader)"; then
      if [[ "$now" != "$MEMBER" ]]; then
        log "$now leads now"
        return 0
      fi
      reason="$MEMBER still leads ${TRANSFER_TIMEOUT_SECONDS}s after the transfer to $target"
    else
      reason="no leader known ${TRANSFER_TIMEOUT_SECONDS}s after the transfer of leadership from $MEMBER to $target (GET /pd/api/v1/leader: $(answer))"
    fi
    if ((SECONDS >= stop_at)); then return 1; fi
    sleep "$POLL_SECONDS"
  done
}

# check_members: GET /pd/api/v1/members. Returns 0 when MEMBER is listed, 1
# when it is not (logged: gone), 2 with reason set when there is no member
# list.
check_members() {
  local status=0
  request GET /pd/api/v1/members
  listed || status=$?
  if ((status == 1)); then
    if [[ -n "$removed" ]]; then
      log "$MEMBER is no longer listed by GET /pd/api/v1/members; done"
    else
      log "$MEMBER is not a member of the PD cluster at $PD_URL (GET /pd/api/v1/members); nothing to do"
    fi
  fi
  return "$status"
}

# attempt: one pass. Returns 0 when MEMBER is gone; otherwise sets reason and
# returns 1.
attempt() {
  local leader status=0
  check_members || status=$?
  case "$status" in
    1) return 0 ;;
    2) return 1 ;;
  esac

  request GET /pd/api/v1/leader
  if ! leader="$(current_leader)"; then
    reason="no PD leader known (GET /pd/api/v1/leader: $(answer))"
    return 1
  fi
  if [[ "$leader" == "$MEMBER" ]]; then
    move_leadership || return 1
  fi

  request DELETE "/pd/api/v1/members/name/$MEMBER"
  case "$code" in
    200) log "PD removed $MEMBER: $(brief "$body")" ;;
    404) log "PD does not know $MEMBER as a member: $(brief "$body")" ;;
    *)
      reason="DELETE /pd/api/v1/members/name/$MEMBER: $(answer)"
      return 1
      ;;
  esac
  removed=yes

  # Confirmed only once the member list no longer holds it.
  check_members || status=$?
  case "$status" in
    0) reason="GET /pd/api/v1/members still lists $MEMBER after its removal" ;;
    1) return 0 ;;
  esac
  return 1
}

# bash runs as PID 1 in the Job's container, where a signal without a handler
# is ignored.
trap 'log "stopped by a signal; $MEMBER may still be a member"; exit 143' TERM INT

log "removing member $MEMBER from the PD cluster at $PD_URL"
# + 1: SECONDS may tick just after the start.
deadline=$((SECONDS + DEADLINE_SECONDS + 1))
pause_ms="$(millis "$RETRY_SECONDS")"
max_ms="$(millis "$RETRY_MAX_SECONDS")"
removed=""
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
