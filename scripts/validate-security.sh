#!/usr/bin/env bash
# Security review of the compiled manifests with checkov (docs/security.md):
#
#   scripts/validate-security.sh
#
# Scans, in one checkov run, every compiled output folder in the tree (the
# folders under examples/ and golden/ with a `.tidb-gitops` marker: the
# examples, the compile scenarios, the day-2 steps with their delete and
# reclaim Jobs, the backup CronJobs) and a fresh compile of each shipped
# example, with the settings of .checkov.yaml: the Kubernetes framework,
# offline, the skipped checks each explained in docs/security.md, plus this
# project's own check scripts/checkov/host_path.py (hostPath only in a reclaim
# Job, on exactly its retired directory). Any failed check fails the script.
#
# Then the negative controls: tampered copies of compiled objects (a
# privileged container, privilege escalation allowed, a service account
# token mounted again, an extra hostPath in a StatefulSet, a reclaim Job
# whose hostPath is widened to the parent directory) must each fail the check
# that guards it, or the review above proves nothing.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$("$root/scripts/validators.sh" security)
py="$bin/python"
cd "$root"

# Offline: no API key, no download of the vendor's policies or guidelines, no
# check for a newer release.
unset BC_API_KEY PRISMA_API_URL
export CKV_SKIP_PACKAGE_UPDATE_CHECK=true BC_SKIP_MAPPING=TRUE PYTHONDONTWRITEBYTECODE=1

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }
start=$(now)

[ -x target/debug/tidb-gitops ] || cargo build --quiet
scan="$scratch/scan"
mkdir -p "$scan"
mapfile -t outputs < <(find examples golden -name .tidb-gitops -type f -printf '%h\n' | sort)
for out in "${outputs[@]}"; do
  cp -r "$out" "$scan/$(echo "$out" | tr / _)"
done
# The examples compiled now, from copies (compile writes the lock back).
for example in examples/minimal examples/three-zone; do
  copy="$scratch/src/${example#examples/}"
  mkdir -p "$copy"
  cp "$example"/cluster.toml "$example"/inventory.toml "$example"/placement.lock "$copy"/
  ./target/debug/tidb-gitops compile "$copy" --out "$scan/compiled_${example#examples/}" >/dev/null 2>&1 || {
    echo "validate-security: tidb-gitops compile $example failed" >&2
    exit 1
  }
done

# Runs checkov on a folder and writes its JSON report; checkov exits 1 on a
# failed check, so only 0 and 1 are reports.
checkov_json() {
  local dir=$1 report=$2 rc=0
  "$bin/checkov" --config-file .checkov.yaml -d "$dir" -o json >"$report" 2>"$report.err" || rc=$?
  if [ "$rc" -gt 1 ]; then
    echo "validate-security: checkov crashed (exit $rc) on $dir:" >&2
    cat "$report.err" >&2
    exit 1
  fi
}

# Prints each failed check as `CHECK_ID<TAB>resource<TAB>file`, and on stderr
# a summary; exits 3 if checkov scanned nothing or our own check did not run.
summarise() {
  "$py" - "$1" "$2" <<'PY'
import json, sys
data = json.load(open(sys.argv[1]))
reports = data if isinstance(data, list) else [data]
failed, passed, resources = [], {}, 0
for r in reports:
    resources += r.get("summary", {}).get("resource_count", 0)
    results = r.get("results", {})
    for f in results.get("failed_checks", []):
        failed.append(f)
    for p in results.get("passed_checks", []):
        passed[p["check_id"]] = passed.get(p["check_id"], 0) + 1
for f in sorted(failed, key=lambda f: (f["check_id"], f["file_path"])):
    print(f'{f["check_id"]}\t{f["resource"]}\t{f["file_path"].lstrip("/")}\t{f["check_name"]}')
if sys.argv[2] == "require-scan" and (resources == 0 or not passed.get("CKV_TIDBGITOPS_1")):
    print(f"checkov scanned {resources} resources; CKV_TIDBGITOPS_1 passed "
          f"{passed.get('CKV_TIDBGITOPS_1', 0)} times", file=sys.stderr)
    sys.exit(3)
print(f"{resources} resources, {sum(passed.values())} checks passed, {len(failed)} failed",
      file=sys.stderr)
PY
}

checkov_json "$scan" "$scratch/report.json"
if ! summarise "$scratch/report.json" require-scan >"$scratch/failed.tsv" 2>"$scratch/summary"; then
  echo "validate-security: FAILED: checkov did not scan the outputs: $(cat "$scratch/summary")" >&2
  exit 1
fi
if [ -s "$scratch/failed.tsv" ]; then
  echo "validate-security: FAILED: checkov findings not explained in docs/security.md:" >&2
  sed 's/^/  /' "$scratch/failed.tsv" >&2
  echo "  (fix the manifest builders, or skip the check in .checkov.yaml with its reason in docs/security.md)" >&2
  exit 1
fi
summary=$(cat "$scratch/summary")

# ------------------------------------------------------- negative controls
neg="$scratch/neg"
mkdir -p "$neg"
pick() { # the first file under golden/ whose path matches $1 and holds $2
  find golden -path "$1" -name '*.yaml' -print0 | sort -z | xargs -0 grep -l -- "$2" | head -n 1
}
tikv=$(pick '*/examples/three-zone/deploy/manifests/*tikv*' '^      - name: tikv$')
pd=$(pick '*/examples/three-zone/deploy/manifests/*pd-*' '^      - name: pd$')
tidb=$(pick '*/examples/three-zone/deploy/manifests/*' '^      - name: tidb$')
reclaim=$(pick '*/deploy/manifests/*reclaim*' 'hostPath:')
for f in "$tikv" "$pd" "$tidb" "$reclaim"; do
  if [ -z "$f" ]; then
    echo "validate-security: a negative control found no object to tamper with" >&2
    exit 1
  fi
done
# Each control: a file name, the check that must fail on it, the source file
# and a Python edit of its objects (`o` is each object, `pod` its pod spec,
# `c` its first container).
controls=(
  "privileged|CKV_K8S_16|$tikv|c['securityContext']['privileged'] = True"
  "escalation|CKV_K8S_20|$pd|c['securityContext']['allowPrivilegeEscalation'] = True"
  "token|CKV_K8S_38|$tidb|pod.pop('automountServiceAccountToken')"
  "extra-host-path|CKV_TIDBGITOPS_1|$pd|pod['volumes'].append({'name': 'host', 'hostPath': {'path': '/var/lib', 'type': 'Directory'}})"
  "wider-reclaim|CKV_TIDBGITOPS_1|$reclaim|[v['hostPath'].update(path=v['hostPath']['path'].rsplit('/', 1)[0] or '/') for v in pod['volumes'] if 'hostPath' in v]"
  "root-reclaim|CKV_TIDBGITOPS_1|$reclaim|[v['hostPath'].update(path='/') for v in pod['volumes'] if 'hostPath' in v]"
  "untyped-reclaim|CKV_TIDBGITOPS_1|$reclaim|[v['hostPath'].pop('type') for v in pod['volumes'] if 'hostPath' in v]"
)
for control in "${controls[@]}"; do
  IFS='|' read -r name _ source edit <<<"$control"
  "$py" - "$source" "$neg/$name.yaml" "$edit" <<'PY'
import sys, yaml
source, target, edit = sys.argv[1:]
docs = [d for d in yaml.safe_load_all(open(source)) if d]
changed = 0
for o in docs:
    if o.get("kind") not in ("StatefulSet", "Job"):
        continue
    pod = o["spec"]["template"]["spec"]
    c = pod["containers"][0]
    exec(edit)
    changed += 1
if not changed:
    sys.exit(f"no workload in {source}")
yaml.safe_dump_all(docs, open(target, "w"), sort_keys=False)
PY
done
checkov_json "$neg" "$scratch/neg.json"
summarise "$scratch/neg.json" any >"$scratch/neg.tsv" 2>/dev/null
bad=0
for control in "${controls[@]}"; do
  IFS='|' read -r name check source _ <<<"$control"
  if ! awk -F'\t' -v c="$check" -v f="$name.yaml" '$1 == c && $3 == f { found = 1 } END { exit !found }' "$scratch/neg.tsv"; then
    echo "validate-security: negative control '$name' (${source#golden/}) did not fail $check" >&2
    bad=1
  fi
done
if [ "$bad" -ne 0 ]; then
  echo "validate-security: FAILED: a tampered copy passed checkov; the review above proves nothing" >&2
  sed 's/^/  /' "$scratch/neg.tsv" >&2
  exit 1
fi
echo "validate-security: ${#outputs[@]} output folders and 2 fresh compiles pass checkov $("$bin/checkov" --version) with .checkov.yaml ($summary); ${#controls[@]} tampered copies fail as they must ($(since "$start"))"
