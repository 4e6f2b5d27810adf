#!/usr/bin/env bash
# Checks that `plan --format json` and `diff --format json` print what
# schemas/plan.schema.json and schemas/diff.schema.json promise, on the
# golden plan scenarios (each against its base), with the Python jsonschema
# validator from the venv scripts/validators.sh installs. A preview with a
# field removed must be rejected (negative control).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$("$root/scripts/validators.sh")
cd "$root"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

n=0
for case in golden/plan/*/; do
  [ -d "$case/base" ] || continue
  name=$(basename "$case")
  mkdir -p "$scratch/$name"
  cp -r "$case"/. "$scratch/$name/"
  (cd "$scratch/$name" && "$root/target/debug/tidb-gitops" plan --base base --format json >plan.json 2>/dev/null || true)
  (cd "$scratch/$name" && "$root/target/debug/tidb-gitops" diff --base base --format json >diff.json 2>/dev/null || true)
  n=$((n + 1))
done

"$bin/python" - "$scratch" "$root/schemas" <<'PY'
import json, pathlib, sys
import jsonschema

scratch, schemas = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
checked = 0
for kind in ("plan", "diff"):
    schema = json.loads((schemas / f"{kind}.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    for path in sorted(scratch.glob(f"*/{kind}.json")):
        value = json.loads(path.read_text())
        errors = sorted(validator.iter_errors(value), key=str)
        if errors:
            sys.exit(f"validate-json-output: {path.parent.name}/{kind}.json: {errors[0].message}")
        checked += 1
    # Negative control: the schema must notice a missing required field.
    sample = json.loads(next(scratch.glob(f"*/{kind}.json")).read_text())
    sample.pop("summary")
    if validator.is_valid(sample):
        sys.exit(f"validate-json-output: {kind}.schema.json accepted a {kind} without its summary")
print(f"validate-json-output: {checked} plan and diff JSON documents match schemas/ (and a broken one is rejected)")
PY
