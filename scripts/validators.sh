#!/usr/bin/env bash
# Installs the external validators (scripts/requirements-validators.txt) into
# a Python venv under target/, once, and prints the venv's bin folder.
# The suite needs nothing installed by hand: this script is the install step.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/target/validators"
stamp="$venv/.installed"
req="$root/scripts/requirements-validators.txt"
if [ ! -f "$stamp" ] || ! cmp -s "$req" "$stamp"; then
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req" >&2
  cp "$req" "$stamp"
fi
echo "$venv/bin"
