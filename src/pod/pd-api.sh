# shellcheck shell=bash
# Library of the TiKV scripts (tikv-start.sh, tikv-prestop.sh, tikv-gate.sh),
# which source it from their own folder (the scripts ConfigMap, mounted at
# /etc/tidb-gitops/). It only defines functions: no options, no variables, no
# actions. The scripts set `set -euo pipefail` themselves.
#
# Provides:
# - json_tokens: PD's JSON on stdin, one token a line.
# - json_flat: PD's JSON on stdin as "PATH<TAB>VALUE" lines.
# - json_value PATH: the value at PATH in json_flat's lines on stdin.
# - store_id_of JSON ADDRESS: the id of the store with that address in PD's
#   store list.
# - http_get URL: one GET to PD; reads HTTP_TIMEOUT_SECONDS (set by the
#   script).
# Tools: bash, wget, grep (the scripts that source it list them too).
# - wget is in the TiKV image (verified; the operator needs it). The flags used
#   (-t, -T, --no-proxy) are GNU wget's: the image's wget is the Rocky Linux
#   package (inferred, not busybox's applet).
# - grep splits PD's JSON into tokens: the TiKV image has no jq. grep is
#   inferred: it comes with the Rocky Linux base image, not checked in the
#   TiKV image itself.
# No here-documents or here-strings: tikv-gate.sh sources this file, and its
# Job's root filesystem is read-only (see tikv-gate.sh).

# json_tokens prints the tokens of the JSON text on stdin, one a line:
# strings (with their quotes and escapes; JSON strings hold no raw tab or
# newline), brackets, commas and bare numbers/true/false/null. Colons are
# dropped, as keys are known by position; layout does not matter: PD indents
# its replies (inferred from its use of render's IndentJSON; exact layout
# unverified), and compact JSON splits the same. Lenient: a stray character
# is skipped, not reported.
json_tokens() {
  grep -oE '"([^"\\]|\\.)*"|[][{},]|[^][{}:,"[:space:]]+'
}

# json_flat prints every scalar of the JSON text on stdin as one line
# "PATH<TAB>VALUE", PATH like .stores[0].store.id and VALUE the raw JSON token
# (strings keep their quotes and escapes). Fails on a closer without an
# opener.
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
  done < <(json_tokens)
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

# store_id_of JSON ADDRESS: prints the id of the one store in PD's store list
# (GET /pd/api/v1/stores) whose store.address is ADDRESS. Returns 1 when there
# is none, more than one, or the text is not such a list.
store_id_of() {
  local flat path value i
  local -A ids=() addresses=()
  local -a found=()
  local re='^[.]stores[[]([0-9]+)[]][.]store[.](id|address)$'
  flat="$(printf '%s\n' "$1" | json_flat)" || return 1
  while IFS=$'\t' read -r path value; do
    [[ "$path" =~ $re ]] || continue
    if [[ "${BASH_REMATCH[2]}" == id ]]; then
      ids[${BASH_REMATCH[1]}]="$value"
    else
      addresses[${BASH_REMATCH[1]}]="$value"
    fi
  done < <(printf '%s\n' "$flat")
  for i in "${!addresses[@]}"; do
    if [[ "${addresses[$i]}" == "\"$2\"" ]]; then
      found+=("${ids[$i]:-}")
    fi
  done
  if ((${#found[@]} != 1)) || ! [[ "${found[0]}" =~ ^[0-9]+$ ]]; then
    return 1
  fi
  printf '%s\n' "${found[0]}"
}

# http_get URL: one try; no proxy, PD is in the cluster. Prints the reply's
# body; prints nothing and fails on anything but a 2xx reply.
http_get() {
  wget -q -O - --no-proxy -t 1 -T "$HTTP_TIMEOUT_SECONDS" "$1" 2>/dev/null
}
