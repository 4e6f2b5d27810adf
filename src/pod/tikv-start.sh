#!/bin/bash
# Entry script of every TiKV pod. Ends with `exec` so tikv-server is PID 1 and
# receives the pod's signals.
#
# If the last stop evicted this store's leaders (tikv-prestop.sh left its
# marker), a background loop removes the evict-leader scheduler once PD sees
# the store Up again, then removes the marker. If the pod is stopped again
# before the loop is done, the marker stays and the next start resumes it.
#
# Env: PD_URL (e.g. http://prod-pd.tidb-prod.svc:2379), ADVERTISE_ADDR (the
# store address as TiKV registers it), DATA_DIR, optional TIKV_SERVER (default
# /tikv-server), RETRY_SECONDS (default 10), HTTP_TIMEOUT_SECONDS (default 5).
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
HTTP_TIMEOUT_SECONDS="${HTTP_TIMEOUT_SECONDS:-5}"
# Fractions allowed: sleep and wget -T take them.
for v in RETRY_SECONDS HTTP_TIMEOUT_SECONDS; do
  [[ "${!v}" =~ ^[0-9]+([.][0-9]+)?$ ]] || die "$v='${!v}' is not a number of seconds"
done
PD_URL="${PD_URL%/}"
marker="$DATA_DIR/.tidb-gitops-evicting"

# >>> JSON parser: keep identical in tikv-prestop.sh and tikv-start.sh >>>
# json_flat prints every scalar of the JSON text on stdin as one line
# "PATH<TAB>VALUE", PATH like .stores[0].store.id and VALUE the raw JSON token
# (strings keep their quotes and escapes; JSON strings hold no raw tab or
# newline). grep -o splits the text into tokens (strings, brackets, commas and
# bare numbers/true/false/null; colons are dropped, as keys are known by
# position), so layout does not matter: PD indents its replies (inferred from
# its use of render's IndentJSON; exact layout unverified), and compact JSON
# parses the same. Lenient: a stray character is skipped, not reported.
json_flat() {
  local tok top path n
  local -a kind=() base=() idx=() key=() want=()
  while IFS= read -r tok; do
    n=$((${#kind[@]} - 1))
    top=""
    if ((n >= 0)); then top="${kind[n]}"; fi
    case "$tok" in
      ,)
        if [[ "$top" == "[" ]]; then idx[n]=$((idx[n] + 1)); else want[n]=1; fi
        continue
        ;;
      "}" | "]")
        ((n >= 0)) || return 1
        unset "kind[n]" "base[n]" "idx[n]" "key[n]" "want[n]"
        continue
        ;;
    esac
    # An object expecting a key: this string is the key.
    if [[ "$top" == "{" && "${want[n]}" == 1 ]]; then
      tok="${tok#\"}"
      key[n]="${tok%\"}"
      want[n]=0
      continue
    fi
    case "$top" in
      "{") path="${base[n]}.${key[n]}" ;;
      "[") path="${base[n]}[${idx[n]}]" ;;
      *) path="" ;;
    esac
    case "$tok" in
      "{" | "[")
        kind+=("$tok")
        base+=("$path")
        idx+=(0)
        key+=("")
        want+=(1)
        ;;
      *) printf '%s\t%s\n' "$path" "$tok" ;;
    esac
  done < <(grep -oE '"([^"\\]|\\.)*"|[][{},]|[^][{}:,"[:space:]]+')
}

# json_value PATH: prints the value at PATH from json_flat's lines on stdin;
# returns 1 when there is none.
json_value() {
  local path value
  while IFS=$'\t' read -r path value; do
    if [[ "$path" == "$1" ]]; then
      printf '%s\n' "$value"
      return 0
    fi
  done
  return 1
}

# store_id_of JSON: prints the id of the one store in PD's store list
# (GET /pd/api/v1/stores) whose store.address is ADVERTISE_ADDR. Returns 1 when
# there is none, more than one, or the text is not such a list.
store_id_of() {
  local flat path value i
  local -A ids=() addresses=()
  local -a found=()
  local re='^[.]stores[[]([0-9]+)[]][.]store[.](id|address)$'
  flat="$(json_flat <<<"$1")" || return 1
  while IFS=$'\t' read -r path value; do
    [[ "$path" =~ $re ]] || continue
    if [[ "${BASH_REMATCH[2]}" == id ]]; then
      ids[${BASH_REMATCH[1]}]="$value"
    else
      addresses[${BASH_REMATCH[1]}]="$value"
    fi
  done <<<"$flat"
  for i in "${!addresses[@]}"; do
    if [[ "${addresses[$i]}" == "\"$ADVERTISE_ADDR\"" ]]; then
      found+=("${ids[$i]:-}")
    fi
  done
  if ((${#found[@]} != 1)) || ! [[ "${found[0]}" =~ ^[0-9]+$ ]]; then
    return 1
  fi
  printf '%s\n' "${found[0]}"
}
# <<< JSON parser <<<

# One try each; no proxy, PD is in the cluster. Fails on anything but a 2xx
# reply.
http_get() {
  wget -q -O - --no-proxy -t 1 -T "$HTTP_TIMEOUT_SECONDS" "$1" 2>/dev/null
}

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
    if ! id="$(store_id_of "$body")"; then
      log "PD lists no single store with address $ADVERTISE_ADDR; retrying in ${RETRY_SECONDS}s"
      return 1
    fi
  fi

  # Up means TiKV registered again and heartbeats. Right after a quick restart
  # PD may still show the old process's Up for a few seconds (unverified
  # threshold); removing the scheduler that early is harmless: PD's leader
  # transfers to a store that does not serve yet fail and are retried.
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
