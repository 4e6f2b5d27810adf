#!/usr/bin/env bash
# Installs the external validators and test tools (every
# scripts/requirements-*.txt: requirements-validators.txt,
# requirements-backup-tests.txt, ...) into one Python venv under target/,
# once, and prints the venv's bin folder.
# The suite needs nothing installed by hand: this script is the install step.
# The stamp holds the names and texts of all the requirements files, so a
# change to any of them (or a file added or removed) installs again.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/target/validators"
stamp="$venv/.installed"
shopt -s nullglob
reqs=("$root"/scripts/requirements-*.txt)
shopt -u nullglob
if [ "${#reqs[@]}" -eq 0 ]; then
  echo "validators.sh: no scripts/requirements-*.txt" >&2
  exit 1
fi
want=$(mktemp)
trap 'rm -f "$want"' EXIT
args=()
for req in "${reqs[@]}"; do
  printf '== %s\n' "${req##*/}"
  cat "$req"
  args+=(-r "$req")
done >"$want"
if [ ! -f "$stamp" ] || ! cmp -s "$want" "$stamp"; then
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${args[@]}" >&2
  cp "$want" "$stamp"
fi
echo "$venv/bin"
