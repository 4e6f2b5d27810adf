"""A checkov check of this project's own (docs/security.md): the only
hostPath volume the compiler may write is the reclaim Job's, of type
Directory, on exactly the retired directory that the Job's HOST_PATH names.
Any other hostPath, a wider path or a missing type fails."""

from __future__ import annotations

import posixpath
from typing import Any

from checkov.common.models.enums import CheckCategories, CheckResult
from checkov.kubernetes.checks.resource.base_spec_check import BaseK8Check

RECLAIM_LABEL = "app.kubernetes.io/component"


def pod_spec(conf: dict[str, Any]) -> dict[str, Any]:
    if conf.get("kind") == "Pod":
        spec = conf.get("spec")
    elif conf.get("kind") == "CronJob":
        spec = (
            conf.get("spec", {}).get("jobTemplate", {}).get("spec", {}).get("template", {}).get("spec")
        )
    else:
        spec = conf.get("spec", {}).get("template", {}).get("spec")
    return spec if isinstance(spec, dict) else {}


def host_path_ok(conf: dict[str, Any]) -> bool:
    spec = pod_spec(conf)
    volumes = [v for v in spec.get("volumes") or [] if isinstance(v, dict)]
    host = [v for v in volumes if "hostPath" in v]
    if not host:
        return True
    labels = (conf.get("metadata") or {}).get("labels") or {}
    if conf.get("kind") != "Job" or labels.get(RECLAIM_LABEL) != "reclaim" or len(host) != 1:
        return False
    volume = host[0]
    source = volume["hostPath"] or {}
    path = source.get("path")
    if source.get("type") != "Directory" or not isinstance(path, str):
        return False
    # Absolute, normalised (no "..", no trailing slash) and never the root.
    if not path.startswith("/") or posixpath.normpath(path) != path or path == "/":
        return False
    containers = [c for c in spec.get("containers") or [] if isinstance(c, dict)]
    if len(containers) != 1 or spec.get("initContainers"):
        return False
    env = {
        e.get("name"): e.get("value")
        for e in containers[0].get("env") or []
        if isinstance(e, dict)
    }
    # The Job's own record of the directory it retires must be that path,
    # and the pod must be pinned to the node that holds it.
    if env.get("HOST_PATH") != path:
        return False
    node = (spec.get("nodeSelector") or {}).get("kubernetes.io/hostname")
    return bool(node) and env.get("NODE_NAME") == node


class HostPathOnlyForReclaim(BaseK8Check):
    def __init__(self) -> None:
        super().__init__(
            name="hostPath only in a reclaim Job, on exactly its retired directory",
            id="CKV_TIDBGITOPS_1",
            categories=(CheckCategories.KUBERNETES,),
            supported_entities=(
                "Pod",
                "Deployment",
                "DaemonSet",
                "StatefulSet",
                "ReplicaSet",
                "ReplicationController",
                "Job",
                "CronJob",
            ),
        )

    def scan_spec_conf(self, conf: dict[str, Any]) -> CheckResult:
        return CheckResult.PASSED if host_path_ok(conf) else CheckResult.FAILED


check = HostPathOnlyForReclaim()
