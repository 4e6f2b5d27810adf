#!/bin/bash
# Entry script of every PD pod. Ends with `exec` so pd-server is PID 1 and
# receives the pod's signals.
#
# Env: PD_NAME, DATA_DIR, ADVERTISE_HOST, PD_MODE (bootstrap|join),
# INITIAL_CLUSTER (bootstrap), JOIN_URLS (join; comma-separated client URLs),
# PROBE_URLS (bootstrap; comma-separated base URLs where an existing PD could
# answer), CONFIG, optional PD_SERVER (default /pd-server), DNS_WAIT_SECONDS
# (default 60), PROBE_TIMEOUT_SECONDS (default 3).
# Tools: bash, getent, wget, sleep. wget is in the PD image (verified); the
# flags used (-t, -T, --no-proxy) are GNU wget's, the Rocky Linux package, not
# busybox's applet. getent is inferred: it ships with glibc-common, which glibc
# requires on Rocky Linux; the image is only known to carry nslookup/dig.
set -euo pipefail

die() {
  echo "pd-start: $*" >&2
  exit 1
}

for v in PD_NAME DATA_DIR ADVERTISE_HOST PD_MODE CONFIG; do
  [[ -n "${!v:-}" ]] || die "environment variable $v is not set"
done
PD_SERVER="${PD_SERVER:-/pd-server}"
DNS_WAIT_SECONDS="${DNS_WAIT_SECONDS:-60}"
PROBE_TIMEOUT_SECONDS="${PROBE_TIMEOUT_SECONDS:-3}"

# PD advertises this name to its peers and clients, so wait until it resolves
# (that PD fails to start otherwise is unverified). The peer Service publishes
# not-ready addresses, so the name appears shortly after the pod is created.
waited=0
until getent hosts "$ADVERTISE_HOST" >/dev/null; do
  if ((waited >= DNS_WAIT_SECONDS)); then
    die "$ADVERTISE_HOST did not resolve within ${DNS_WAIT_SECONDS}s; check that the headless peer Service exists and sets publishNotReadyAddresses: true"
  fi
  sleep 1
  waited=$((waited + 1))
done

args=(
  "--name=$PD_NAME"
  "--data-dir=$DATA_DIR"
  --peer-urls=http://0.0.0.0:2380
  "--advertise-peer-urls=http://$ADVERTISE_HOST:2380"
  --client-urls=http://0.0.0.0:2379
  "--advertise-client-urls=http://$ADVERTISE_HOST:2379"
  "--config=$CONFIG"
)
case "$PD_MODE" in
  bootstrap)
    [[ -n "${INITIAL_CLUSTER:-}" ]] || die "INITIAL_CLUSTER is not set (PD_MODE=bootstrap)"
    args+=("--initial-cluster=$INITIAL_CLUSTER")
    ;;
  join)
    [[ -n "${JOIN_URLS:-}" ]] || die "JOIN_URLS is not set (PD_MODE=join)"
    args+=("--join=$JOIN_URLS")
    ;;
  *) die "PD_MODE must be bootstrap or join, not '$PD_MODE'" ;;
esac

# The arguments are fixed for life: once the data directory holds a member
# (or a join PD resumes itself), PD ignores them. Start at once.
shopt -s nullglob dotglob
member=("$DATA_DIR"/member/*)
if ((${#member[@]} > 0)) || [[ -e "$DATA_DIR/join" ]]; then
  exec "$PD_SERVER" "${args[@]}"
fi

# members URL: prints the member list of the PD at URL. Fails on anything but a
# 2xx reply: connection errors, timeouts, DNS failures and HTTP errors count as
# "no answer". One try only; no proxy, the URLs are in-cluster.
members() {
  wget -q -O - --no-proxy -t 1 -T "$PROBE_TIMEOUT_SECONDS" "$1/pd/api/v1/members" 2>/dev/null
}

if [[ "$PD_MODE" == bootstrap ]]; then
  # Bootstrap guard: an empty data directory must never start a second PD
  # cluster next to a live one (TiKV would then fail with "cluster ID mismatch").
  [[ -n "${PROBE_URLS:-}" ]] || die "PROBE_URLS is not set (PD_MODE=bootstrap)"
  IFS=, read -r -a urls <<<"$PROBE_URLS"
  for url in "${urls[@]}"; do
    url="${url//[[:space:]]/}"
    [[ -n "$url" ]] || continue
    if members "$url" >/dev/null; then
      die "a PD cluster already answers at $url, but this member ($PD_NAME) has an empty data directory ($DATA_DIR) and is set to bootstrap a new cluster; refusing, as that would create a second PD cluster. This member's directory lost its data: remove the directory from inventory.toml (or set its node to state = \"down\"), so the compiler marks this member failed and places a replacement that joins the existing cluster."
    fi
  done
else
  # PD refuses to join under a name that is still a member ("missing data or
  # join a duplicated pd"); say how to fix it instead of crash-looping. The
  # first endpoint that answers decides.
  IFS=, read -r -a urls <<<"$JOIN_URLS"
  for url in "${urls[@]}"; do
    url="${url//[[:space:]]/}"
    [[ -n "$url" ]] || continue
    body="$(members "$url")" || continue
    # Compare without whitespace: PD may indent its JSON.
    body="${body//[[:space:]]/}"
    if [[ "$body" == *"\"name\":\"$PD_NAME\""* ]]; then
      die "the PD cluster at $url still lists a member named $PD_NAME, but its data directory ($DATA_DIR) is empty, so it cannot rejoin under that name. Delete the old member first (DELETE $url/pd/api/v1/members/name/$PD_NAME, or pd-ctl member delete name $PD_NAME), then restart this pod."
    fi
    break
  done
fi

exec "$PD_SERVER" "${args[@]}"
