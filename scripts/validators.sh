#!/usr/bin/env bash
# Installs the external validators and test tools into a Python venv under
# target/, once, and prints the venv's bin folder.
#
#   validators.sh            every scripts/requirements-*.txt
#                            (requirements-validators.txt,
#                            requirements-backup-tests.txt, ...) except the
#                            security one, into target/validators
#   validators.sh security   scripts/requirements-security.txt (checkov, whose
#                            pins conflict with the others) alone, into
#                            target/validators-security
#
# The suite needs nothing installed by hand: this script is the install step.
# The stamp holds the names and texts of the requirements files, so a change
# to any of them (or a file added or removed) installs again.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
set_name=${1:-}
reqs=()
case "$set_name" in
  "")
    venv="$root/target/validators"
    shopt -s nullglob
    for req in "$root"/scripts/requirements-*.txt; do
      [ "${req##*/}" = requirements-security.txt ] || reqs+=("$req")
    done
    shopt -u nullglob
    ;;
  security)
    venv="$root/target/validators-security"
    reqs=("$root/scripts/requirements-security.txt")
    [ -f "${reqs[0]}" ] || reqs=()
    ;;
  *)
    echo "validators.sh: unknown set '$set_name' (none, or 'security')" >&2
    exit 2
    ;;
esac
stamp="$venv/.installed"
if [ "${#reqs[@]}" -eq 0 ]; then
  echo "validators.sh: no requirements file for the ${set_name:-default} set under scripts/" >&2
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
