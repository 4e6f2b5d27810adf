#!/usr/bin/env bash
# Checks the CI integrations (docs/ci.md) with the validators of
# scripts/validators.sh, without GitHub or GitLab:
#
#   - actionlint (with shellcheck, so it also reads `run:` scripts) on
#     .github/workflows/*.yml and examples/ci/github/*.yml; it also checks the
#     `with:` of `uses: ./` against action.yml's inputs;
#   - check-jsonschema with the schemas vendored in it (no network: any
#     download would go to a dead proxy): action.yml against the GitHub action
#     schema, the workflows against the workflow schema and the rule that
#     every job has a timeout, examples/ci/gitlab/.gitlab-ci.yml against
#     GitLab's CI schema;
#   - `pre-commit validate-manifest .pre-commit-hooks.yaml` (check-jsonschema
#     has no schema for it);
#   - every `run:` of action.yml and the workflows and every script of the
#     GitLab example, extracted: none may hold a `${{ }}` expression (values
#     go through `env:`, or a crafted branch name or input could inject shell
#     code), and the bash ones pass shellcheck (actionlint does not read
#     action.yml, nor GitLab files);
#   - shellcheck on ci/github/*.sh, ci/gitlab/*.sh and this script;
#   - ci/github/test-comment.sh (comment.sh against a fake gh),
#     ci/github/test-steps.sh (steps.sh with target/debug/tidb-gitops in local
#     git repositories) and ci/gitlab/test-note.sh (the GitLab preview job's
#     script against a fake notes API);
#   - the pre-commit hooks for real: `pre-commit try-repo` of a snapshot of
#     this work tree on a git repository holding a compiled copy of
#     examples/three-zone (tidb-gitops-check passes, then fails once
#     cluster.toml changes), and `pre-commit run` with a
#     .pre-commit-config.yaml that points the hooks at a cluster subfolder
#     (both hooks pass; check fails and compile rewrites the output after an
#     edit; the hooks skip a commit without cluster files).
#
# Every check first rejects a broken input made for it (a negative control),
# so a check that accepts anything is caught. Any failure makes the exit
# status non-zero. NEGATIVE_CONTROLS_VERBOSE=1 prints what each broken input
# was rejected with.
#
# Cost. pre-commit installs a rust hook with `cargo install --bins --root ENV
# --path .` in its own clone of the hook repository. `try-repo` does so into a
# temporary store on every call (it ignores PRE_COMMIT_HOME), and the fresh
# clone's new file times make cargo rebuild the crate itself each time;
# `pre-commit run` installs once per hook revision into PRE_COMMIT_HOME.
# target/integrations/ keeps that store and the cargo target folder
# (CARGO_TARGET_DIR, which cargo install honours; the dependencies are built
# once) between runs. The hooks are built here without optimisation
# (CARGO_PROFILE_RELEASE_OPT_LEVEL=0): the test is about the hook wiring, and
# an optimised build took about 200 s cold and 60 s for each later install on
# this 2-core machine, against about 40 s and 10 s.
#
# The hooks come from a snapshot of the work tree rather than from the work
# tree itself: try-repo's shadow commit of a dirty tree takes tracked files
# only (a new .pre-commit-hooks.yaml would be missing) and is a new commit on
# every call. The snapshot holds tracked and untracked files that are not
# ignored, committed with a fixed date, so an unchanged tree is the same
# commit and `pre-commit run` reuses its hook environment.
# The sed scripts and broken inputs below hold `$` literally:
# shellcheck disable=SC2016
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$("$root/scripts/validators.sh")
# actionlint finds shellcheck here too; pre-commit runs from here.
export PATH="$bin:$PATH"
cd "$root"

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }
say() { echo "validate-integrations: $*"; }
# Git without the user's or the system's configuration, commits by a fixed author.
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
export GIT_AUTHOR_NAME=ci GIT_AUTHOR_EMAIL=ci@example.com GIT_COMMITTER_NAME=ci GIT_COMMITTER_EMAIL=ci@example.com
# check-jsonschema must use its vendored schemas: a download would fail here.
offline() { HTTPS_PROXY=http://127.0.0.1:9 HTTP_PROXY=http://127.0.0.1:9 NO_PROXY="" "$@"; }

cargo build --quiet
binary="$root/target/debug/tidb-gitops"

workflows=(.github/workflows/*.yml examples/ci/github/*.yml)
gitlab=examples/ci/gitlab/.gitlab-ci.yml
shell_scripts=(ci/github/*.sh ci/gitlab/*.sh scripts/validate-integrations.sh)

# ------------------------------------------------------------------ helpers
controls=0
# A broken input must make COMMAND fail, with TEXT in its output (so it fails
# for that reason).
reject() { # NAME TEXT COMMAND...
  local name=$1 expect=$2 log="$scratch/control-$controls.log" tool
  shift 2
  tool=$*
  if "$@" > "$log" 2>&1; then
    cat "$log" >&2
    say "FAILED: '$tool' accepted $name; the check is not working" >&2
    exit 1
  fi
  if ! grep -qF -- "$expect" "$log"; then
    cat "$log" >&2
    say "FAILED: '$tool' rejected $name, but without '$expect' in its output" >&2
    exit 1
  fi
  controls=$((controls + 1))
  if [ -n "${NEGATIVE_CONTROLS_VERBOSE:-}" ]; then
    echo "--- $name ($tool)"
    cat "$log"
  fi
}
# A copy of FILE at COPY with a sed edit that must change it.
mutate() { # FILE COPY SED-SCRIPT
  mkdir -p "$(dirname "$2")"
  sed "$3" "$1" > "$2"
  if cmp -s "$1" "$2"; then
    say "FAILED: the edit '$3' does not change $1; fix the negative control" >&2
    exit 1
  fi
}
failures=()
# Runs a check on the real files: its output only when it fails.
check() { # NAME COMMAND...
  local name=$1 log="$scratch/check.log"
  shift
  if "$@" > "$log" 2>&1; then
    say "$name: ok"
  else
    sed 's/^/  /' "$log" | head -n 80
    say "$name: FAILED"
    failures+=("$name")
  fi
}

cat > "$scratch/scripts.py" <<'PY'
"""Extracts the shell scripts of CI files into a folder, one file each, and
reports every `run:` that holds a ${{ }} expression.

    scripts.py github|gitlab OUT FILE...
"""
import os
import re
import sys

import yaml


def flatten(lines):
    for line in lines if isinstance(lines, list) else [lines]:
        if isinstance(line, list):
            yield from flatten(line)
        else:
            yield str(line)


def github(path):
    with open(path) as f:
        doc = yaml.safe_load(f)
    if "runs" in doc:  # action metadata
        steps = [(f"runs.steps[{i}]", s) for i, s in enumerate(doc["runs"].get("steps") or [])]
    else:
        steps = [(f"jobs.{job}.steps[{i}]", s)
                 for job, body in (doc.get("jobs") or {}).items()
                 for i, s in enumerate(body.get("steps") or [])]
    for where, step in steps:
        if "run" in step:
            yield where, step.get("shell", "bash"), step["run"]


def gitlab(path):
    with open(path) as f:
        doc = yaml.safe_load(f)
    for job, body in doc.items():
        if not isinstance(body, dict):
            continue
        for key in ("before_script", "script", "after_script"):
            if key in body:
                yield f"{job}.{key}", "bash", "\n".join(flatten(body[key]))


def main():
    kind, out, files = sys.argv[1], sys.argv[2], sys.argv[3:]
    bad = 0
    for path in files:
        for where, shell, script in (github if kind == "github" else gitlab)(path):
            if "${{" in script:
                print(f"{path}: {where}: a ${{{{ }}}} expression inside a script; pass the value through env:")
                bad += 1
            if shell != "bash":
                continue
            name = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{path}--{where}") + ".sh"
            with open(os.path.join(out, name), "w") as f:
                f.write(f"#!/usr/bin/env bash\n# {path}: {where}\n{script}\n")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
PY

# Extracts the scripts of FILEs (of KIND github or gitlab) and shellchecks them.
scripts_check() { # KIND FILE...
  # Called inside `if` (by check and reject), where `set -e` is off: every
  # failure returns explicitly.
  local kind=$1 out rc=0
  shift
  out=$(mktemp -d "$scratch/scripts.XXXX")
  "$bin/python" "$scratch/scripts.py" "$kind" "$out" "$@" || rc=1
  local files=("$out"/*.sh)
  [ -e "${files[0]}" ] || { echo "no scripts found in $*"; return 1; }
  # --norc: the same checks on every machine; disable one in the script itself.
  (cd "$out" && "$bin/shellcheck" --norc -f gcc ./*.sh) || rc=1
  echo "${#files[@]} scripts"
  return "$rc"
}

run_shellcheck() { "$bin/shellcheck" --norc -f gcc "$@"; }

start=$(now)
# ---------------------------------------------------------------- actionlint
# actionlint finds the repository (and ./action.yml for `uses: ./`) from the
# .github/workflows folder a file is in: the broken copies get one, beside a
# copy of action.yml, in a git repository of their own.
lint_dir="$scratch/actionlint"
mkdir -p "$lint_dir/.github/workflows"
git -C "$lint_dir" init -q
cp action.yml "$lint_dir/"
actionlint_run() { actionlint -shellcheck "$bin/shellcheck" -pyflakes= -no-color "$@"; }
mutate .github/workflows/ci.yml "$lint_dir/.github/workflows/input.yml" 's/^          cluster-dir: examples\/three-zone/          cluster-dirr: examples\/three-zone/'
reject "a workflow passing an input action.yml does not have" 'input "cluster-dirr" is not defined' \
  bash -c "cd '$lint_dir' && actionlint -shellcheck '$bin/shellcheck' -pyflakes= -no-color .github/workflows/input.yml"
mutate .github/workflows/ci.yml "$lint_dir/.github/workflows/shell.yml" 's|^      - run: bash .ci/run|      - run: bash $CI_SCRIPT|'
reject "a run: script with an unquoted variable (shellcheck inside actionlint)" "SC2086" \
  bash -c "cd '$lint_dir' && actionlint -shellcheck '$bin/shellcheck' -pyflakes= -no-color .github/workflows/shell.yml"
mutate examples/ci/github/tidb-gitops.yml "$lint_dir/.github/workflows/expr.yml" 's/steps\.tidb-gitops\.outputs/steps.tidb-gitop.outputs/; s|path: ${{ runner.temp }}/tidb-gitops/|path: ${{ steps.tidb-gitop.outputs.full-file }}|'
reject "an expression naming a step that does not exist" 'property "tidb-gitop" is not defined' \
  bash -c "cd '$lint_dir' && actionlint -shellcheck '$bin/shellcheck' -pyflakes= -no-color .github/workflows/expr.yml"
check "actionlint ${workflows[*]}" actionlint_run "${workflows[@]}"

# ---------------------------------------------------------- check-jsonschema
schema() { offline check-jsonschema --builtin-schema "$@"; }
neg="$scratch/schemas"
mutate action.yml "$neg/action.yml" 's/^    default: \.$/    defualt: ./'
reject "an action input with a misspelt key" "'defualt' was unexpected" schema vendor.github-actions "$neg/action.yml"
mutate .github/workflows/ci.yml "$neg/workflow.yml" 's/^concurrency:/concurency:/'
reject "a workflow with an unknown top-level key" "'concurency' was unexpected" schema vendor.github-workflows "$neg/workflow.yml"
mutate .github/workflows/ci.yml "$neg/timeout.yml" '/^    timeout-minutes: 90$/d'
reject "a job without timeout-minutes" "'timeout-minutes' is a required property" schema custom.github-workflows-require-timeout "$neg/timeout.yml"
mutate "$gitlab" "$neg/gitlab.yml" 's/^  script:$/  scripts:/'
reject "a GitLab job with an unknown keyword" "'scripts' was unexpected" schema vendor.gitlab-ci "$neg/gitlab.yml"
check "check-jsonschema: action.yml (GitHub action schema)" schema vendor.github-actions action.yml
check "check-jsonschema: the workflows (GitHub workflow schema, job timeouts)" \
  offline bash -c 'check-jsonschema --builtin-schema vendor.github-workflows "$@" && check-jsonschema --builtin-schema custom.github-workflows-require-timeout "$@"' \
  _ "${workflows[@]}"
check "check-jsonschema: $gitlab (GitLab CI schema)" schema vendor.gitlab-ci "$gitlab"

# ------------------------------------------------------------ hook manifest
mutate .pre-commit-hooks.yaml "$neg/hooks.yaml" 's/^  language: rust$/  language: rustt/'
reject "a hook manifest with an unknown language" "got: 'rustt'" pre-commit validate-manifest "$neg/hooks.yaml"
mutate .pre-commit-hooks.yaml "$neg/hooks-entry.yaml" '/^  entry: tidb-gitops check$/d'
reject "a hook without an entry" "Missing required key: entry" pre-commit validate-manifest "$neg/hooks-entry.yaml"
check "pre-commit validate-manifest .pre-commit-hooks.yaml" pre-commit validate-manifest .pre-commit-hooks.yaml

# ---------------------------------------------------- scripts in YAML files
mutate action.yml "$neg/inject/action.yml" 's|^      run: bash "$GITHUB_ACTION_PATH/ci/github/steps.sh" check$|      run: bash "$GITHUB_ACTION_PATH/ci/github/steps.sh" check "${{ inputs.cluster-dir }}"|'
reject "an action run: with a \${{ }} expression" "a \${{ }} expression inside a script" scripts_check github "$neg/inject/action.yml"
mutate "$gitlab" "$neg/unquoted/.gitlab-ci.yml" 's|^    - tidb-gitops check "$CLUSTER_DIR"$|    - tidb-gitops check $CLUSTER_DIR|'
reject "a GitLab script with an unquoted variable" "SC2086" scripts_check gitlab "$neg/unquoted/.gitlab-ci.yml"
check "scripts of action.yml and the workflows: no \${{ }}, shellcheck" scripts_check github action.yml "${workflows[@]}"
check "scripts of $gitlab: shellcheck" scripts_check gitlab "$gitlab"

# ---------------------------------------------------------------- shellcheck
printf '#!/usr/bin/env bash\nrm -rf $1/tmp\n' > "$neg/unquoted.sh"
reject "a script with an unquoted argument" "SC2086" run_shellcheck "$neg/unquoted.sh"
check "shellcheck ${shell_scripts[*]}" run_shellcheck "${shell_scripts[@]}"

# -------------------------------------------------- tests of the CI scripts
# Each broken copy must fail its test.
mutate ci/github/comment.sh "$neg/comment-page.sh" 's/gh api --paginate /gh api /'
reject "comment.sh reading only the first page of comments" "FAILED" bash ci/github/test-comment.sh "$neg/comment-page.sh"
mutate ci/github/comment.sh "$neg/comment-post.sh" 's/if \[ -n "$id" \]; then/if false; then/'
reject "comment.sh posting a new comment every time" "FAILED" bash ci/github/test-comment.sh "$neg/comment-post.sh"
mutate ci/github/comment.sh "$neg/comment-body.sh" '/^  cat "\$preview"$/d'
reject "comment.sh sending the marker without the preview" "is not the expected one" bash ci/github/test-comment.sh "$neg/comment-body.sh"
mutate ci/github/steps.sh "$neg/steps-stale.sh" 's/^    1)$/    9)/'
reject "steps.sh failing on a stale output at once" "FAILED: check, stale" bash ci/github/test-steps.sh "$neg/steps-stale.sh"
mutate ci/github/steps.sh "$neg/steps-fetch.sh" 's/^  fetch_base "\$base"$/  : fetch_base "$base"/'
reject "steps.sh not fetching a missing base" "FAILED: diff in a one-commit checkout" bash ci/github/test-steps.sh "$neg/steps-fetch.sh"
mutate "$gitlab" "$neg/note/.gitlab-ci.yml" 's/x-next-page:/x-next_page:/'
reject "a GitLab job reading only the first page of notes" "FAILED: our note on the second page" \
  bash ci/gitlab/test-note.sh "$bin/python" "$neg/note/.gitlab-ci.yml"
check "ci/github/test-comment.sh" bash ci/github/test-comment.sh
check "ci/github/test-steps.sh" bash ci/github/test-steps.sh
check "ci/gitlab/test-note.sh" bash ci/gitlab/test-note.sh "$bin/python"
say "$controls broken inputs are each rejected; the checks above ran in $(since "$start")"

# ------------------------------------------------------- pre-commit, for real
hooks_home="$root/target/integrations"
export PRE_COMMIT_HOME="$hooks_home/pre-commit"
export CARGO_TARGET_DIR="$hooks_home/cargo-target" CARGO_PROFILE_RELEASE_OPT_LEVEL=0
snapshot="$hooks_home/hook-repo"
start=$(now)
rm -rf "$snapshot"
mkdir -p "$snapshot"
# What is in the work tree and not ignored (deleted files left out).
git -C "$root" ls-files -z --cached --others --exclude-standard \
  | while IFS= read -r -d '' f; do if [ -e "$f" ] || [ -L "$f" ]; then printf '%s\0' "$f"; fi; done \
  | xargs -0 cp -P --parents -t "$snapshot"
git -C "$snapshot" init -q -b main
git -C "$snapshot" add -A
GIT_AUTHOR_DATE=2000-01-01T00:00:00Z GIT_COMMITTER_DATE=2000-01-01T00:00:00Z \
  git -C "$snapshot" commit -q -m "work tree snapshot for pre-commit"
rev=$(git -C "$snapshot" rev-parse HEAD)
# One hook environment per work-tree state accumulates in the store (a clone
# and a binary each): start afresh past a few.
shopt -s nullglob
stored=("$PRE_COMMIT_HOME"/repo*)
shopt -u nullglob
if [ "${#stored[@]}" -gt 3 ]; then
  pre-commit clean > /dev/null
fi
if [ -d "$CARGO_TARGET_DIR/release" ]; then
  cache="the cargo target folder is warm"
else
  cache="cold: cargo builds the dependencies too"
fi
if grep -qs "$rev" "$PRE_COMMIT_HOME/db.db"; then
  cache="$cache; pre-commit run has this tree's hooks installed"
fi

hooks_failed=0
# Runs pre-commit in REPO, expecting exit status WANT and TEXT in the output.
pre_commit() { # NAME REPO WANT TEXT ARGS...
  local name=$1 repo=$2 want=$3 text=$4 rc=0 t0
  shift 4
  t0=$(now)
  (cd "$repo" && pre-commit "$@") > "$scratch/pre-commit.log" 2>&1 || rc=$?
  if [ "$rc" -ne "$want" ] || ! grep -qF -- "$text" "$scratch/pre-commit.log"; then
    sed 's/^/  /' "$scratch/pre-commit.log" | tail -n 60
    say "pre-commit: $name: FAILED (exit $rc, expected $want with '$text')"
    hooks_failed=1
    return 0
  fi
  say "pre-commit: $name: ok ($(since "$t0"))"
}

# Repository A: the cluster folder at the root, as the hooks' default args expect.
a="$scratch/hooks-a"
mkdir -p "$a"
cp examples/three-zone/{cluster.toml,inventory.toml,placement.lock} "$a/"
git -C "$a" init -q -b main
(cd "$a" && "$binary" compile . > /dev/null 2>&1)
git -C "$a" add -A
git -C "$a" commit -q -m cluster
say "pre-commit: $cache"
pre_commit "try-repo tidb-gitops-check on an up-to-date cluster passes" "$a" 0 "tidb-gitops check" \
  try-repo "$snapshot" tidb-gitops-check --all-files
sed -i 's/^"log.level" = "info"$/"log.level" = "warn"/' "$a/cluster.toml"
git -C "$a" diff --quiet && { say "FAILED: the edit of cluster.toml changed nothing" >&2; exit 1; }
pre_commit "try-repo tidb-gitops-check after an edit of cluster.toml fails" "$a" 1 "help: run \`tidb-gitops compile .\`" \
  try-repo "$snapshot" tidb-gitops-check --all-files

# Repository B: the cluster in a subfolder, hooks configured as docs/ci.md says.
b="$scratch/hooks-b"
mkdir -p "$b/clusters/prod"
cp examples/three-zone/{cluster.toml,inventory.toml,placement.lock} "$b/clusters/prod/"
echo "# deploy repository" > "$b/README.md"
cat > "$b/.pre-commit-config.yaml" <<EOF
repos:
  - repo: $snapshot
    rev: $rev
    hooks:
      - id: tidb-gitops-check
        args: [clusters/prod]
      - id: tidb-gitops-compile
        args: [clusters/prod]
EOF
git -C "$b" init -q -b main
(cd "$b" && "$binary" compile clusters/prod > /dev/null 2>&1)
git -C "$b" add -A
git -C "$b" commit -q -m cluster
pre_commit "run: both hooks pass on an up-to-date cluster" "$b" 0 "tidb-gitops compile" run --all-files
pre_commit "run: the hooks skip a commit without cluster files" "$b" 0 "(no files to check)Skipped" \
  run tidb-gitops-check --files README.md
sed -i 's/^"log.level" = "info"$/"log.level" = "warn"/' "$b/clusters/prod/cluster.toml"
git -C "$b" add -A
pre_commit "run: tidb-gitops-check fails on a staged edit of cluster.toml" "$b" 1 "are missing" \
  run tidb-gitops-check
pre_commit "run: tidb-gitops-compile rewrites the output and fails the commit" "$b" 1 "files were modified by this hook" \
  run tidb-gitops-compile
if git -C "$b" diff --quiet -- clusters/prod/deploy; then
  say "pre-commit: tidb-gitops-compile did not change clusters/prod/deploy: FAILED"
  hooks_failed=1
fi
git -C "$b" add -A
pre_commit "run: both hooks pass once the new output is staged" "$b" 0 "tidb-gitops check" run --all-files
if [ "$hooks_failed" -ne 0 ]; then
  failures+=("pre-commit hooks")
fi
say "pre-commit: the hooks ran in $(since "$start") ($cache)"

if [ "${#failures[@]}" -gt 0 ]; then
  say "FAILED: $(printf '%s; ' "${failures[@]}")" >&2
  exit 1
fi
say "the action, the workflows, the GitLab example and the pre-commit hooks pass every check"
