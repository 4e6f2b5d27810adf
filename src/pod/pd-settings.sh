#!/bin/bash
# Applies the PD settings that PD keeps in its own storage ([replication],
# [schedule]). After PD's first start it ignores pd.toml for these, so a change
# must reach the running cluster through pd-ctl; no PD restart is needed.
#
# Runs as a Job in the PD image: /bin/bash pd-settings.sh KEY=VALUE...
# The Job is named by a hash of its settings, so it runs once per change:
# GitOps tools do not rerun a completed Job, and a new set of settings gets a
# new Job. Setting a value PD already holds is harmless, so reruns are safe.
#
# The [replication] settings come as one JSON object in REPLICATION_JSON and
# go to PD in one request (POST /pd/api/v1/config/replicate, FACTS §3), so
# PD validates location-labels and isolation-level together: set one at a
# time, a change of both would be refused halfway. Then the arguments: one
# KEY=VALUE per other setting, KEY being the pd-ctl config name without its
# section (leader-schedule-limit=4), applied in the order given.
# Env: PD_URL (e.g. http://prod-pd.tidb-prod.svc:2379), optional
# REPLICATION_JSON, PD_CTL (default /pd-ctl), ATTEMPTS (default 30),
# RETRY_SECONDS (default 10).
# Tools: bash, sleep, wget (in the PD image, FACTS §1; the flags are GNU
# wget's, inferred for the image).
# Exit status: 0 all applied, 1 a setting failed ATTEMPTS times, 2 bad usage
# (nothing was sent to PD).
set -euo pipefail

usage() {
  echo "pd-settings: $*" >&2
  echo "usage: PD_URL=http://<pd>:2379 pd-settings.sh KEY=VALUE..." >&2
  exit 2
}

[[ -n "${PD_URL:-}" ]] || usage "environment variable PD_URL is not set"
PD_CTL="${PD_CTL:-/pd-ctl}"
ATTEMPTS="${ATTEMPTS:-30}"
RETRY_SECONDS="${RETRY_SECONDS:-10}"
if ! [[ "$ATTEMPTS" =~ ^[0-9]+$ ]] || ((10#$ATTEMPTS == 0)); then
  usage "ATTEMPTS must be a positive integer, not '$ATTEMPTS'"
fi
ATTEMPTS=$((10#$ATTEMPTS))
[[ "$RETRY_SECONDS" =~ ^[0-9]+(\.[0-9]+)?$ ]] ||
  usage "RETRY_SECONDS must be a number of seconds, not '$RETRY_SECONDS'"

# Check every argument before the first call, so a typo changes nothing.
# Split on the first '=' only: values may hold '=' or ','.
keys=()
values=()
for arg in "$@"; do
  [[ "$arg" == *=* ]] || usage "argument '$arg' is not KEY=VALUE"
  key="${arg%%=*}"
  [[ -n "$key" ]] || usage "argument '$arg' has an empty key"
  keys+=("$key")
  values+=("${arg#*=}")
done

if [[ -n "${REPLICATION_JSON:-}" ]]; then
  attempt=1
  while :; do
    status=0
    output="$(wget -q -O - --no-proxy -t 1 -T 10 --header='Content-Type: application/json' \
      --post-data="$REPLICATION_JSON" "$PD_URL/pd/api/v1/config/replicate" 2>&1)" || status=$?
    ((status == 0)) && break
    if ((attempt >= ATTEMPTS)); then
      echo "pd-settings: could not set the replication config $REPLICATION_JSON at $PD_URL after $ATTEMPTS attempts; last output (exit status $status): $output" >&2
      exit 1
    fi
    echo "pd-settings: attempt $attempt/$ATTEMPTS to set the replication config failed (exit status $status); retrying in ${RETRY_SECONDS}s" >&2
    sleep "$RETRY_SECONDS"
    attempt=$((attempt + 1))
  done
  echo "pd-settings: set replication $REPLICATION_JSON"
fi

for i in "${!keys[@]}"; do
  key="${keys[i]}"
  value="${values[i]}"
  attempt=1
  while :; do
    # stdin from /dev/null: pd-ctl appends what it reads from a stdin that is
    # not a character device to its arguments (seen in its main.go). Both
    # streams are kept: some pd-ctl versions print through cobra, whose
    # default output is stderr.
    status=0
    output="$("$PD_CTL" -u "$PD_URL" config set "$key" "$value" </dev/null 2>&1)" || status=$?
    # pd-ctl prints "Success!" once PD accepted the value (unverified for the
    # image's pd-ctl version). The copies of its source seen report a failure
    # as "Failed to set config: ..." with exit status 0, so the exit status
    # alone proves nothing: both must hold.
    if ((status == 0)) && [[ "$output" == *Success* ]]; then
      break
    fi
    if ((attempt >= ATTEMPTS)); then
      echo "pd-settings: could not set $key = $value at $PD_URL after $ATTEMPTS attempts; last output (exit status $status): $output" >&2
      exit 1
    fi
    # PD may not be up or may have no leader yet (the Job can start with the
    # cluster); wait and try again.
    echo "pd-settings: attempt $attempt/$ATTEMPTS to set $key failed (exit status $status): $output; retrying in ${RETRY_SECONDS}s" >&2
    sleep "$RETRY_SECONDS"
    attempt=$((attempt + 1))
  done
  echo "pd-settings: set $key = $value"
done

echo "pd-settings: ${#keys[@]} settings applied"
