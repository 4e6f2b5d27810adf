#!/bin/bash
# Removes old snapshot backups from Google Cloud Storage, keeping the newest
# KEEP: the step of the backup CronJob after backup.sh, in the
# google/cloud-sdk image (slim), run as
# /bin/bash /etc/tidb-gitops/backup-prune-gcs.sh.
#
# A run is a folder directly under PREFIX/ whose name is a backup.sh start
# time, as 2026-11-20T020000Z (the pattern below). Nothing else under the
# prefix is looked at or touched: the log backup (log/), the backups made
# before upgrades (before-v8.5.2/), files of anyone else. The names sort in
# time order; all runs but the newest KEEP are removed, each with
# `gcloud storage rm -r gs://BUCKET/PREFIX/<run>/`. The prefix itself is
# never removed.
#
# Safety: the run that backup.sh has just written (its name is in RUN_FILE)
# must be among the runs found, and among the newest KEEP; otherwise the
# listing or the clock is not what this script expects, and it removes
# nothing and fails.
#
# Env:
# - BUCKET: the bucket's name.
# - PREFIX: the folder of the runs in the bucket, without slashes around it
#   (backups/prod); set but empty when the runs sit at the top of the bucket.
# - KEEP: how many runs to keep, a whole number of at least 1.
# - RUN_FILE: the file where backup.sh wrote its run's name.
# Credentials: GOOGLE_APPLICATION_CREDENTIALS, the path of a mounted service
# account key file, activated first with
# `gcloud auth activate-service-account --key-file=FILE` (the path is on the
# command line, the key is not); without it, the pod's identity (the metadata
# server, as GKE Workload Identity provides it).
# gcloud writes its configuration, and the activated key, under
# CLOUDSDK_CONFIG (default ~/.config/gcloud): that folder must be writable
# (an emptyDir when the root filesystem is read-only).
#
# `gcloud storage ls gs://BUCKET/PREFIX/` prints one URL a line: objects as
# gs://BUCKET/PREFIX/<name>, folders as gs://BUCKET/PREFIX/<name>/ (documented
# behaviour of `gcloud storage ls`; the exact output of every gcloud release
# is unverified: tests/pod_backup.rs runs this script against a fake gcloud).
# It lists every page itself.
#
# Output: the URL of each removed run on stdout; one line per step on stderr.
# Exit status: 0 done (also when there was nothing to remove), 1 the listing
# or a removal failed or the safety check refused, 2 bad environment (nothing
# was asked of GCS).
# Tools: bash and gcloud. FACTS does not describe the google/cloud-sdk image:
# bash in it is assumed (unverified; the slim image is Debian based); the
# script needs no other program than gcloud (no coreutils: sorting and
# parsing are bash).
set -euo pipefail

log() {
  echo "backup-prune-gcs: $*" >&2
}

usage() {
  log "$*"
  exit 2
}

for v in BUCKET KEEP RUN_FILE; do
  [[ -n "${!v:-}" ]] || usage "environment variable $v is not set"
done
[[ -v PREFIX ]] || usage "environment variable PREFIX is not set (set it empty when the runs sit at the top of the bucket)"
[[ "$BUCKET" != */* ]] || usage "BUCKET='$BUCKET' is a bucket name, without slashes"
PREFIX="${PREFIX%/}"
[[ "$PREFIX" != /* && "$PREFIX" != *//* ]] || usage "PREFIX='$PREFIX' must not start with / or hold //"
# gcloud storage reads * ? [ in a URL as wildcards.
[[ "$PREFIX" != *[][*?]* ]] || usage "PREFIX='$PREFIX' must not hold *, ?, [ or ] (wildcards to gcloud storage)"
[[ "$KEEP" =~ ^[1-9][0-9]{0,5}$ ]] || usage "KEEP='$KEEP' is not a whole number from 1 to 999999"
# Never wait for an answer to a prompt.
export CLOUDSDK_CORE_DISABLE_PROMPTS=1

# current_run and plan_prune come from backup-prune-lib.sh, next to this
# script in the same ConfigMap.
# shellcheck source-path=SCRIPTDIR source=backup-prune-lib.sh
source "${BASH_SOURCE[0]%/*}/backup-prune-lib.sh"

p="${PREFIX:+$PREFIX/}"
current="$(current_run)"
if [[ -n "${GOOGLE_APPLICATION_CREDENTIALS:-}" ]]; then
  [[ -r "$GOOGLE_APPLICATION_CREDENTIALS" ]] || {
    log "cannot read the key file GOOGLE_APPLICATION_CREDENTIALS=$GOOGLE_APPLICATION_CREDENTIALS; nothing removed"
    exit 1
  }
  log "activating the service account key $GOOGLE_APPLICATION_CREDENTIALS"
  gcloud auth activate-service-account --key-file="$GOOGLE_APPLICATION_CREDENTIALS" </dev/null >&2 || {
    log "FAILED: gcloud auth activate-service-account failed (its message is above); nothing removed"
    exit 1
  }
else
  log "no GOOGLE_APPLICATION_CREDENTIALS: using the pod's identity"
fi

base="gs://$BUCKET/$p"
log "listing the runs under $base"
listing="$(gcloud storage ls "$base" </dev/null)" || {
  log "FAILED: gcloud storage ls $base failed (its message is above); nothing removed"
  exit 1
}
prune=()
kept=()
plan_prune "$base" "$current" < <(printf '%s\n' "$listing")

failed=0
for run in "${prune[@]}"; do
  url="$base$run/"
  log "removing $url"
  if gcloud storage rm -r "$url" </dev/null >&2; then
    printf '%s\n' "$url"
  else
    log "could not remove all of $url"
    failed=$((failed + 1))
  fi
done
if ((failed > 0)); then
  log "FAILED: $failed of ${#prune[@]} runs were not removed completely"
  exit 1
fi
log "done: ${#prune[@]} runs removed, ${#kept[@]} kept"
