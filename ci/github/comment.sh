#!/usr/bin/env bash
# Posts the tidb-gitops preview of one cluster folder as a pull-request
# comment, or rewrites the comment an earlier run posted, so that a pull
# request carries one comment per cluster folder however often CI runs.
# Called by the composite action (action.yml); tested against a fake `gh` by
# ci/github/test-comment.sh.
#
#   comment.sh --repo OWNER/NAME --pr NUMBER --cluster-dir DIR --preview FILE
#              [--changed true|false] [--stale true|false]
#
# The comment starts with a hidden marker line, `<!-- tidb-gitops diff: DIR -->`
# (DIR without a leading `./` or a trailing `/`). The comment to rewrite is
# the oldest one whose first line is exactly that marker, looked up over all
# the pull request's comments with `gh api --paginate`; a comment that merely
# quotes the marker does not match. When no comment matches and --changed is
# false (the change leaves this folder's output alone), nothing is posted: a
# pull request that never touched the cluster gets no comment. --stale true
# puts a note above the preview that the committed output does not match the
# inputs.
#
# Needs gh and jq (both on GitHub-hosted runners) and, in GH_TOKEN, a token
# that may write pull-request comments. On GitHub Enterprise Server, GH_HOST
# is taken from GITHUB_SERVER_URL when unset (not tried on such a server).
# Exit 0 when the comment was posted, rewritten or deliberately not posted;
# 1 when the API refused or failed; 2 on wrong usage.
set -euo pipefail

usage() {
  echo "usage: comment.sh --repo OWNER/NAME --pr NUMBER --cluster-dir DIR --preview FILE [--changed true|false] [--stale true|false]" >&2
  exit 2
}
fail() { echo "comment.sh: $*" >&2; exit 2; }

repo="" pr="" dir="" preview="" changed=true stale=false
while [ "$#" -gt 0 ]; do
  [ "$#" -ge 2 ] || usage
  case $1 in
    --repo) repo=$2 ;;
    --pr) pr=$2 ;;
    --cluster-dir) dir=$2 ;;
    --preview) preview=$2 ;;
    --changed) changed=$2 ;;
    --stale) stale=$2 ;;
    *) usage ;;
  esac
  shift 2
done
[ -n "$repo" ] && [ -n "$pr" ] && [ -n "$dir" ] && [ -n "$preview" ] || usage
[[ $repo =~ ^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$ ]] || fail "--repo must be OWNER/NAME, not '$repo'"
[[ $pr =~ ^[1-9][0-9]*$ ]] || fail "--pr must be a pull-request number, not '$pr'"
[ -f "$preview" ] || fail "no preview file at $preview"
case $changed in true | false) ;; *) fail "--changed must be true or false, not '$changed'" ;; esac
# An empty --stale is what the action passes when its check step did not run.
case $stale in true | false) ;; "") stale=false ;; *) fail "--stale must be true or false, not '$stale'" ;; esac

# One spelling per folder, so `./prod`, `prod/` and `prod` share a comment.
while [[ $dir == ./* ]]; do dir=${dir#./}; done
while [[ $dir == */ && $dir != / ]]; do dir=${dir%/}; done
[ -n "$dir" ] || dir=.
case $dir in *$'\n'* | *$'\r'* | *'-->'* | *'--!>'*) fail "the cluster folder name cannot go into an HTML comment: '$dir'" ;; esac
marker="<!-- tidb-gitops diff: $dir -->"

for tool in gh jq; do
  command -v "$tool" >/dev/null || { echo "comment.sh: $tool is not installed" >&2; exit 1; }
done
if [ -z "${GH_HOST:-}" ] && [ -n "${GITHUB_SERVER_URL:-}" ] && [ "$GITHUB_SERVER_URL" != "https://github.com" ]; then
  export GH_HOST=${GITHUB_SERVER_URL#*://}
fi

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
body="$scratch/body.md"
{
  printf '%s\n' "$marker"
  if [ "$stale" = true ]; then
    # shellcheck disable=SC2016 # the backquotes are markdown
    printf '> [!WARNING]\n> The committed output of `%s` is stale: it is not what its inputs compile to. Run `tidb-gitops compile %s` and commit the result.\n\n' "$dir" "$dir"
  fi
  cat "$preview"
} > "$body"
# GitHub refuses a comment body over 65536 characters (422).
chars=$(jq -Rrs 'length' < "$body")
if [ "$chars" -gt 65536 ]; then
  echo "comment.sh: the comment would be $chars characters, over GitHub's 65536; lower the action's max-bytes input" >&2
  exit 1
fi

# Every page of comments, 100 a page: `gh api --paginate` prints one JSON
# array per page, one after the other, which jq reads as a stream.
if ! gh api --paginate "repos/$repo/issues/$pr/comments?per_page=100" > "$scratch/comments.json"; then
  echo "comment.sh: could not list the comments of $repo#$pr" >&2
  exit 1
fi
ids=$(jq -r --arg marker "$marker" \
  '.[] | select((.body // "") | split("\n")[0] | rtrimstr("\r") == $marker) | .id' "$scratch/comments.json")
id=${ids%%$'\n'*}

if [ -n "$id" ]; then
  [[ $id =~ ^[0-9]+$ ]] || { echo "comment.sh: unexpected comment id '$id'" >&2; exit 1; }
  if ! gh api --method PATCH "repos/$repo/issues/comments/$id" -F "body=@$body" > "$scratch/reply.json"; then
    echo "comment.sh: could not update comment $id on $repo#$pr" >&2
    exit 1
  fi
  action=updated
elif [ "$changed" = false ]; then
  echo "comment.sh: no change in $dir and no earlier comment on $repo#$pr: nothing posted"
  exit 0
else
  if ! gh api --method POST "repos/$repo/issues/$pr/comments" -F "body=@$body" > "$scratch/reply.json"; then
    echo "comment.sh: could not comment on $repo#$pr" >&2
    exit 1
  fi
  action=posted
fi
url=$(jq -r '.html_url // empty' "$scratch/reply.json" 2>/dev/null || true)
echo "comment.sh: $action the preview of $dir on $repo#$pr${url:+: $url}"
