#!/usr/bin/env bash
# Tests ci/github/steps.sh, the check and diff steps of the composite action,
# with the real tidb-gitops binary in local git repositories: an "origin"
# whose main branch holds a compiled copy of examples/three-zone under
# clusters/prod, and clones of it standing in for the pull request's
# checkout. Checks the step outputs and exit codes the action relies on:
# check stale=false/true with exit 0 and exit 2 on invalid input; diff
# changed=true/false with exit 0, the preview and full files, the job
# summary, the base fetched into a one-commit checkout, no preview outside a
# pull request, and exit 2 for a base that does not exist. The preview's
# content is tidb-gitops diff's own business (its golden tests).
#
#   test-steps.sh [SCRIPT]   SCRIPT defaults to steps.sh beside this file;
#                            TIDB_GITOPS names the binary (default: the
#                            project's target/debug/tidb-gitops)
#
# scripts/validate-integrations.sh also runs it on broken copies of
# steps.sh, each of which must fail it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
script=$(cd "$(dirname "${1:-$here/steps.sh}")" && pwd)/$(basename "${1:-$here/steps.sh}")
binary=${TIDB_GITOPS:-$root/target/debug/tidb-gitops}
[ -x "$binary" ] || { echo "test-steps: no tidb-gitops binary at $binary (cargo build first)" >&2; exit 1; }

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
# Git without the user's or the system's configuration, commits by a fixed author.
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
export GIT_AUTHOR_NAME=ci GIT_AUTHOR_EMAIL=ci@example.com GIT_COMMITTER_NAME=ci GIT_COMMITTER_EMAIL=ci@example.com
quiet() { "$@" > "$scratch/git.log" 2>&1 || { cat "$scratch/git.log" >&2; return 1; }; }

# origin: main holds clusters/prod, compiled; branch `change` changes TiDB's
# log level (a ConfigMap and a restart), compiled too.
seed="$scratch/seed"
mkdir -p "$seed/clusters/prod"
cp "$root"/examples/three-zone/{cluster.toml,inventory.toml,placement.lock} "$seed/clusters/prod/"
quiet git -C "$seed" init -b main
(cd "$seed" && "$binary" compile clusters/prod > /dev/null 2>&1)
quiet git -C "$seed" add -A
quiet git -C "$seed" commit -m base
quiet git -C "$seed" checkout -b change
sed -i 's/^"log.level" = "info"$/"log.level" = "warn"/' "$seed/clusters/prod/cluster.toml"
(cd "$seed" && "$binary" compile clusters/prod > /dev/null 2>&1)
quiet git -C "$seed" add -A
quiet git -C "$seed" commit -m change
quiet git clone --bare "$seed" "$scratch/origin.git"

failures=0
cases=0
fail() { echo "test-steps: FAILED: $case_name: $*" >&2; failures=$((failures + 1)); }

# Runs `steps.sh STEP` in CHECKOUT with the action's environment plus
# NAME=VALUE pairs; leaves status, outputs ($dir/output) and log ($dir/log).
run_step() { # NAME CHECKOUT STEP [NAME=VALUE...]
  case_name=$1
  local checkout=$2 step=$3
  shift 3
  dir="$scratch/case-$cases"
  cases=$((cases + 1))
  mkdir -p "$dir/tmp"
  : > "$dir/output"
  : > "$dir/summary"
  status=0
  (cd "$checkout" && env TIDB_GITOPS="$binary" CLUSTER_DIR=clusters/prod OUT= BASE= MAX_BYTES= \
    GITHUB_BASE_REF=main RUNNER_TEMP="$dir/tmp" GITHUB_OUTPUT="$dir/output" \
    GITHUB_STEP_SUMMARY="$dir/summary" "$@" bash "$script" "$step") > "$dir/log" 2>&1 || status=$?
}
expect_status() {
  [ "$status" -eq "$1" ] || { fail "exit $status, expected $1; log:"; sed 's/^/    /' "$dir/log" >&2; }
}
output_of() { sed -n "s/^$1=//p" "$dir/output"; }
expect_output() { # NAME VALUE
  local got
  got=$(output_of "$1")
  [ "$got" = "$2" ] || fail "output $1 is '$got', expected '$2'"
}
expect_log() { # TEXT
  grep -qF -- "$1" "$dir/log" || { fail "the log lacks '$1'; log:"; sed 's/^/    /' "$dir/log" >&2; }
}

# The pull request's checkout: the whole history (fetch-depth: 0).
pr="$scratch/pr"
quiet git clone --branch change "$scratch/origin.git" "$pr"

run_step "check, up to date" "$pr" check
expect_status 0
expect_output stale false

run_step "diff against origin/main" "$pr" diff
expect_status 0
expect_output changed true
preview=$(output_of preview-file)
full=$(output_of full-file)
[ "$preview" = "$dir/tmp/tidb-gitops/preview-clusters-prod.md" ] || fail "preview-file is '$preview'"
[ "$full" = "$dir/tmp/tidb-gitops/full-clusters-prod.md" ] || fail "full-file is '$full'"
[ -s "$preview" ] || fail "the preview is empty"
[ -s "$full" ] || fail "the full preview is empty"
cmp -s "$preview" "$dir/summary" || fail "the job summary is not the preview"

run_step "diff with an explicit base and a budget" "$pr" diff BASE=origin/change MAX_BYTES=2000
expect_status 0
expect_output changed false

# A stale output: an input changed without compiling.
stale="$scratch/stale"
quiet git clone --branch change "$scratch/origin.git" "$stale"
sed -i 's/^"log.level" = "warn"$/"log.level" = "error"/' "$stale/clusters/prod/cluster.toml"
run_step "check, stale" "$stale" check
expect_status 0
expect_output stale true
expect_log "::error title=tidb-gitops::clusters/prod: the committed placement.lock or output is stale"

run_step "diff while stale still previews the inputs" "$stale" diff
expect_status 0
expect_output changed true

# Invalid input.
broken="$scratch/broken"
quiet git clone --branch change "$scratch/origin.git" "$broken"
sed -i 's/^\[tidb\]$/[tidbb]/' "$broken/clusters/prod/cluster.toml"
run_step "check, invalid input" "$broken" check
expect_status 2
expect_output stale ""

# A one-commit checkout of the branch (actions/checkout's default): origin/main
# is not there until steps.sh fetches it.
shallow="$scratch/shallow"
quiet git clone --depth 1 --branch change "file://$scratch/origin.git" "$shallow"
if git -C "$shallow" rev-parse --verify --quiet origin/main > /dev/null; then
  case_name="shallow clone"
  fail "the one-commit clone has origin/main already: the case tests nothing"
fi
run_step "diff in a one-commit checkout fetches the base" "$shallow" diff
expect_status 0
expect_log "origin/main is not in the checkout; fetching it"
expect_output changed true

run_step "diff outside a pull request, no base: no preview" "$pr" diff GITHUB_BASE_REF=
expect_status 0
expect_log "::notice title=tidb-gitops::clusters/prod: no preview"
expect_output changed ""
expect_output preview-file ""

run_step "diff against a branch that does not exist" "$pr" diff BASE=origin/nope
expect_status 2

# A folder name with a newline cannot start a second workflow command.
line=$(bash -c "source <(sed -n '/^annotate() {/,/^}/p' '$script'); annotate error \$'a%b\\n::warning::x'")
case_name="annotate escapes % and newlines"
[ "$line" = "::error title=tidb-gitops::a%25b%0A::warning::x" ] || fail "annotate printed '$line'"

if [ "$failures" -gt 0 ]; then
  echo "test-steps: FAILED: $failures failed checks in $cases cases ($script)" >&2
  exit 1
fi
echo "test-steps: all $cases cases pass ($(basename "$script") with $(basename "$binary") in local git repositories)"
