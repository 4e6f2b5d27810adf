#!/usr/bin/env bash
# The check and diff steps of the composite action (action.yml), kept out of
# the YAML so that shellcheck reads them and ci/github/test-steps.sh runs them.
#
#   steps.sh check   env: CLUSTER_DIR, OUT (may be empty)
#   steps.sh diff    env: CLUSTER_DIR, OUT, BASE, MAX_BYTES (each may be empty),
#                         GITHUB_BASE_REF, RUNNER_TEMP
#
# Both write step outputs to $GITHUB_OUTPUT and run the binary named by
# $TIDB_GITOPS (default: tidb-gitops on PATH).
#
# check: `tidb-gitops check`. Exit 0 up to date (stale=false) and 1 stale
# (stale=true) both end the step successfully: the action fails the job for a
# stale output only after it has posted the preview, so reviewers see it.
# Exit 2 (invalid input) or anything else fails the step at once.
#
# diff: `tidb-gitops diff --format markdown`, the budgeted preview to
# $RUNNER_TEMP/tidb-gitops/preview-SLUG.md and the whole one (--full) to
# full-SLUG.md beside it, SLUG being the cluster folder with every character
# outside [A-Za-z0-9._-] replaced by `-`. Exit 0 (changed=false) and 1
# (changed=true) succeed; anything else fails the step. The base is BASE,
# else origin/$GITHUB_BASE_REF (the pull request's base branch); outside a
# pull request without BASE there is nothing to compare with, and the step
# only says so (changed, preview-file and full-file stay empty). A base of
# the form origin/BRANCH that the checkout lacks (actions/checkout fetches
# one commit by default) is fetched, one commit deep: diff reads the base's
# files, not its history. The preview is also added to the job summary.
set -euo pipefail

tidb_gitops=${TIDB_GITOPS:-tidb-gitops}
cluster_dir=${CLUSTER_DIR:-.}
out=${OUT:-}

# A workflow command (::error:: and the like) with its message escaped, so a
# folder name cannot end the command early or start another one.
annotate() { # LEVEL MESSAGE
  local message=$2
  message=${message//'%'/'%25'}
  message=${message//$'\r'/'%0D'}
  message=${message//$'\n'/'%0A'}
  echo "::$1 title=tidb-gitops::$message"
}

output() { # NAME VALUE
  if [ -n "${GITHUB_OUTPUT:-}" ]; then
    printf '%s=%s\n' "$1" "$2" >> "$GITHUB_OUTPUT"
  else
    printf 'output %s=%s\n' "$1" "$2"
  fi
}

run_check() {
  local args=(check "$cluster_dir") rc=0
  [ -z "$out" ] || args+=(--out "$out")
  "$tidb_gitops" "${args[@]}" || rc=$?
  case $rc in
    0) output stale false ;;
    1)
      output stale true
      annotate error "$cluster_dir: the committed placement.lock or output is stale; run 'tidb-gitops compile $cluster_dir' and commit the result"
      ;;
    *)
      annotate error "tidb-gitops check $cluster_dir failed (exit $rc): see the step's log"
      exit "$rc"
      ;;
  esac
}

# Makes origin/BRANCH resolvable when the checkout did not fetch it.
fetch_base() { # BASE
  local base=$1 branch
  if git rev-parse --verify --quiet "$base^{commit}" > /dev/null 2>&1; then
    return 0
  fi
  case $base in
    origin/?*) branch=${base#origin/} ;;
    *) return 0 ;; # a folder, or a revision diff reports itself
  esac
  echo "steps.sh: $base is not in the checkout; fetching it (one commit)"
  git fetch --no-tags --depth=1 origin "+refs/heads/$branch:refs/remotes/origin/$branch" \
    || annotate warning "could not fetch $base; check out with fetch-depth: 0"
}

run_diff() {
  local base=${BASE:-}
  if [ -z "$base" ]; then
    if [ -z "${GITHUB_BASE_REF:-}" ]; then
      annotate notice "$cluster_dir: no preview: not a pull request, and the action's base input is empty"
      output changed ""
      output preview-file ""
      output full-file ""
      return 0
    fi
    base="origin/$GITHUB_BASE_REF"
  fi
  fetch_base "$base"

  local slug folder preview full rc=0 changed
  slug=$(printf '%s' "$cluster_dir" | tr -c 'A-Za-z0-9._-' '-')
  folder="${RUNNER_TEMP:?RUNNER_TEMP is not set}/tidb-gitops"
  mkdir -p "$folder"
  preview="$folder/preview-$slug.md"
  full="$folder/full-$slug.md"
  local args=(diff "$cluster_dir" --base "$base" --format markdown --full "$full")
  [ -z "$out" ] || args+=(--out "$out")
  [ -z "${MAX_BYTES:-}" ] || args+=(--max-bytes "$MAX_BYTES")
  "$tidb_gitops" "${args[@]}" > "$preview" || rc=$?
  case $rc in
    0) changed=false ;;
    1) changed=true ;;
    *)
      annotate error "tidb-gitops diff $cluster_dir --base $base failed (exit $rc): see the step's log"
      exit "$rc"
      ;;
  esac
  output changed "$changed"
  output preview-file "$preview"
  output full-file "$full"
  if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
    cat "$preview" >> "$GITHUB_STEP_SUMMARY"
  fi
}

case ${1:-} in
  check) run_check ;;
  diff) run_diff ;;
  *)
    echo "usage: steps.sh check|diff" >&2
    exit 2
    ;;
esac
