#!/bin/bash
# Removes old snapshot backups from Azure Blob Storage, keeping the newest
# KEEP: the step of the backup CronJob after backup.sh, in the
# mcr.microsoft.com/azure-cli image, run as
# /bin/bash /etc/tidb-gitops/backup-prune-azblob.sh.
#
# A run is a folder directly under PREFIX/ whose name is a backup.sh start
# time, as 2026-11-20T020000Z (the pattern below). Nothing else under the
# prefix is looked at or touched: the log backup (log/), the backups made
# before upgrades (before-v8.5.2/), blobs of anyone else. The names sort in
# time order; all runs but the newest KEEP are removed, each with
# `az storage blob delete-batch --source CONTAINER --pattern 'PREFIX/<run>/*'`.
# The prefix itself is never removed.
#
# Safety: the run that backup.sh has just written (its name is in RUN_FILE)
# must be among the runs found, and among the newest KEEP; otherwise the
# listing or the clock is not what this script expects, and it removes
# nothing and fails.
#
# Env:
# - CONTAINER: the blob container's name.
# - PREFIX: the folder of the runs in the container, without slashes around
#   it (backups/prod); set but empty when the runs sit at the top of the
#   container.
# - KEEP: how many runs to keep, a whole number of at least 1.
# - RUN_FILE: the file where backup.sh wrote its run's name.
# - AZURE_STORAGE_ACCOUNT: the storage account (--account-name).
# Credentials: AZURE_STORAGE_KEY in the environment, which az reads itself
# (--auth-mode key); without it, the pod's managed identity: `az login
# --identity` first, then --auth-mode login (the identity needs a data role
# on the container, such as Storage Blob Data Contributor). Workload identity
# federation is not handled: `az login --federated-token` takes the token on
# its command line. az writes its configuration and tokens under
# AZURE_CONFIG_DIR (default ~/.azure): that folder must be writable (an
# emptyDir when the root filesystem is read-only).
#
# The az options [azure-cli, storage module: _params.py, operations/blob.py,
# _transformers.py, util.py; read in the source, not run]:
# - `az storage blob list --prefix P --delimiter / --num-results '*'` lists
#   every page ("*": all results) and, with a delimiter, gives each folder
#   directly under P as one entry {"name": "P<name>/"} (blobs as P<name>);
#   `--query '[].name' --output tsv` prints one name a line.
# - delete-batch matches --pattern against each blob's whole name with
#   Python's fnmatch, where * also matches /: 'PREFIX/<run>/*' is everything
#   in the run's folder and nothing outside it.
# Unverified: the output of every az release; in a storage account with a
# hierarchical namespace (Data Lake Gen2) the emptied folder may remain.
# tests/pod_backup.rs runs this script against a fake az.
#
# Output: the URL of each removed run on stdout; one line per step on stderr.
# Exit status: 0 done (also when there was nothing to remove), 1 the listing
# or a removal failed or the safety check refused, 2 bad environment (nothing
# was asked of Azure).
# Tools: bash and az. FACTS does not describe the azure-cli image: bash in it
# is assumed (unverified); the script needs no other program than az (no
# coreutils: sorting and parsing are bash).
set -euo pipefail

log() {
  echo "backup-prune-azblob: $*" >&2
}

usage() {
  log "$*"
  exit 2
}

for v in CONTAINER KEEP RUN_FILE AZURE_STORAGE_ACCOUNT; do
  [[ -n "${!v:-}" ]] || usage "environment variable $v is not set"
done
[[ -v PREFIX ]] || usage "environment variable PREFIX is not set (set it empty when the runs sit at the top of the container)"
[[ "$CONTAINER" != */* ]] || usage "CONTAINER='$CONTAINER' is a container name, without slashes"
PREFIX="${PREFIX%/}"
[[ "$PREFIX" != /* && "$PREFIX" != *//* ]] || usage "PREFIX='$PREFIX' must not start with / or hold //"
# delete-batch reads * ? [ in --pattern as wildcards.
[[ "$PREFIX" != *[][*?]* ]] || usage "PREFIX='$PREFIX' must not hold *, ?, [ or ] (wildcards to delete-batch)"
[[ "$KEEP" =~ ^[1-9][0-9]{0,5}$ ]] || usage "KEEP='$KEEP' is not a whole number from 1 to 999999"
# No update checks or surveys in a Job.
export AZURE_CORE_ONLY_SHOW_ERRORS=true AZURE_CORE_COLLECT_TELEMETRY=false

# current_run and plan_prune come from backup-prune-lib.sh, next to this
# script in the same ConfigMap.
# shellcheck source-path=SCRIPTDIR source=backup-prune-lib.sh
source "${BASH_SOURCE[0]%/*}/backup-prune-lib.sh"

p="${PREFIX:+$PREFIX/}"
current="$(current_run)"
account=(--account-name "$AZURE_STORAGE_ACCOUNT")
if [[ -n "${AZURE_STORAGE_KEY:-}" ]]; then
  log "using the account key in AZURE_STORAGE_KEY"
  account+=(--auth-mode key)
else
  log "no AZURE_STORAGE_KEY: logging in with the pod's managed identity"
  az login --identity --output none </dev/null >&2 || {
    log "FAILED: az login --identity failed (its message is above); nothing removed"
    exit 1
  }
  account+=(--auth-mode login)
fi

where="azure://$CONTAINER/$p (account $AZURE_STORAGE_ACCOUNT)"
list_args=(storage blob list --container-name "$CONTAINER" --delimiter / --num-results '*')
if [[ -n "$p" ]]; then list_args+=(--prefix "$p"); fi
list_args+=(--query '[].name' --output tsv)
log "listing the runs under $where"
listing="$(az "${list_args[@]}" "${account[@]}" </dev/null)" || {
  log "FAILED: az storage blob list failed (its message is above); nothing removed"
  exit 1
}
prune=()
kept=()
plan_prune "$p" "$current" < <(printf '%s\n' "$listing")

failed=0
for run in "${prune[@]}"; do
  url="azure://$CONTAINER/$p$run/"
  log "removing $url"
  if az storage blob delete-batch --source "$CONTAINER" --pattern "$p$run/*" "${account[@]}" --output none </dev/null >&2; then
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
