#!/bin/bash
# Removes old snapshot backups from S3, keeping the newest KEEP: the step of
# the backup CronJob after backup.sh, in the amazon/aws-cli image, run as
# /bin/bash /etc/tidb-gitops/backup-prune-s3.sh.
#
# A run is a folder directly under PREFIX/ whose name is a backup.sh start
# time, as 2026-11-20T020000Z (the pattern below). Nothing else under the
# prefix is looked at or touched: the log backup (log/), the backups made
# before upgrades (before-v8.5.2/), files of anyone else. The names sort in
# time order; all runs but the newest KEEP are removed, each with
# `aws s3 rm --recursive s3://BUCKET/PREFIX/<run>/`. The prefix itself is
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
# - Optional: S3_ENDPOINT (--endpoint-url: an S3-compatible store),
#   AWS_REGION (--region).
# Credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment,
# or the pod's cloud identity; the AWS CLI reads them itself, none is put on a
# command line.
#
# Output: the URL of each removed run on stdout; one line per step on stderr.
# Exit status: 0 done (also when there was nothing to remove), 1 the listing
# or a removal failed or the safety check refused, 2 bad environment (nothing
# was asked of S3).
# Tools: bash and aws. FACTS does not describe the amazon/aws-cli image: bash
# in it is assumed (unverified); the script needs no other program than aws
# (no coreutils: sorting and parsing are bash). The aws commands and options
# used (s3api list-objects-v2 --prefix --delimiter --query --output text,
# s3 rm --recursive --only-show-errors, --endpoint-url, --region) are the same
# in AWS CLI v1 and v2; scripts/test-backup-scripts.sh runs this script with
# AWS CLI v1 against a local S3 server.
set -euo pipefail

log() {
  echo "backup-prune-s3: $*" >&2
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
[[ "$KEEP" =~ ^[1-9][0-9]{0,5}$ ]] || usage "KEEP='$KEEP' is not a whole number from 1 to 999999"
# The AWS CLI v2 would page its output through less.
export AWS_PAGER=""

# current_run and plan_prune come from backup-prune-lib.sh, next to this
# script in the same ConfigMap.
# shellcheck source-path=SCRIPTDIR source=backup-prune-lib.sh
source "${BASH_SOURCE[0]%/*}/backup-prune-lib.sh"

p="${PREFIX:+$PREFIX/}"
current="$(current_run)"
aws_args=()
if [[ -n "${S3_ENDPOINT:-}" ]]; then aws_args+=(--endpoint-url "$S3_ENDPOINT"); fi
if [[ -n "${AWS_REGION:-}" ]]; then aws_args+=(--region "$AWS_REGION"); fi

list_args=(s3api list-objects-v2 --bucket "$BUCKET" --delimiter /)
if [[ -n "$p" ]]; then list_args+=(--prefix "$p"); fi
# CommonPrefixes: the folders directly under the prefix, as PREFIX/<name>/,
# one a line with this query (the text output prints "None" when there is
# none). The CLI follows the continuation tokens itself: all pages are listed.
list_args+=(--query 'CommonPrefixes[].[Prefix]' --output text)
log "listing the runs under s3://$BUCKET/$p"
listing="$(aws "${list_args[@]}" "${aws_args[@]}" </dev/null)" || {
  log "FAILED: aws s3api list-objects-v2 failed (its message is above); nothing removed"
  exit 1
}
prune=()
kept=()
plan_prune "$p" "$current" < <(printf '%s\n' "$listing")

failed=0
for run in "${prune[@]}"; do
  url="s3://$BUCKET/$p$run/"
  log "removing $url"
  if aws s3 rm --recursive --only-show-errors "$url" "${aws_args[@]}" </dev/null >&2; then
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
