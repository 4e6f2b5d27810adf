# shellcheck shell=bash
# Library of the day-2 Jobs' scripts (store-delete.sh, pd-member-delete.sh),
# which source it from their own folder (the day-2 scripts ConfigMap). It
# only defines functions: no options, no actions. Callers set
# `set -euo pipefail`, PD_URL and HTTP_TIMEOUT_SECONDS first.
#
# Provides:
# - millis SECONDS: whole milliseconds.
# - http_call METHOD URL: the body, then the HTTP status on the last line.
# - request METHOD PATH: one call to PD; sets code and body.
# Tools: bash and wget, with GNU wget's flags (-S, --content-on-error,
# --method, --no-proxy, -t, -T); the scripts that source it say which image
# runs them and what is verified about its wget.

# millis SECONDS: the whole milliseconds of a number of seconds like 2.5.
millis() {
  local whole="${1%%.*}" frac=""
  if [[ "$1" == *.* ]]; then frac="${1#*.}"; fi
  frac="${frac}000"
  printf '%s\n' "$((10#$whole * 1000 + 10#${frac:0:3}))"
}

# http_call METHOD URL: one request, no proxy. Prints the reply's body, then a
# line with the HTTP status (000 when there was no reply). The body goes out
# on fd 3 while the headers that -S prints on stderr are read for the status,
# which is printed once wget is gone, so it comes last. --content-on-error
# keeps the body of a 4xx/5xx reply: PD says there why it refuses.
http_call() {
  {
    wget -S -q -O - --content-on-error --no-proxy -t 1 -T "$HTTP_TIMEOUT_SECONDS" \
      --method="$1" "$2" 2>&1 >&3 3>&- | http_status 3>&-
  } 3>&1
}

# http_status: the last status line among wget's headers on stdin (the last
# one, in case of redirects), after a newline.
http_status() {
  local line code=000 re='^ *HTTP/[0-9.]+ ([0-9]{3})'
  while IFS= read -r line; do
    if [[ "$line" =~ $re ]]; then code="${BASH_REMATCH[1]}"; fi
  done
  printf '\n%s\n' "$code"
}

# request METHOD PATH: one call to PD; sets code (the HTTP status, 000 for no
# reply) and body.
# shellcheck disable=SC2034 # code and body are read by the sourcing script
request() {
  local out
  out="$(http_call "$1" "$PD_URL$2")" || true
  code="${out##*$'\n'}"
  body="${out%$'\n'*}"
}
