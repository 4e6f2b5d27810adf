#!/usr/bin/env bash
# Tests the script of the `tidb-gitops-diff` job in
# examples/ci/gitlab/.gitlab-ci.yml without GitLab: the job's `script:` runs
# under bash with a fake `curl` (the notes API: two pages of notes, linked by
# the x-next-page header as GitLab does, and a record of every write), a fake
# `tidb-gitops` (prints a preview, exits with a chosen code) and the real jq.
# Checks which note is rewritten (PUT) or whether a new one is posted (POST),
# the body sent, and the job's exit status.
#
#   test-note.sh PYTHON [GITLAB_CI_FILE]
#
# PYTHON must have PyYAML (the validators' venv). GITLAB_CI_FILE defaults to
# the example; scripts/validate-integrations.sh also runs this test on a
# broken copy, which must fail it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
python=${1:?usage: test-note.sh PYTHON [GITLAB_CI_FILE]}
file=${2:-$here/../../examples/ci/gitlab/.gitlab-ci.yml}
command -v jq >/dev/null || { echo "test-note: jq is not installed" >&2; exit 1; }

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
# The job's script entries, joined as GitLab's bash runner runs them.
"$python" - "$file" > "$scratch/job.sh" <<'PY'
import sys
import yaml

with open(sys.argv[1]) as f:
    job = yaml.safe_load(f)["tidb-gitops-diff"]
print("set -eo pipefail")
for entry in job["script"]:
    if entry.startswith("apt-get "):
        continue  # installs jq in the job's image; this machine has it
    print(entry)
PY

mkdir -p "$scratch/bin"
cat > "$scratch/bin/tidb-gitops" <<'EOF'
#!/usr/bin/env bash
# Fake tidb-gitops diff: a preview on stdout, the whole one in --full's file.
printf '%s\n' "$*" >> "$FAKE/tidb-gitops-calls"
full=""
while [ "$#" -gt 0 ]; do
  if [ "$1" = --full ]; then full=$2; fi
  shift
done
printf '## preview\n\nTiDB restarts\n'
[ -z "$full" ] || printf '## whole preview\n' > "$full"
exit "${FAKE_DIFF_RC:-1}"
EOF
cat > "$scratch/bin/curl" <<'EOF'
#!/usr/bin/env bash
# Fake curl for the notes API.
set -euo pipefail
method=GET headers="" data="" url="" token=""
while [ "$#" -gt 0 ]; do
  case $1 in
    --request) method=$2; shift 2 ;;
    --dump-header) headers=$2; shift 2 ;;
    --data) data=${2#@}; shift 2 ;;
    --header) case $2 in "PRIVATE-TOKEN: "*) token=${2#PRIVATE-TOKEN: } ;; esac; shift 2 ;;
    --output) shift 2 ;;
    --fail-with-body | --silent | --show-error) shift ;;
    -*) echo "fake curl: unexpected flag $1" >&2; exit 2 ;;
    *) url=$1; shift ;;
  esac
done
[ "$token" = secret ] || { echo "fake curl: 401 Unauthorized" >&2; exit 22; }
echo "$method $url" >> "$FAKE/calls"
if [ "$method" = GET ]; then
  page=${url##*page=}
  next=""
  [ "$page" != 1 ] || next=2
  printf 'HTTP/2 200\r\ncontent-type: application/json\r\nx-next-page: %s\r\n\r\n' "$next" > "$headers"
  cat "$FAKE/page-$page.json"
else
  cp "$data" "$FAKE/body-$(wc -l < "$FAKE/calls")"
  echo '{"id": 1}'
fi
EOF
chmod +x "$scratch/bin/tidb-gitops" "$scratch/bin/curl"

api=https://gitlab.example.com/api/v4/projects/42/merge_requests/7/notes
marker='<!-- tidb-gitops diff: clusters/prod -->'
page_1=$(jq -n '[{id: 101, body: "LGTM"}, {id: 102, body: "<!-- tidb-gitops diff: clusters/other -->\nx"}]')
page_2_ours=$(jq -n --arg m "$marker" '[{id: 201, body: ("> " + $m)}, {id: 202, body: ($m + "\nold")}]')
page_2_none='[{"id": 201, "body": "thanks"}]'
expected_body=$(jq -n --arg m "$marker" '{body: ($m + "\n## preview\n\nTiDB restarts\n")}')

cases=0
failures=0
fail() { echo "test-note: FAILED: $case_name: $*" >&2; failures=$((failures + 1)); }
run_job() { # NAME PAGE-2 DIFF-EXIT TOKEN
  case_name=$1
  dir="$scratch/case-$cases"
  cases=$((cases + 1))
  mkdir -p "$dir/work"
  printf '%s\n' "$page_1" > "$dir/page-1.json"
  printf '%s\n' "$2" > "$dir/page-2.json"
  : > "$dir/calls"
  status=0
  (cd "$dir/work" && env FAKE="$dir" FAKE_DIFF_RC="$3" GITLAB_TOKEN="$4" PATH="$scratch/bin:$PATH" \
    CLUSTER_DIR=clusters/prod CI_MERGE_REQUEST_DIFF_BASE_SHA=0123abc \
    CI_API_V4_URL=https://gitlab.example.com/api/v4 CI_MERGE_REQUEST_PROJECT_ID=42 CI_PROJECT_ID=99 \
    CI_MERGE_REQUEST_IID=7 timeout 30 bash "$scratch/job.sh") > "$dir/log" 2>&1 || status=$?
}
expect_status() {
  [ "$status" -eq "$1" ] || { fail "exit $status, expected $1; log:"; sed 's/^/    /' "$dir/log" >&2; }
}
expect_calls() {
  if ! diff -u <(printf '%s' "$1") "$dir/calls" > "$dir/calls.diff"; then
    fail "API calls differ:"
    sed 's/^/    /' "$dir/calls.diff" >&2
  fi
}
expect_body() { # CALL-NUMBER
  if ! jq -e --argjson want "$expected_body" '. == $want' "$dir/body-$1" > /dev/null 2>&1; then
    fail "body of call $1 is not the marker and the preview"
  fi
}

run_job "our note on the second page: PUT it" "$page_2_ours" 1 secret
expect_status 0
expect_calls "GET $api?per_page=100&page=1
GET $api?per_page=100&page=2
PUT $api/202
"
expect_body 3
[ -s "$dir/work/tidb-gitops-preview-full.md" ] || fail "no full preview for the artifact"
grep -qF -- "--base 0123abc --format markdown" "$dir/tidb-gitops-calls" || fail "diff did not get the merge request's diff base"

run_job "no note of ours: POST one" "$page_2_none" 1 secret
expect_status 0
expect_calls "GET $api?per_page=100&page=1
GET $api?per_page=100&page=2
POST $api
"
expect_body 3

run_job "no change and no note: nothing posted" "$page_2_none" 0 secret
expect_status 0
expect_calls "GET $api?per_page=100&page=1
GET $api?per_page=100&page=2
"

run_job "diff fails: the job fails with its code, no call" "$page_2_none" 2 secret
expect_status 2
expect_calls ""

run_job "no GITLAB_TOKEN: no note, the job passes" "$page_2_none" 1 ""
expect_status 0
expect_calls ""

if [ "$failures" -gt 0 ]; then
  echo "test-note: FAILED: $failures failed checks in $cases cases ($file)" >&2
  exit 1
fi
echo "test-note: all $cases cases pass (the tidb-gitops-diff job's script against a fake notes API)"
