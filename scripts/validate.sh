#!/usr/bin/env bash
# Checks the project's TOML files against the JSON Schemas in schemas/ with
# taplo, the way an editor would: every example, every valid golden case and
# the `init` scaffold. The golden error cases are invalid on purpose and are
# left out.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$("$root/scripts/validators.sh")
cd "$root"

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
./target/debug/tidb-gitops init "$scratch/init" 2>/dev/null
# The scaffold has no #:schema line (it cannot know where the schemas are);
# name them explicitly.
"$bin/taplo" check --schema "file://$root/schemas/cluster.schema.json" "$scratch/init/cluster.toml"
"$bin/taplo" check --schema "file://$root/schemas/inventory.schema.json" "$scratch/init/inventory.toml"

mapfile -t files < <(find examples golden/examples golden/placement -name 'cluster.toml' -o -name 'inventory.toml' | sort)
"$bin/taplo" check "${files[@]}"
mapfile -t locks < <(find examples golden/placement -name 'placement.lock' | sort)
# taplo skips files that do not end in .toml, so the locks are checked as copies.
for i in "${!locks[@]}"; do
  cp "${locks[$i]}" "$scratch/lock-$i.toml"
done
"$bin/taplo" check --schema "file://$root/schemas/placement-lock.schema.json" "$scratch"/lock-*.toml

# A file that breaks the schema must fail, or the checks above prove nothing.
sed 's/^replicas = 1$/replics = 1/' examples/minimal/cluster.toml > "$scratch/broken.toml"
sed -i "s|^#:schema ../../|#:schema $root/|" "$scratch/broken.toml"
if "$bin/taplo" check "$scratch/broken.toml" >/dev/null 2>&1; then
  echo "validate.sh: taplo accepted a file with an unknown key; the schema check is not working" >&2
  exit 1
fi
echo "validate.sh: ${#files[@]} input files, ${#locks[@]} lock files and the init scaffold match schemas/"

# The compiled output folders (and the pod scripts): kubernetes-validate for
# Kubernetes 1.31 to 1.37, the Flux and Argo CD CRD schemas, kustomize,
# yamllint and shellcheck.
bash scripts/validate-manifests.sh

# The CI integrations: the GitHub action and workflows, the GitLab example and
# the pre-commit hooks (docs/ci.md).
bash scripts/validate-integrations.sh

# checkov on every compiled output, skips explained in docs/security.md.
bash scripts/validate-security.sh

# The JSON that `plan` and `diff` print, against schemas/.
bash scripts/validate-json-output.sh

# The backup prune script against a real S3 API on loopback (moto) with the
# real AWS CLI.
bash scripts/test-backup-scripts.sh
