#!/usr/bin/env bash
# Tests ci/github/comment.sh without a network: a fake `gh`, first on PATH,
# records each call, answers the comment listing with two canned pages (one
# JSON array per page, as `gh api --paginate` prints them) and keeps a copy
# of every body file it is handed. Each case checks which calls were made
# (listing, then PATCH of the right comment or POST of a new one, or none)
# and that the body sent is the marker line followed by the preview.
#
#   test-comment.sh [SCRIPT]   SCRIPT defaults to comment.sh beside this file
#
# scripts/validate-integrations.sh also runs it on broken copies of
# comment.sh, each of which must fail it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
script=$(cd "$(dirname "${1:-$here/comment.sh}")" && pwd)/$(basename "${1:-$here/comment.sh}")
command -v jq >/dev/null || { echo "test-comment: jq is not installed" >&2; exit 1; }

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/bin"
cat > "$scratch/bin/gh" <<'EOF'
#!/usr/bin/env bash
# Fake gh: FAKE_GH holds the canned pages and receives calls, bodies and replies.
set -euo pipefail
printf '%s\n' "$*" >> "$FAKE_GH/calls"
[ "${1:-}" = api ] || { echo "fake gh: only 'gh api' is faked" >&2; exit 1; }
shift
method=GET paginate=false endpoint="" body=""
while [ "$#" -gt 0 ]; do
  case $1 in
    --method) method=$2; shift 2 ;;
    --paginate) paginate=true; shift ;;
    -F) case $2 in body=@*) body=${2#body=@} ;; *) echo "fake gh: unexpected field $2" >&2; exit 1 ;; esac; shift 2 ;;
    -*) echo "fake gh: unexpected flag $1" >&2; exit 1 ;;
    *) endpoint=$1; shift ;;
  esac
done
[ -n "${GH_TOKEN:-}" ] || { echo "fake gh: no GH_TOKEN" >&2; exit 4; }
if [ "$method" = GET ]; then
  # Without --paginate, gh prints the first page only.
  cat "$FAKE_GH/page-1.json"
  if [ "$paginate" = true ]; then cat "$FAKE_GH/page-2.json"; fi
  exit 0
fi
[ -z "${FAKE_GH_FAIL:-}" ] || { echo "fake gh: HTTP 403: Resource not accessible by integration" >&2; exit 1; }
[ -f "$body" ] || { echo "fake gh: no body file $body" >&2; exit 1; }
n=$(wc -l < "$FAKE_GH/calls")
cp "$body" "$FAKE_GH/body-$n"
printf '{"id": 999, "html_url": "https://github.example/%s/%s"}\n' "$method" "$endpoint"
EOF
chmod +x "$scratch/bin/gh"

preview="$scratch/preview.md"
printf '## tidb-gitops diff\n\n| wave | change |\n| --- | --- |\n| 20000-tidb | restarted |\n' > "$preview"

cases=0
failures=0
fail() { echo "test-comment: FAILED: $case_name: $*" >&2; failures=$((failures + 1)); }

# page-1 and page-2: comment lists (arrays of {id, body}).
run_case() { # NAME PAGE-1 PAGE-2 -- ARGS...
  case_name=$1
  local dir="$scratch/case-$cases"
  mkdir -p "$dir"
  printf '%s\n' "$2" > "$dir/page-1.json"
  printf '%s\n' "$3" > "$dir/page-2.json"
  shift 4
  : > "$dir/calls"
  status=0
  FAKE_GH=$dir GH_TOKEN=token PATH="$scratch/bin:$PATH" bash "$script" "$@" > "$dir/out" 2>&1 || status=$?
  calls="$dir/calls"
  case_dir=$dir
  cases=$((cases + 1))
}
expect_status() {
  [ "$status" -eq "$1" ] || { fail "exit $status, expected $1; output:"; sed 's/^/    /' "$case_dir/out" >&2; }
}
expect_calls() { # EXPECTED-CALL-LINES (one per line)
  if ! diff -u <(printf '%s' "$1") "$calls" > "$case_dir/calls.diff"; then
    fail "gh calls differ:"
    sed 's/^/    /' "$case_dir/calls.diff" >&2
  fi
}
expect_body() { # CALL-NUMBER EXPECTED-FILE
  if ! cmp -s "$2" "$case_dir/body-$1"; then
    fail "body of call $1 is not the expected one:"
    diff -u "$2" "$case_dir/body-$1" 2>&1 | sed 's/^/    /' >&2 || true
  fi
}

repo=acme/tidb-deploy
list="api --paginate repos/$repo/issues/17/comments?per_page=100"
marker='<!-- tidb-gitops diff: clusters/prod -->'
expected="$scratch/expected.md"
{ printf '%s\n' "$marker"; cat "$preview"; } > "$expected"
# Page 1: a human comment, a comment quoting the marker on its second line,
# and the marker of another cluster folder. Page 2: ours (id 202), then a
# later duplicate (203) that must be left alone.
page_1=$(jq -n --arg m "$marker" '[
  {id: 101, body: "Looks good to me"},
  {id: 102, body: ("> quoted:\n" + $m)},
  {id: 103, body: "<!-- tidb-gitops diff: clusters/staging -->\nold"}]')
page_2_ours=$(jq -n --arg m "$marker" '[
  {id: 201, body: "LGTM"},
  {id: 202, body: ($m + "\r\nprevious preview")},
  {id: 203, body: ($m + "\nduplicate")}]')
page_2_none='[{"id": 201, "body": "LGTM"}]'

run_case "the marked comment is on the second page: PATCH it" "$page_1" "$page_2_ours" -- \
  --repo "$repo" --pr 17 --cluster-dir clusters/prod --preview "$preview"
expect_status 0
# The body path is a temporary file: compare the calls without it.
sed -i 's/-F body=@.*/-F body=@/' "$calls"
expect_calls "$list
api --method PATCH repos/$repo/issues/comments/202 -F body=@
"
expect_body 2 "$expected"

run_case "no marked comment: POST a new one" "$page_1" "$page_2_none" -- \
  --repo "$repo" --pr 17 --cluster-dir clusters/prod --preview "$preview" --changed true
expect_status 0
sed -i 's/-F body=@.*/-F body=@/' "$calls"
expect_calls "$list
api --method POST repos/$repo/issues/17/comments -F body=@
"
expect_body 2 "$expected"

run_case "./clusters/prod/ is the same folder as clusters/prod" "$page_1" "$page_2_ours" -- \
  --repo "$repo" --pr 17 --cluster-dir ./clusters/prod/ --preview "$preview"
expect_status 0
sed -i 's/-F body=@.*/-F body=@/' "$calls"
expect_calls "$list
api --method PATCH repos/$repo/issues/comments/202 -F body=@
"
expect_body 2 "$expected"

run_case "no change and no earlier comment: post nothing" "$page_1" "$page_2_none" -- \
  --repo "$repo" --pr 17 --cluster-dir clusters/prod --preview "$preview" --changed false
expect_status 0
expect_calls "$list
"
grep -q 'nothing posted' "$case_dir/out" || fail "does not say that nothing was posted"

run_case "no change but an earlier comment: rewrite it" "$page_1" "$page_2_ours" -- \
  --repo "$repo" --pr 17 --cluster-dir clusters/prod --preview "$preview" --changed false
expect_status 0
sed -i 's/-F body=@.*/-F body=@/' "$calls"
expect_calls "$list
api --method PATCH repos/$repo/issues/comments/202 -F body=@
"

run_case "a stale output: a warning between the marker and the preview" "$page_1" "$page_2_none" -- \
  --repo "$repo" --pr 17 --cluster-dir clusters/prod --preview "$preview" --stale true
expect_status 0
if [ -f "$case_dir/body-2" ]; then
  [ "$(head -n 1 "$case_dir/body-2")" = "$marker" ] || fail "the marker is not the first line"
  # shellcheck disable=SC2016 # the backquotes are markdown
  grep -q '^> The committed output of `clusters/prod` is stale' "$case_dir/body-2" || fail "no stale warning"
  tail -n "$(wc -l < "$preview")" "$case_dir/body-2" | cmp -s - "$preview" || fail "the preview does not end the body"
else
  fail "nothing was posted"
fi

export FAKE_GH_FAIL=1
run_case "the API refuses the POST: exit 1" "$page_1" "$page_2_none" -- \
  --repo "$repo" --pr 17 --cluster-dir clusters/prod --preview "$preview"
unset FAKE_GH_FAIL
expect_status 1

run_case "a pull-request number that is not one: exit 2, no call" "$page_1" "$page_2_none" -- \
  --repo "$repo" --pr '17; rm -rf /' --cluster-dir clusters/prod --preview "$preview"
expect_status 2
expect_calls ""

big="$scratch/big.md"
head -c 70000 /dev/zero | tr '\0' x > "$big"
run_case "a body over GitHub's 65536 characters: exit 1, no call" "$page_1" "$page_2_none" -- \
  --repo "$repo" --pr 17 --cluster-dir clusters/prod --preview "$big"
expect_status 1
expect_calls ""

if [ "$failures" -gt 0 ]; then
  echo "test-comment: FAILED: $failures failed checks in $cases cases ($script)" >&2
  exit 1
fi
echo "test-comment: all $cases cases pass ($(basename "$script") against a fake gh)"
