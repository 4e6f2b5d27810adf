# Writes the inputs of the golden/day2 scenarios (cluster files, the lock of
# each step, evidence) from examples/three-zone, running the compiler step by
# step with target/debug/tidb-gitops. Inputs only: the expected files come
# from `UPDATE_GOLDEN=1 cargo nextest run --test golden`, reviewed.
import json, os, re, shutil, subprocess, sys
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
bin = f"{root}/target/debug/tidb-gitops"
ex = f"{root}/examples/three-zone"
out = f"{root}/golden/day2"

def read(p): return open(p).read()
def write(p, s):
    os.makedirs(os.path.dirname(p), exist_ok=True); open(p, "w").write(s)

def folder(name, cluster, inventory, lock, base=None, args="", evidence=None):
    d = f"{out}/{name}"
    shutil.rmtree(d, ignore_errors=True)
    write(f"{d}/cluster.toml", cluster); write(f"{d}/inventory.toml", inventory); write(f"{d}/placement.lock", lock)
    if base:
        for k, v in zip(("cluster.toml", "inventory.toml", "placement.lock"), base):
            write(f"{d}/base/{k}", v)
    for k, v in (evidence or {}).items():
        write(f"{d}/{k}", json.dumps(v, indent=2) + "\n")
    write(f"{d}/args", args + "\n")

def place(cluster, inventory, lock, evidence=None):
    tmp = os.path.join(root, "target", "day2-inputs")
    shutil.rmtree(tmp, ignore_errors=True); os.makedirs(tmp)
    write(f"{tmp}/cluster.toml", cluster); write(f"{tmp}/inventory.toml", inventory); write(f"{tmp}/placement.lock", lock)
    args = [bin, "compile", "--out", "out"]
    for k, v in (evidence or {}).items():
        write(f"{tmp}/{k}", json.dumps(v)); args += ["--observed", k]
    r = subprocess.run(args, cwd=tmp, capture_output=True, text=True)
    if r.returncode != 0: sys.exit(r.stderr)
    return read(f"{tmp}/placement.lock")

def addr(i): return f"prod-tikv-{i}-0.prod-tikv-peer.tidb-prod.svc:20160"
def stores(states):
    return {"count": len(states), "stores": [
        {"store": {"id": 100 + i, "address": addr(i), "state_name": s}, "status": {}} for i, s in sorted(states.items())]}
def members(names):
    return {"header": {"cluster_id": 1}, "members": [{"name": n, "member_id": 1000 + k} for k, n in enumerate(names)], "leader": {"name": names[0]}}

C, I, L = read(f"{ex}/cluster.toml"), read(f"{ex}/inventory.toml"), read(f"{ex}/placement.lock")
C = C.replace("#:schema ../../schemas/cluster.schema.json\n", "")
I = I.replace("#:schema ../../schemas/inventory.schema.json\n", "")
cmd = "compile --out out --observed {ev} && plan --base base --out out"
plain = "compile --out out && plan --base base --out out"

# 1. Scale out TiKV by 3.
C12 = C.replace("replicas = 9", "replicas = 12")
folder("01-scale-out-tikv-by-3", C12, I, L, (C, I, L), plain)

# 2. Scale in TiKV by 2, over two compiles.
C7 = C.replace("replicas = 9", "replicas = 7")
folder("02-scale-in-tikv-1-leaving", C7, I, L, (C, I, L), plain)
L7a = place(C7, I, L)
leaving = [int(m) for m in re.findall(r'id = "tikv-(\d+)"\ncomponent = "tikv"\nnode = "[^"]+"\npath = "[^"]+"\nstate = "leaving"', L7a)]
assert len(leaving) == 2, leaving
ev = {"stores.json": stores({i: ("Tombstone" if i in leaving else "Up") for i in range(9)})}
folder("03-scale-in-tikv-2-tombstone", C7, I, L7a, (C7, I, L7a), cmd.format(ev="stores.json"), ev)
L7b = place(C7, I, L7a, ev)
# Without evidence the leaving stores wait.
ev_offline = {"stores.json": stores({i: ("Offline" if i in leaving else "Up") for i in range(9)})}
folder("04-scale-in-tikv-waits-while-offline", C7, I, L7a, (C7, I, L7a), cmd.format(ev="stores.json"), ev_offline)

# 3. PD scale out from 3 to 5.
C5 = C.replace("[pd]\nreplicas = 3", "[pd]\nreplicas = 5")
assert C5 != C
folder("05-pd-scale-out-3-to-5", C5, I, L, (C, I, L), plain)

# 4. PD member replaced after its node died (node-b1 holds pd-1 and tikv-1).
Idown = I.replace('name = "node-b1"\n', 'name = "node-b1"\nstate = "down"\n')
assert Idown != I
folder("06-node-down-pd-and-tikv-replaced", C, Idown, L, (C, I, L), plain)
Ld1 = place(C, Idown, L)
# The member list no longer names pd-1; the replacement stores are not Up yet.
ev = {"members.json": members(["pd-0", "pd-2", "pd-3"])}
folder("07-failed-pd-member-deleted", C, Idown, Ld1, (C, Idown, Ld1), cmd.format(ev="members.json"), ev)
Ld2 = place(C, Idown, Ld1, ev)
# Every running store Up, the replacement tikv-9 included: delete tikv-1's store.
ev = {"stores.json": stores({**{i: "Up" for i in range(10) if i != 1}, 1: "Down"})}
folder("08-failover-replacement-up-store-deleted", C, Idown, Ld2, (C, Idown, Ld2), "compile --observed stores.json && plan --base base", ev)
Ld3 = place(C, Idown, Ld2, ev)
ev = {"stores.json": stores({**{i: "Up" for i in range(10) if i != 1}, 1: "Tombstone"})}
folder("09-failover-tombstone-reclaim-waits-for-node", C, Idown, Ld3, (C, Idown, Ld3), "compile --observed stores.json && plan --base base", ev)
Ld4 = place(C, Idown, Ld3, ev)
# The node returns: its old directories are reclaimed, not reused.
folder("10-node-returns-directories-reclaimed", C, I, Ld4, (C, Idown, Ld4), plain)
# Reclaim completes.
ev = {"reclaims.json": {"apiVersion": "v1", "kind": "List", "items": [
    {"metadata": {"name": "x", "labels": {"tidb-gitops.io/reclaim": "tikv-1"}}, "status": {"succeeded": 1}},
    {"metadata": {"name": "y", "labels": {"tidb-gitops.io/reclaim": "pd-1"}}, "status": {"active": 1}}]}}
folder("11-reclaim-completes", C, I, Ld4, (C, I, Ld4), cmd.format(ev="reclaims.json"), ev)

# 5. Evidence that contradicts the lock.
ev = {"stores.json": stores({**{i: "Up" for i in range(9)}, 3: "Tombstone"})}
folder("12-evidence-contradicts-up-store-tombstone", C, I, L, None, "compile --out out --observed stores.json", ev)
bad = stores({i: "Up" for i in range(9)})
bad["stores"].append({"store": {"id": 999, "address": "other-tikv-0-0.other-tikv-peer.x.svc:20160", "state_name": "Up"}})
ev = {"stores.json": bad, "members.json": members(["pd-0", "pd-1", "pd-2", "pd-7"])}
folder("13-evidence-contradicts-unknown-store-and-member", C, I, L, None, "compile --out out --observed stores.json --observed members.json", ev)
# Scale in refused: PD by two at once.
C1 = C.replace("[pd]\nreplicas = 3", "[pd]\nreplicas = 1").replace("max_replicas = 3", "max_replicas = 1")
folder("14-pd-scale-in-by-two-refused", C1, I, L, None, "compile --out out")
print("ok")

# Scale in below max_replicas: refused.
C2 = C.replace("replicas = 9", "replicas = 2")
folder("15-tikv-scale-in-below-max-replicas-refused", C2, I, L, None, "compile --out out")
# A destroyed node: its store is deleted with ?force once the replacement runs.
Idest = I.replace('name = "node-a2"\n', 'name = "node-a2"\nstate = "destroyed"\n')
assert Idest != I
Ldest = place(C, Idest, L)
ev = {"stores.json": stores({**{i: "Up" for i in range(10) if i != 6}, 6: "Down"})}
folder("16-destroyed-node-store-deleted-with-force", C, Idest, Ldest, (C, Idest, Ldest), cmd.format(ev="stores.json"), ev)
# A reclaim declared done by hand.
Cack = C + '\n[[reclaimed]]\ninstance = "pd-1"\nreason = "node-b1 was reimaged; its disks are empty"\n\n[[reclaimed]]\ninstance = "tikv-4"\nreason = "a stale entry: tikv-4 is up"\n'
folder("17-reclaim-acknowledged-by-hand", Cack, Idown, Ld4, (C, Idown, Ld4), plain)
print("ok2")
