#!/bin/bash
# Gate after a TiKV wave: a Job (TiKV image) that the GitOps tool waits for
# before it starts the next wave, so the next failure domain restarts only
# once this one is really back. Loops until, in STABLE_POLLS polls in a row,
# (1) every store in STORES is Up in PD and (2) PD reports no Region with a
# down peer and none with a pending peer. It has no deadline of its own: the
# Job's activeDeadlineSeconds and the GitOps tool's timeout bound it.
#
# Missing peers (regions/check/miss-peer) are deliberately not checked: while
# a new cluster is created domain by domain, Regions lack replicas until
# enough domains exist, and that must not block creation. Pending peers on
# newly added replicas clear once they catch up, so waiting for them ends.
#
# Env: PD_URL (e.g. http://prod-pd.tidb-prod.svc:2379), STORES (the wave's
# store addresses as TiKV registers them, comma-separated), optional
# POLL_SECONDS (default 10), HTTP_TIMEOUT_SECONDS (default 5), STABLE_POLLS
# (default 3).
# Tools: bash, wget, grep, sleep.
# - wget is in the TiKV image (verified; the operator needs it). The flags used
#   (-t, -T, --no-proxy) are GNU wget's: the image's wget is the Rocky Linux
#   package (inferred, not busybox's applet).
# - grep splits PD's JSON into tokens: the TiKV image has no jq. grep is
#   inferred: it comes with the Rocky Linux base image, not checked in the
#   TiKV image itself.
# - sleep is coreutils.
# No here-documents or here-strings, here or in pd-api.sh (which this script
# sources; tests/pod_gate.rs checks both): bash writes those to a temp file once
# they exceed a pipe buffer (64 KiB, a store list of some 40 stores), and the
# Job's root filesystem is read-only: only /tmp (an emptyDir) is writable, and
# the script should not depend on it.
#
# PD endpoints, all GET:
# - /pd/api/v1/stores: {"count":n,"stores":[{"store":{"address":..,
#   "state_name":"Up",..},"status":{..}}]} (FACTS §4); 500 before the first
#   TiKV registers.
# - /pd/api/v1/regions/check/down-peer and .../pending-peer: unverified (not
#   in FACTS): assumed to answer {"count":n,"regions":[..]}, the number of
#   Regions with such a peer and the Regions themselves.
# A non-2xx reply, no reply or a reply that is not such JSON counts as "not
# yet"; every poll logs one line on stderr saying what is still missing.
set -euo pipefail

die() {
  echo "tikv-gate: $*" >&2
  exit 1
}

log() {
  echo "tikv-gate: $*" >&2
}

for v in PD_URL STORES; do
  [[ -n "${!v:-}" ]] || die "environment variable $v is not set"
done
POLL_SECONDS="${POLL_SECONDS:-10}"
HTTP_TIMEOUT_SECONDS="${HTTP_TIMEOUT_SECONDS:-5}"
STABLE_POLLS="${STABLE_POLLS:-3}"
# Fractions allowed: sleep and wget -T take them.
for v in POLL_SECONDS HTTP_TIMEOUT_SECONDS; do
  [[ "${!v}" =~ ^[0-9]+([.][0-9]+)?$ ]] || die "$v='${!v}' is not a number of seconds"
done
[[ "$STABLE_POLLS" =~ ^[1-9][0-9]*$ ]] || die "STABLE_POLLS='$STABLE_POLLS' is not a whole number of at least 1"
PD_URL="${PD_URL%/}"

# The wave's store addresses, in the order given, blanks dropped.
wanted=()
rest="$STORES,"
while [[ -n "$rest" ]]; do
  item="${rest%%,*}"
  rest="${rest#*,}"
  item="${item//[[:space:]]/}"
  if [[ -n "$item" ]]; then wanted+=("$item"); fi
done
((${#wanted[@]} > 0)) || die "STORES='$STORES' names no store address"

# json_tokens, json_flat and http_get come from pd-api.sh, next to this
# script.
# shellcheck source-path=SCRIPTDIR source=pd-api.sh
source "${BASH_SOURCE[0]%/*}/pd-api.sh"

# top_count: prints the top-level "count" of the JSON object on stdin, as in
# PD's {"count":n,"regions":[..]}; fails when there is none, it is not a whole
# number, or the text is not one whole object. A count above 0 is printed at
# once, without reading on: the Region lists can be long (a restarted domain
# leaves a pending peer in many Regions), Go writes the count first (struct
# field order), and the answer is "not yet" however the rest reads. wget and
# grep then end on their own when they can no longer write. A count of 0 is
# trusted only once the whole object has been read (its list is empty).
# Tokens from json_tokens.
top_count() {
  local tok open="" name="" want_name=1 count=""
  while IFS= read -r tok; do
    case "$tok" in
      "{" | "[")
        if [[ -z "$open" && "$tok" != "{" ]]; then return 1; fi
        open+="$tok"
        continue
        ;;
      "}" | "]")
        # A closer must match the last opener.
        [[ "${open: -1}$tok" == "{}" || "${open: -1}$tok" == "[]" ]] || return 1
        open="${open%?}"
        if [[ -z "$open" ]]; then
          [[ -n "$count" ]] || return 1
          printf '%s\n' "$count"
          return 0
        fi
        continue
        ;;
      ,)
        if [[ "$open" == "{" ]]; then want_name=1; fi
        continue
        ;;
    esac
    # A scalar outside any object: not PD's JSON (e.g. a plain-text reply).
    [[ -n "$open" ]] || return 1
    [[ "$open" == "{" ]] || continue
    if ((want_name)); then
      name="$tok"
      want_name=0
    elif [[ "$name" == '"count"' ]]; then
      [[ "$tok" =~ ^[0-9]+$ ]] || return 1
      if ! [[ "$tok" =~ ^0+$ ]]; then
        printf '%s\n' "$tok"
        return 0
      fi
      count=0
    fi
  done < <(json_tokens 2>/dev/null)
  # The text ended inside the object: a truncated reply.
  return 1
}

# store_problems: reads json_flat's lines of PD's store list and prints, on
# one line, the stores of STORES that are not Up ("ADDRESS (STATE)", STATE
# "not registered" when PD does not list the address); prints nothing when all
# are Up. Fails when the text is not a store list (no top-level count). Stores
# outside STORES do not matter here: they belong to other waves, and once a
# stopped store elsewhere has down peers, the down-peer check sees them.
store_problems() {
  local path value i addr state line=""
  local listed=0
  local -A address=() state_name=() states=()
  local re='^[.]stores[[]([0-9]+)[]][.]store[.](address|state_name)$'
  while IFS=$'\t' read -r path value; do
    if [[ "$path" == .count ]]; then
      listed=1
    elif [[ "$path" =~ $re ]]; then
      value="${value#\"}"
      value="${value%\"}"
      if [[ "${BASH_REMATCH[2]}" == address ]]; then
        address[${BASH_REMATCH[1]}]="$value"
      else
        state_name[${BASH_REMATCH[1]}]="$value"
      fi
    fi
  done
  ((listed)) || return 1
  # PD refuses a second live store with an address in use, so an address is
  # listed once. Should it appear more often, all its states are shown and it
  # counts as Up only if no other state is listed with it.
  for i in "${!address[@]}"; do
    addr="${address[$i]}"
    [[ -n "$addr" ]] || continue
    state="${state_name[$i]:-no state_name}"
    states[$addr]="${states[$addr]:+${states[$addr]}/}$state"
  done
  for addr in "${wanted[@]}"; do
    state="${states[$addr]:-not registered}"
    if [[ "$state" != Up ]]; then line="${line:+$line, }$addr ($state)"; fi
  done
  if [[ -n "$line" ]]; then printf '%s\n' "$line"; fi
}

# bash runs as PID 1 in the Job's container, where a signal without a handler
# is ignored: without this trap, deleting the Job or reaching its deadline
# would wait out the termination grace period. bash runs the trap once the
# current sleep or request is over.
trap 'log "stopped by a signal before the wave was ready"; exit 143' TERM INT

log "waiting until ${#wanted[@]} stores are Up in PD at $PD_URL and no Region has a down or pending peer, in $STABLE_POLLS polls in a row ${POLL_SECONDS}s apart"
clean=0
while :; do
  missing=()
  # pipefail: no reply from wget, or a closer without an opener, is a failure.
  if problems="$(http_get "$PD_URL/pd/api/v1/stores" | json_flat | store_problems)"; then
    if [[ -n "$problems" ]]; then missing+=("not Up: $problems"); fi
  else
    missing+=("no store list from PD (no reply, an error reply, or not JSON)")
  fi
  # Process substitution, not a pipe: top_count stops reading early, and the
  # writers' broken pipe must not count as a failure (an error reply prints
  # nothing, so it fails in top_count).
  for check in down-peer pending-peer; do
    if count="$(top_count < <(http_get "$PD_URL/pd/api/v1/regions/check/$check"))"; then
      if [[ "$count" != 0 ]]; then missing+=("Regions with a ${check/-/ }: $count"); fi
    else
      missing+=("no $check count from PD (no reply, an error reply, or not JSON)")
    fi
  done

  if ((${#missing[@]} > 0)); then
    clean=0
    line="${missing[0]}"
    for item in "${missing[@]:1}"; do line="$line; $item"; done
    log "not yet: $line"
  else
    clean=$((clean + 1))
    if ((clean >= STABLE_POLLS)); then
      log "all ${#wanted[@]} stores Up, no down or pending peer ($clean of $STABLE_POLLS clean polls in a row); done"
      exit 0
    fi
    log "all ${#wanted[@]} stores Up, no down or pending peer ($clean of $STABLE_POLLS clean polls in a row)"
  fi
  sleep "$POLL_SECONDS"
done
