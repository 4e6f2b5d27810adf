#!/usr/bin/env bash
# Checks compiled output folders with external validators:
#
#   scripts/validate-manifests.sh [DEPLOY_DIR...]
#
# Without arguments: every folder under examples/ and golden/ that holds a
# `.tidb-gitops` marker file (the folders `tidb-gitops compile` writes).
# For each output folder:
#   - every object under manifests/ passes `kubernetes-validate --strict` for
#     each Kubernetes minor release from 1.31 to 1.37 (one run over all files,
#     all versions, split over the cores);
#   - the Flux and Argo CD objects under gitops/ (and any custom resource under
#     manifests/) pass the openAPIV3Schema of their CRD in
#     ../shared/reference/crds, unknown fields rejected (scripts/crd_validate.py);
#   - every kustomization.yaml lists exactly the files and folders beside it,
#     so the root kustomization reaches every object file;
#   - `kubectl kustomize` builds the folder into exactly the objects of
#     manifests/ (skipped, with a note, above KUSTOMIZE_LIMIT object files:
#     kustomize takes minutes on thousands of objects);
#   - `yamllint --strict` with .yamllint.yaml passes on every .yaml file;
#   - `shellcheck` passes on every ConfigMap value whose key ends in `.sh`.
# Also `shellcheck` on src/pod/*.sh. Before any of that, a small valid output
# folder made here must pass every check, and a broken copy of it for each
# check must fail it (negative controls): a check that accepts anything proves
# nothing. Any failure makes the exit status non-zero. NEGATIVE_CONTROLS_VERBOSE=1
# prints what each broken copy was rejected with; KUSTOMIZE_LIMIT changes 300.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
outputs=()
for dir in "$@"; do
  if [ ! -f "$dir/.tidb-gitops" ]; then
    echo "validate-manifests: $dir has no .tidb-gitops marker: not an output folder of tidb-gitops" >&2
    exit 1
  fi
  outputs+=("$(cd "$dir" && pwd)")
done
bin=$("$root/scripts/validators.sh")
py="$bin/python"
cd "$root"

versions=(1.31 1.32 1.33 1.34 1.35 1.36 1.37)
kustomize_limit=${KUSTOMIZE_LIMIT:-300}
jobs=$(nproc 2>/dev/null || echo 2)
crds="$root/../shared/reference/crds"
if [ ! -d "$crds" ]; then
  echo "validate-manifests: no CRD folder at $crds (shared/ must sit beside the project)" >&2
  exit 1
fi
crds=$(cd "$crds" && pwd)
command -v kubectl >/dev/null || { echo "validate-manifests: kubectl is not installed" >&2; exit 1; }

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
helper="$scratch/helper.py"
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }
# A path as the messages show it: relative to the project when inside it.
show() { case "$1" in "$root"/*) echo "${1#"$root"/}" ;; *) echo "$1" ;; esac; }

cat > "$helper" <<'PY'
"""Helpers of validate-manifests.sh; see the subcommands below."""
import collections
import contextlib
import functools
import io
import multiprocessing
import os
import re
import sys

import yaml

LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_docs(path):
    with open(path) as f:
        return [d for d in yaml.load_all(f, Loader=LOADER) if d is not None]


def identity(doc):
    meta = doc.get("metadata") or {}
    return "{} {} {}/{}".format(doc.get("apiVersion"), doc.get("kind"), meta.get("namespace", ""), meta.get("name"))


def inventory(deploy, work, label):
    """Lists the output's files into work/ and extracts its ConfigMap scripts."""
    manifests = os.path.join(deploy, "manifests")
    if not os.path.isdir(manifests):
        print(f"{label}: no manifests/ folder")
        return 1
    objects, all_yaml, gitops, identities = [], [], [], []
    scripts = {}  # content -> [(path, key)]
    bad = 0
    for folder, dirs, files in os.walk(deploy):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, deploy)
            if name.endswith(".yml"):
                print(f"{label}/{rel}: generated YAML files end in .yaml")
                bad += 1
            if not name.endswith(".yaml"):
                continue
            all_yaml.append(path)
            if rel.startswith("gitops" + os.sep):
                gitops.append(path)
            if not rel.startswith("manifests" + os.sep) or name == "kustomization.yaml":
                continue
            objects.append(path)
            try:
                docs = load_docs(path)
            except yaml.YAMLError as e:
                print(f"{label}/{rel}: not YAML: {e}")
                bad += 1
                continue
            for doc in docs:
                if not isinstance(doc, dict) or "kind" not in doc:
                    print(f"{label}/{rel}: a document without kind")
                    bad += 1
                    continue
                identities.append(identity(doc))
                if doc["kind"] == "ConfigMap":
                    for key, value in (doc.get("data") or {}).items():
                        if key.endswith(".sh"):
                            scripts.setdefault(value, []).append((f"{label}/{rel}", key))
    out = os.path.join(work, "sh")
    os.makedirs(out, exist_ok=True)
    script_files = []
    for value, places in scripts.items():
        where, key = places[0]
        # Named after the ConfigMap file and key, so shellcheck's messages point there.
        target = os.path.join(out, where.lstrip("/"), key)
        # Every copy is written and checked: a script sources its
        # neighbours in the same ConfigMap by name, and shellcheck follows a
        # source only to a file it was given.
        for other_where, other_key in places:
            copy = os.path.join(out, other_where.lstrip("/"), other_key)
            os.makedirs(os.path.dirname(copy), exist_ok=True)
            with open(copy, "w") as f:
                f.write(value if isinstance(value, str) else "")
            if copy != target:
                script_files.append(os.path.relpath(copy, out))
        if not isinstance(value, str):
            print(f"{where}: data.{key} is not a string")
            bad += 1
        script_files.append(os.path.relpath(target, out))
        if len(places) > 1:
            with open(os.path.join(work, "script-copies"), "a") as f:
                f.write(f"{where}/{key}: also in {len(places) - 1} other ConfigMap(s)\n")
    for name, items in (("objects", objects), ("yaml", all_yaml), ("gitops", gitops),
                        ("identities", sorted(identities)), ("scripts", script_files)):
        with open(os.path.join(work, name), "w") as f:
            f.write("".join(i + "\n" for i in items))
    with open(os.path.join(work, "counts"), "w") as f:
        f.write(f"{len(objects)} {len(identities)} {len(gitops)} {len(script_files)} "
                f"{sum(len(p) for p in scripts.values())}\n")
    return 1 if bad else 0


def listing(deploy, label):
    """Every kustomization.yaml lists exactly the YAML files and the folders
    beside it, and the root one reaches every object file."""
    bad = []
    reached = set()

    def walk(folder):
        kfile = os.path.join(folder, "kustomization.yaml")
        rel = os.path.relpath(kfile, deploy)
        if not os.path.isfile(kfile):
            bad.append(f"{os.path.relpath(folder, deploy)}: no kustomization.yaml")
            return
        doc = load_docs(kfile)
        resources = (doc[0] if doc else {}).get("resources") or []
        if len(set(resources)) != len(resources):
            bad.append(f"{rel}: a resource is listed twice")
        for entry in resources:
            path = os.path.normpath(os.path.join(folder, entry))
            if os.path.isdir(path):
                walk(path)
            elif os.path.isfile(path):
                reached.add(path)
            else:
                bad.append(f"{rel}: lists {entry}, which does not exist")

    walk(deploy)
    for folder, dirs, files in os.walk(os.path.join(deploy, "manifests")):
        for name in files:
            path = os.path.normpath(os.path.join(folder, name))
            if name.endswith(".yaml") and name != "kustomization.yaml" and path not in reached:
                bad.append(f"{os.path.relpath(path, deploy)}: no kustomization.yaml reaches it")
    for line in sorted(bad):
        print(f"{label}/{line}")
    return 1 if bad else 0


def compare(built, expected_file):
    """The objects kustomize built are exactly those of manifests/."""
    with open(built) as f:
        got = sorted(identity(d) for d in yaml.load_all(f, Loader=LOADER) if isinstance(d, dict))
    with open(expected_file) as f:
        want = [line.rstrip("\n") for line in f]
    if got == want:
        print(len(got))
        return 0
    missing = collections.Counter(want) - collections.Counter(got)
    extra = collections.Counter(got) - collections.Counter(want)
    print(f"kubectl kustomize built {len(got)} objects, manifests/ holds {len(want)}")
    for name, items in (("missing", missing), ("unexpected", extra)):
        for item in sorted(items.elements())[:20]:
            print(f"  {name}: {item}")
    return 1


def shipped(versions):
    """Which requested minor versions kubernetes-validate ships strict schemas for."""
    import importlib_resources
    import kubernetes_validate.utils as kv
    from kubernetes_validate.version import __version__
    folder = importlib_resources.files("kubernetes_validate").joinpath("kubernetes-json-schema")
    strict = sorted({kv.major_minor(re.sub(r"^v([^-]*)-.*", r"\1", p.name)) for p in folder.iterdir()
                     if p.name.endswith("-local-strict")}, key=lambda v: tuple(map(int, v.split("."))))
    missing = [v for v in versions if v not in strict]
    print(f"kubernetes-validate {__version__} ships strict schemas for Kubernetes {', '.join(strict)}")
    if missing:
        print(f"NOT SHIPPED: {', '.join(missing)}: kubernetes-validate would fall back to an older "
              "release's schemas for these, so they cannot be validated as asked")
        return 1
    return 0


def _kv_worker(args):
    crd_kinds, argv = args
    from kubernetes_validate.__main__ import main
    out = io.StringIO()
    sys.argv = ["kubernetes-validate"] + argv
    rc = 0
    try:
        with contextlib.redirect_stdout(out):
            rc = main()
    except BaseException as e:  # a crash (e.g. an object without a name) is a failure too
        out.write(f"ERROR kubernetes-validate stopped: {type(e).__name__}: {e}\n")
        rc = 1
    kept, failures = [], 0
    pattern = re.compile(r"^WARN \S+ Couldn't find schema for kind (\S+) with api version (\S+) ")
    for line in out.getvalue().splitlines():
        m = pattern.match(line)
        if m and (m.group(2), m.group(1)) in crd_kinds:
            continue  # a custom resource: crd_validate.py checks it
        if line.startswith(("WARN", "ERROR", "FATAL")):
            failures += 1
        kept.append(line)
    return (1 if (rc or failures) else 0), kept


def kubernetes_validate(crd_dir, jobs, versions, files):
    """`kubernetes-validate --strict -k V ...` over all files, split over jobs
    processes. Its CLI re-reads the 1.8 MB definitions file and re-parses each
    file once per object and version; neither changes during the run, so both
    reads are cached. Any WARN (no schema: a wrong apiVersion or kind) fails,
    except for the kinds the CRDs define, which crd_validate.py checks."""
    import kubernetes_validate.utils as kv
    kv.schema_contents = functools.lru_cache(maxsize=None)(kv.schema_contents)
    kv.resources_from_file = functools.lru_cache(maxsize=None)(kv.resources_from_file)
    kv.all_versions = functools.lru_cache(maxsize=None)(kv.all_versions)
    sys.path.insert(0, os.environ["SCRIPTS"])
    sys.dont_write_bytecode = True  # no __pycache__ in the work tree
    import crd_validate
    crd_kinds = crd_validate.known_kinds(crd_validate.load_crds(crd_dir))
    base = ["--strict", "--quiet"] + [a for v in versions for a in ("-k", v)]
    shards = max(1, min(jobs, len(files) // 25))
    tasks = [(crd_kinds, base + files[i::shards]) for i in range(shards)]
    if shards == 1:
        results = [_kv_worker(tasks[0])]
    else:
        with multiprocessing.get_context("fork").Pool(shards) as pool:
            results = pool.map(_kv_worker, tasks)
    rc = 0
    for code, lines in results:
        rc |= code
        for line in lines:
            print(line)
    return rc


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "inventory":
        return inventory(*args)
    if cmd == "listing":
        return listing(*args)
    if cmd == "compare":
        return compare(*args)
    if cmd == "shipped":
        return shipped(args)
    if cmd == "kubernetes-validate":
        crd_dir, jobs, versions, list_file = args[0], int(args[1]), args[2].split(","), args[3]
        with open(list_file) as f:
            files = [line.rstrip("\n") for line in f if line.strip()]
        return kubernetes_validate(crd_dir, jobs, versions, files)
    raise SystemExit(f"unknown helper command {cmd}")


if __name__ == "__main__":
    sys.exit(main())
PY
export SCRIPTS="$root/scripts"
helper() { "$py" "$helper" "$@"; }

# --------------------------------------------------------------- the checks
# Each takes an output folder and its work folder (filled by `inventory`),
# prints what is wrong and returns non-zero when something is.

inventory() { # DEPLOY WORK
  mkdir -p "$2"
  helper inventory "$1" "$2" "$(show "$1")"
}

check_kubernetes() {
  local files
  mapfile -t files < "$2/objects"
  [ "${#files[@]}" -gt 0 ] || return 0
  if ! helper kubernetes-validate "$crds" "$jobs" "$(IFS=,; echo "${versions[*]}")" "$2/objects" > "$2/kubernetes-validate.log" 2>&1; then
    sed "s| $root/| |; s/^/  /" "$2/kubernetes-validate.log" | head -n 60
    return 1
  fi
}

check_crds() {
  if [ ! -s "$2/gitops" ]; then
    echo "  $(show "$1"): no Flux or Argo CD objects under gitops/"
    return 1
  fi
  # Custom resources under manifests/ too; built-in kinds there are left to
  # kubernetes-validate.
  local rc=0
  "$py" "$root/scripts/crd_validate.py" --quiet --crds "$crds" "@$2/gitops" > "$2/crd.log" 2>&1 || rc=1
  if [ -s "$2/objects" ]; then
    "$py" "$root/scripts/crd_validate.py" --quiet --skip-builtin --crds "$crds" "@$2/objects" >> "$2/crd.log" 2>&1 || rc=1
  fi
  if [ "$rc" -ne 0 ]; then
    sed "s|^$root/||; s/^/  /" "$2/crd.log" | head -n 60
    return 1
  fi
  # Rules the CEL subset cannot evaluate are printed, never dropped silently.
  if grep -q 'not evaluated' "$2/crd.log"; then sed 's/^/  /' "$2/crd.log"; fi
}

check_listing() {
  if ! helper listing "$1" "$(show "$1")" > "$2/listing.log" 2>&1; then
    sed 's/^/  /' "$2/listing.log"
    return 1
  fi
}

check_kustomize() {
  if ! kubectl kustomize "$1" > "$2/kustomize.out" 2> "$2/kustomize.err"; then
    echo "  kubectl kustomize $(show "$1") failed:"
    sed 's/^/    /' "$2/kustomize.err" | head -n 20
    return 1
  fi
  if ! helper compare "$2/kustomize.out" "$2/identities" > "$2/kustomize.cmp"; then
    sed 's/^/  /' "$2/kustomize.cmp"
    return 1
  fi
}

check_yamllint() {
  local files
  mapfile -t files < "$2/yaml"
  [ "${#files[@]}" -gt 0 ] || return 0
  # yamllint takes about 6 ms a file: split large outputs over the cores.
  local per=$(( (${#files[@]} + jobs - 1) / jobs ))
  [ "$per" -ge 100 ] || per=100
  if ! printf '%s\0' "${files[@]}" \
    | xargs -0 -n "$per" -P "$jobs" "$bin/yamllint" --strict -f parsable -c "$root/.yamllint.yaml" > "$2/yamllint.log" 2>&1; then
    sort "$2/yamllint.log" | sed "s|^$root/||; s/^/  /" | head -n 60
    return 1
  fi
}

run_shellcheck() { # FOLDER FILE... (files relative to FOLDER, as the messages show them)
  local dir=$1
  shift
  [ "$#" -gt 0 ] || return 0
  # --norc: the same checks on every machine; disable one in the script itself.
  (cd "$dir" && "$bin/shellcheck" --norc -f gcc "$@") > "$scratch/shellcheck.log" 2>&1 || {
    sed 's/^/  /' "$scratch/shellcheck.log" | head -n 60
    return 1
  }
}

check_shell() {
  local files
  mapfile -t files < "$2/scripts"
  run_shellcheck "$2/sh" "${files[@]}"
}

# Runs every check on one output folder and prints its one-line summary.
total_objects=0
validate_output() { # DEPLOY WORK
  local deploy=$1 work=$2 start failed=() kust
  start=$(now)
  if ! inventory "$deploy" "$work" > "$work.inventory" 2>&1; then
    sed 's/^/  /' "$work.inventory"
    echo "validate-manifests: $(show "$deploy"): FAILED (cannot read the output folder)"
    return 1
  fi
  local files docs gitops scripts copies
  read -r files docs gitops scripts copies < "$work/counts"
  check_kubernetes "$deploy" "$work" || failed+=("kubernetes-validate")
  check_crds "$deploy" "$work" || failed+=("CRD schemas")
  check_listing "$deploy" "$work" || failed+=("kustomization lists")
  if [ "$files" -gt "$kustomize_limit" ]; then
    kust="kubectl kustomize skipped ($files object files > $kustomize_limit)"
    echo "  note: $(show "$deploy"): $kust"
  elif check_kustomize "$deploy" "$work"; then
    kust="kubectl kustomize builds all $docs"
  else
    kust="kubectl kustomize FAILED"
    failed+=("kubectl kustomize")
  fi
  check_yamllint "$deploy" "$work" || failed+=("yamllint")
  check_shell "$deploy" "$work" || failed+=("shellcheck")
  local summary="$docs objects in $files files x ${#versions[@]} Kubernetes versions, $gitops Flux/Argo CD files, $kust, $scripts scripts ($copies ConfigMap keys) shellchecked"
  if [ "${#failed[@]}" -gt 0 ]; then
    local joined
    joined=$(printf '%s, ' "${failed[@]}")
    echo "validate-manifests: $(show "$deploy"): FAILED: ${joined%, } [$summary] ($(since "$start"))"
    return 1
  fi
  total_objects=$((total_objects + docs))
  echo "validate-manifests: $(show "$deploy"): ok: $summary ($(since "$start"))"
}

# ------------------------------------------------- Kubernetes versions shipped
if ! helper shipped "${versions[@]}" > "$scratch/shipped" 2>&1; then
  sed 's/^/validate-manifests: /' "$scratch/shipped"
  echo "validate-manifests: FAILED: Kubernetes ${versions[*]} cannot all be validated with the pinned kubernetes-validate" >&2
  exit 1
fi
sed 's/^/validate-manifests: /' "$scratch/shipped"

# ------------------------------------------------------------ control output
# A small valid output folder in the compiler's layout. Every check must
# accept it, and reject each broken copy of it below.
control="$scratch/control/deploy"
mkdir -p "$control"/manifests/{00-base,01-pd-0} "$control"/gitops/{flux,argocd}
echo "Generated by tidb-gitops (validate-manifests control)." > "$control/.tidb-gitops"
cat > "$control/kustomization.yaml" <<'EOF'
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
- manifests/00-base
- manifests/01-pd-0
EOF
cat > "$control/manifests/00-base/kustomization.yaml" <<'EOF'
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
- namespace-tidb-ctl.yaml
- configmap-ctl-pd.yaml
- service-ctl-pd-peer.yaml
EOF
cat > "$control/manifests/00-base/namespace-tidb-ctl.yaml" <<'EOF'
apiVersion: v1
kind: Namespace
metadata:
  name: tidb-ctl
  annotations:
    argocd.argoproj.io/sync-wave: '0'
EOF
cat > "$control/manifests/00-base/configmap-ctl-pd.yaml" <<'EOF'
apiVersion: v1
kind: ConfigMap
metadata:
  name: ctl-pd
  namespace: tidb-ctl
  annotations:
    argocd.argoproj.io/sync-wave: '0'
data:
  pd.toml: |
    [replication]
    max-replicas = 3
  start.sh: |
    #!/bin/bash
    set -euo pipefail
    exec /pd-server --name="${POD_NAME}" --data-dir=/var/lib/pd --config=/etc/pd/pd.toml
EOF
cat > "$control/manifests/00-base/service-ctl-pd-peer.yaml" <<'EOF'
apiVersion: v1
kind: Service
metadata:
  name: ctl-pd-peer
  namespace: tidb-ctl
  annotations:
    argocd.argoproj.io/sync-wave: '0'
spec:
  clusterIP: None
  publishNotReadyAddresses: true
  selector:
    app.kubernetes.io/component: pd
  ports:
  - name: peer
    port: 2380
EOF
cat > "$control/manifests/01-pd-0/kustomization.yaml" <<'EOF'
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
- statefulset-ctl-pd-0.yaml
EOF
cat > "$control/manifests/01-pd-0/statefulset-ctl-pd-0.yaml" <<'EOF'
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: ctl-pd-0
  namespace: tidb-ctl
  annotations:
    argocd.argoproj.io/sync-wave: '1'
spec:
  serviceName: ctl-pd-peer
  replicas: 1
  selector:
    matchLabels:
      app.kubernetes.io/component: pd
  template:
    metadata:
      labels:
        app.kubernetes.io/component: pd
    spec:
      containers:
      - name: pd
        image: pingcap/pd:v8.5.1
        command:
        - /bin/sh
        - /usr/local/bin/start.sh
        volumeMounts:
        - name: scripts
          mountPath: /usr/local/bin/start.sh
          subPath: start.sh
      volumes:
      - name: scripts
        configMap:
          name: ctl-pd
          defaultMode: 493
EOF
cat > "$control/gitops/flux/gitrepository.yaml" <<'EOF'
apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata:
  name: ctl
  namespace: flux-system
spec:
  interval: 1m
  url: https://git.example.com/platform/tidb.git
  ref:
    branch: main
EOF
for wave in 00-base 01-pd-0; do
  cat > "$control/gitops/flux/kustomization-$wave.yaml" <<EOF
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: ctl-$wave
  namespace: flux-system
spec:
  interval: 10m
  path: ./ctl/deploy/manifests/$wave
  prune: true
  wait: true
  timeout: 5m
  deletionPolicy: Orphan
  sourceRef:
    kind: GitRepository
    name: ctl
EOF
done
cat >> "$control/gitops/flux/kustomization-01-pd-0.yaml" <<'EOF'
  dependsOn:
  - name: ctl-00-base
EOF
cat > "$control/gitops/argocd/application.yaml" <<'EOF'
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: ctl
  namespace: argocd
spec:
  project: default
  source:
    repoURL: https://git.example.com/platform/tidb.git
    targetRevision: main
    path: ctl/deploy/manifests
    directory:
      recurse: true
      exclude: kustomization.yaml
  destination:
    server: https://kubernetes.default.svc
    namespace: tidb-ctl
EOF

start=$(now)
if ! validate_output "$control" "$scratch/control.work" > "$scratch/control.log"; then
  cat "$scratch/control.log"
  echo "validate-manifests: FAILED: the checks reject the valid control output; fix the checks first" >&2
  exit 1
fi

# ---------------------------------------------------------- negative controls
# Each: a broken copy of the control output, the change, the check that must
# reject it, and a word its message must hold (so it fails for that reason).
controls=0
reject() { # NAME CHECK EXPECTED-TEXT FILE SED-SCRIPT
  local name=$1 check=$2 expect=$3 file=$4 edit=$5 copy work
  copy="$scratch/neg-$controls/deploy"
  work="$scratch/neg-$controls/work"
  mkdir -p "$(dirname "$copy")"
  cp -r "$control" "$copy"
  sed -i "$edit" "$copy/$file"
  if cmp -s "$control/$file" "$copy/$file"; then
    echo "validate-manifests: negative control '$name' did not change $file" >&2
    exit 1
  fi
  inventory "$copy" "$work" > /dev/null || true
  last_out="$work/out"
  if "$check" "$copy" "$work" > "$work/out" 2>&1; then
    echo "validate-manifests: FAILED: $check accepted $name; the check is not working" >&2
    exit 1
  fi
  if ! grep -q -- "$expect" "$work/out"; then
    cat "$work/out" >&2
    echo "validate-manifests: FAILED: $check rejected $name, but without '$expect' in its message" >&2
    exit 1
  fi
  controls=$((controls + 1))
  if [ -n "${NEGATIVE_CONTROLS_VERBOSE:-}" ]; then
    echo "--- $name ($check)"
    cat "$work/out"
  fi
}
sts=manifests/01-pd-0/statefulset-ctl-pd-0.yaml
reject "a container with an unknown field" check_kubernetes "'imagePullPolicyy' was unexpected" \
  "$sts" 's/^        image: \(.*\)/        image: \1\n        imagePullPolicyy: Always/'
# Every version's schemas must have caught it, not just one.
for v in "${versions[@]}"; do
  grep -q "against version $v: spec.template.spec.containers.0: Additional properties" "$last_out" || {
    echo "validate-manifests: FAILED: kubernetes-validate did not reject the unknown field against Kubernetes $v" >&2
    exit 1
  }
done
reject "a StatefulSet of apps/v2 (no schema: kubernetes-validate itself only warns)" check_kubernetes \
  "Couldn't find schema" "$sts" 's|^apiVersion: apps/v1|apiVersion: apps/v2|'
reject "a Flux Kustomization with a misspelt field" check_crds "'prunee' was unexpected" \
  gitops/flux/kustomization-00-base.yaml 's/^  prune: true/  prunee: true/'
reject "a Flux Kustomization whose interval is no duration" check_crds "does not match" \
  gitops/flux/kustomization-00-base.yaml 's/^  interval: 10m/  interval: 10 minutes/'
reject "an Argo CD Application with an unknown nested field" check_crds "'recursive' was unexpected" \
  gitops/argocd/application.yaml 's/^      recurse: true/      recursive: true/'
reject "a kustomization.yaml that lists a missing file" check_kustomize "service-ctl-pd-client.yaml" \
  manifests/00-base/kustomization.yaml 's/^- service-ctl-pd-peer.yaml/- service-ctl-pd-client.yaml/'
reject "a kustomization.yaml that forgets a file (kustomize)" check_kustomize "missing: v1 Service" \
  manifests/00-base/kustomization.yaml '/^- service-ctl-pd-peer.yaml/d'
reject "a kustomization.yaml that forgets a file (lists)" check_listing "no kustomization.yaml reaches it" \
  manifests/00-base/kustomization.yaml '/^- service-ctl-pd-peer.yaml/d'
reject "badly indented YAML" check_yamllint "(indentation)" \
  manifests/00-base/service-ctl-pd-peer.yaml 's|^    app.kubernetes.io/component: pd|     app.kubernetes.io/component: pd|'
reject "an implicit octal file mode" check_yamllint "(octal-values)" \
  "$sts" 's/defaultMode: 493/defaultMode: 0755/'
# shellcheck disable=SC2016 # the sed script is meant literally
reject "a pod script with an unquoted variable" check_shell "SC2086" \
  manifests/00-base/configmap-ctl-pd.yaml 's/--name="${POD_NAME}"/--name=$POD_NAME/'
total_objects=0
echo "validate-manifests: the control output passes every check; $controls broken copies of it are each rejected ($(since "$start"))"

# ------------------------------------------------------------- pod scripts
pod_failed=0
shopt -s nullglob
pod_scripts=(src/pod/*.sh)
shopt -u nullglob
if [ "${#pod_scripts[@]}" -gt 0 ]; then
  if run_shellcheck "$root" "${pod_scripts[@]}"; then
    echo "validate-manifests: shellcheck passes ${#pod_scripts[@]} scripts in src/pod"
  else
    echo "validate-manifests: src/pod: FAILED: shellcheck"
    pod_failed=1
  fi
else
  echo "validate-manifests: note: no src/pod/*.sh scripts yet"
fi

# ------------------------------------------------------------ output folders
if [ "$#" -eq 0 ]; then
  mapfile -t outputs < <(find "$root/examples" "$root/golden" -name .tidb-gitops -type f -printf '%h\n' | sort)
fi
if [ "${#outputs[@]}" -eq 0 ]; then
  echo "validate-manifests: note: no output folder (no .tidb-gitops marker under examples/ or golden/) to validate"
fi
failures=0
start=$(now)
for i in "${!outputs[@]}"; do
  validate_output "${outputs[$i]}" "$scratch/out-$i" || failures=$((failures + 1))
done
if [ "$failures" -gt 0 ] || [ "$pod_failed" -ne 0 ]; then
  echo "validate-manifests: FAILED: $failures of ${#outputs[@]} output folders fail validation$([ "$pod_failed" -eq 0 ] || echo "; src/pod scripts fail shellcheck")" >&2
  exit 1
fi
echo "validate-manifests: ${#outputs[@]} output folders ($total_objects objects) pass kubernetes-validate --strict for Kubernetes ${versions[0]}-${versions[-1]}, their CRD schemas, kustomize, yamllint and shellcheck ($(since "$start"))"
