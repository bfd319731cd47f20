"""What a real 1.30-era cluster answers, for the lab's ``realistic`` mode (the fleet benchmark's lab).

The default lab answers with the smallest documents that exercise the checks; a real kube-apiserver sends
much more: every built-in group in discovery (and the aggregated ``apidiscovery.k8s.io/v2`` documents when
the client asks for them), objects with ``managedFields``, Helm labels and annotations, nodes whose status
lists dozens of cached images, RBAC reviews listing every rule bound to the user (the bootstrap roles, an
aggregated ``admin`` role), flow-control headers on every answer and chunked bodies past 2 KiB. The shapes
follow recorded kube-apiserver 1.30 answers; the values are made up here (no recorded data is shipped).

:class:`RealisticProfile` is what :class:`~preflight_lab.apiserver.FakeKubeAPI` consults when it is set;
:func:`dress` and :func:`filler_objects` make a store's objects as heavy as a real cluster's.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from preflight_lab.rbac import Rule
from preflight_lab.store import ResourceRegistry, ResourceType

__all__ = [
    "AGGREGATED_DISCOVERY",
    "BUILTIN_GROUPS",
    "OPERATOR_RULES",
    "RealisticProfile",
    "dress",
    "filler_objects",
]

# The media type a client asks for (and gets) for aggregated discovery of /api and /apis.
AGGREGATED_DISCOVERY = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
_ALL = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
_RO = ("get", "list", "watch")
_STATUS = ("get", "patch", "update")
_CREATE = ("create",)

# (plural, kind, namespaced, verbs, shortNames, categories, subresources as (name, kind, verbs))
_Res = tuple[
    str, str, bool, tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[tuple[str, str, tuple[str, ...]], ...]
]


def _r(
    plural: str,
    kind: str,
    namespaced: bool = True,
    verbs: tuple[str, ...] = _ALL,
    short: tuple[str, ...] = (),
    categories: tuple[str, ...] = (),
    sub: tuple[tuple[str, str, tuple[str, ...]], ...] = (),
) -> _Res:
    return (plural, kind, namespaced, verbs, short, categories, sub)


def _status(kind: str) -> tuple[tuple[str, str, tuple[str, ...]], ...]:
    return (("status", kind, _STATUS),)


def _scaled(kind: str) -> tuple[tuple[str, str, tuple[str, ...]], ...]:
    return (("scale", "Scale", _STATUS), ("status", kind, _STATUS))


# Group -> version -> resources, as a 1.30 kube-apiserver serves them (preferred version first).
BUILTIN_GROUPS: dict[str, dict[str, tuple[_Res, ...]]] = {
    "": {
        "v1": (
            _r("bindings", "Binding", verbs=_CREATE),
            _r("componentstatuses", "ComponentStatus", False, ("get", "list"), ("cs",)),
            _r("configmaps", "ConfigMap", short=("cm",)),
            _r("endpoints", "Endpoints", short=("ep",)),
            _r("events", "Event", short=("ev",)),
            _r("limitranges", "LimitRange", short=("limits",)),
            _r(
                "namespaces",
                "Namespace",
                False,
                ("create", "delete", "get", "list", "patch", "update", "watch"),
                ("ns",),
                sub=(("finalize", "Namespace", ("update",)), ("status", "Namespace", _STATUS)),
            ),
            _r("nodes", "Node", False, short=("no",), sub=(("proxy", "NodeProxyOptions", _ALL[:1]), *_status("Node"))),
            _r("persistentvolumeclaims", "PersistentVolumeClaim", short=("pvc",), sub=_status("PersistentVolumeClaim")),
            _r("persistentvolumes", "PersistentVolume", False, short=("pv",), sub=_status("PersistentVolume")),
            _r(
                "pods",
                "Pod",
                short=("po",),
                categories=("all",),
                sub=(
                    ("attach", "PodAttachOptions", ("create", "get")),
                    ("binding", "Binding", _CREATE),
                    ("ephemeralcontainers", "Pod", _STATUS),
                    ("eviction", "Eviction", _CREATE),
                    ("exec", "PodExecOptions", ("create", "get")),
                    ("log", "Pod", ("get",)),
                    ("portforward", "PodPortForwardOptions", ("create", "get")),
                    ("proxy", "PodProxyOptions", ("create", "delete", "get", "patch", "update")),
                    ("resize", "Pod", _STATUS),
                    ("status", "Pod", _STATUS),
                ),
            ),
            _r("podtemplates", "PodTemplate"),
            _r(
                "replicationcontrollers",
                "ReplicationController",
                short=("rc",),
                categories=("all",),
                sub=_scaled("ReplicationController"),
            ),
            _r("resourcequotas", "ResourceQuota", short=("quota",), sub=_status("ResourceQuota")),
            _r("secrets", "Secret"),
            _r("serviceaccounts", "ServiceAccount", short=("sa",), sub=(("token", "TokenRequest", _CREATE),)),
            _r(
                "services",
                "Service",
                short=("svc",),
                categories=("all",),
                sub=(
                    ("proxy", "ServiceProxyOptions", ("create", "delete", "get", "patch", "update")),
                    *_status("Service"),
                ),
            ),
        )
    },
    "apiregistration.k8s.io": {
        "v1": (_r("apiservices", "APIService", False, categories=("api-extensions",), sub=_status("APIService")),)
    },
    "apps": {
        "v1": (
            _r("controllerrevisions", "ControllerRevision"),
            _r("daemonsets", "DaemonSet", short=("ds",), categories=("all",), sub=_status("DaemonSet")),
            _r("deployments", "Deployment", short=("deploy",), categories=("all",), sub=_scaled("Deployment")),
            _r("replicasets", "ReplicaSet", short=("rs",), categories=("all",), sub=_scaled("ReplicaSet")),
            _r("statefulsets", "StatefulSet", short=("sts",), categories=("all",), sub=_scaled("StatefulSet")),
        )
    },
    "events.k8s.io": {"v1": (_r("events", "Event", short=("ev",)),)},
    "authentication.k8s.io": {
        "v1": (
            _r("selfsubjectreviews", "SelfSubjectReview", False, _CREATE),
            _r("tokenreviews", "TokenReview", False, _CREATE),
        )
    },
    "authorization.k8s.io": {
        "v1": (
            _r("localsubjectaccessreviews", "LocalSubjectAccessReview", True, _CREATE),
            _r("selfsubjectaccessreviews", "SelfSubjectAccessReview", False, _CREATE),
            _r("selfsubjectrulesreviews", "SelfSubjectRulesReview", False, _CREATE),
            _r("subjectaccessreviews", "SubjectAccessReview", False, _CREATE),
        )
    },
    "autoscaling": {
        "v2": (
            _r(
                "horizontalpodautoscalers",
                "HorizontalPodAutoscaler",
                short=("hpa",),
                categories=("all",),
                sub=_status("HorizontalPodAutoscaler"),
            ),
        ),
        "v1": (
            _r(
                "horizontalpodautoscalers",
                "HorizontalPodAutoscaler",
                short=("hpa",),
                categories=("all",),
                sub=_status("HorizontalPodAutoscaler"),
            ),
        ),
    },
    "batch": {
        "v1": (
            _r("cronjobs", "CronJob", short=("cj",), categories=("all",), sub=_status("CronJob")),
            _r("jobs", "Job", categories=("all",), sub=_status("Job")),
        )
    },
    "certificates.k8s.io": {
        "v1": (
            _r(
                "certificatesigningrequests",
                "CertificateSigningRequest",
                False,
                short=("csr",),
                sub=(("approval", "CertificateSigningRequest", _STATUS), *_status("CertificateSigningRequest")),
            ),
        )
    },
    "networking.k8s.io": {
        "v1": (
            _r("ingressclasses", "IngressClass", False),
            _r("ingresses", "Ingress", short=("ing",), sub=_status("Ingress")),
            _r("networkpolicies", "NetworkPolicy", short=("netpol",)),
        )
    },
    "policy": {
        "v1": (_r("poddisruptionbudgets", "PodDisruptionBudget", short=("pdb",), sub=_status("PodDisruptionBudget")),)
    },
    "rbac.authorization.k8s.io": {
        "v1": (
            _r("clusterrolebindings", "ClusterRoleBinding", False),
            _r("clusterroles", "ClusterRole", False),
            _r("rolebindings", "RoleBinding"),
            _r("roles", "Role"),
        )
    },
    "storage.k8s.io": {
        "v1": (
            _r("csidrivers", "CSIDriver", False),
            _r("csinodes", "CSINode", False),
            _r("csistoragecapacities", "CSIStorageCapacity"),
            _r("storageclasses", "StorageClass", False, short=("sc",)),
            _r("volumeattachments", "VolumeAttachment", False, sub=_status("VolumeAttachment")),
        )
    },
    "admissionregistration.k8s.io": {
        "v1": (
            _r("mutatingwebhookconfigurations", "MutatingWebhookConfiguration", False, categories=("api-extensions",)),
            _r(
                "validatingadmissionpolicies",
                "ValidatingAdmissionPolicy",
                False,
                categories=("api-extensions",),
                sub=_status("ValidatingAdmissionPolicy"),
            ),
            _r(
                "validatingadmissionpolicybindings",
                "ValidatingAdmissionPolicyBinding",
                False,
                categories=("api-extensions",),
            ),
            _r(
                "validatingwebhookconfigurations",
                "ValidatingWebhookConfiguration",
                False,
                categories=("api-extensions",),
            ),
        )
    },
    "apiextensions.k8s.io": {
        "v1": (
            _r(
                "customresourcedefinitions",
                "CustomResourceDefinition",
                False,
                short=("crd", "crds"),
                categories=("api-extensions",),
                sub=_status("CustomResourceDefinition"),
            ),
        )
    },
    "scheduling.k8s.io": {"v1": (_r("priorityclasses", "PriorityClass", False, short=("pc",)),)},
    "coordination.k8s.io": {"v1": (_r("leases", "Lease"),)},
    "node.k8s.io": {"v1": (_r("runtimeclasses", "RuntimeClass", False),)},
    "discovery.k8s.io": {"v1": (_r("endpointslices", "EndpointSlice"),)},
    "flowcontrol.apiserver.k8s.io": {
        "v1": (
            _r("flowschemas", "FlowSchema", False, sub=_status("FlowSchema")),
            _r(
                "prioritylevelconfigurations",
                "PriorityLevelConfiguration",
                False,
                sub=_status("PriorityLevelConfiguration"),
            ),
        ),
        "v1beta3": (
            _r("flowschemas", "FlowSchema", False, sub=_status("FlowSchema")),
            _r(
                "prioritylevelconfigurations",
                "PriorityLevelConfiguration",
                False,
                sub=_status("PriorityLevelConfiguration"),
            ),
        ),
    },
    "metrics.k8s.io": {"v1beta1": (_r("nodes", "NodeMetrics", False, _RO), _r("pods", "PodMetrics", True, _RO))},
}


def _hash(*parts: str) -> str:
    return base64.b64encode(hashlib.sha256("/".join(parts).encode()).digest()[:8]).decode()


def _legacy_entries(group: str, version: str, res: _Res) -> list[dict[str, Any]]:
    plural, kind, namespaced, verbs, short, categories, sub = res
    entry: dict[str, Any] = {
        "name": plural,
        "singularName": kind.lower(),
        "namespaced": namespaced,
        "kind": kind,
        "verbs": list(verbs),
    }
    if short:
        entry["shortNames"] = list(short)
    if categories:
        entry["categories"] = list(categories)
    if "list" in verbs:
        entry["storageVersionHash"] = _hash(group, version, kind)
    out = [entry]
    for name, sub_kind, sub_verbs in sub:
        out.append(
            {
                "name": f"{plural}/{name}",
                "singularName": "",
                "namespaced": namespaced,
                "kind": sub_kind,
                "verbs": list(sub_verbs),
            }
        )
    return out


def _custom(rt: ResourceType) -> _Res:
    return _r(
        rt.plural, rt.kind, rt.namespaced, rt.verbs, rt.short_names, ("meshery",) if rt.group == "meshery.io" else ()
    )


def _aggregated_resource(res: _Res) -> dict[str, Any]:
    plural, kind, namespaced, verbs, short, categories, sub = res
    doc: dict[str, Any] = {
        "resource": plural,
        "responseKind": {"group": "", "version": "", "kind": kind},
        "scope": "Namespaced" if namespaced else "Cluster",
        "singularResource": kind.lower(),
        "verbs": list(verbs),
    }
    if short:
        doc["shortNames"] = list(short)
    if categories:
        doc["categories"] = list(categories)
    if sub:
        doc["subresources"] = [
            {"subresource": name, "responseKind": {"group": "", "version": "", "kind": k}, "verbs": list(v)}
            for name, k, v in sub
        ]
    return doc


class RealisticProfile:
    """Discovery, list paging and response headers as a 1.30 kube-apiserver serves them.

    Built-in groups come from :data:`BUILTIN_GROUPS`; custom kinds (Meshery's CRDs) from the server's
    registry, so discovery always matches what the server really serves.
    """

    chunk_after = 2048  # Go's net/http sends a body that does not fit its 2 KiB buffer chunked

    def __init__(self) -> None:
        self._flow_uids = (str(uuid.uuid4()), str(uuid.uuid4()))

    def headers(self) -> dict[str, str]:
        return {
            "X-Kubernetes-Pf-Flowschema-Uid": self._flow_uids[0],
            "X-Kubernetes-Pf-Prioritylevel-Uid": self._flow_uids[1],
        }

    def _groups(self, registry: ResourceRegistry) -> dict[str, dict[str, tuple[_Res, ...]]]:
        groups = {g: dict(vs) for g, vs in BUILTIN_GROUPS.items()}
        for rt in registry.all():
            if rt.custom:
                versions = groups.setdefault(rt.group, {})
                versions[rt.version] = (*versions.get(rt.version, ()), _custom(rt))
        return groups

    def discovery(
        self, parts: Sequence[str], registry: ResourceRegistry, address: str, accept: str
    ) -> dict[str, Any] | None:
        """/api, /apis (aggregated when asked), /apis/<group>; None: not a discovery document."""
        groups = self._groups(registry)
        if "as=APIGroupDiscoveryList" in accept and list(parts) in (["api"], ["apis"]):
            wanted = {g: vs for g, vs in groups.items() if (g == "") == (parts == ["api"])}
            items = [
                {
                    "metadata": {"name": g, "creationTimestamp": None},
                    "versions": [
                        {"version": v, "resources": [_aggregated_resource(r) for r in res], "freshness": "Current"}
                        for v, res in vs.items()
                    ],
                }
                for g, vs in wanted.items()
            ]
            return {
                "kind": "APIGroupDiscoveryList",
                "apiVersion": "apidiscovery.k8s.io/v2",
                "metadata": {},
                "items": items,
            }
        if list(parts) == ["api"]:
            return {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": address}],
            }
        named = {g: vs for g, vs in groups.items() if g}
        if list(parts) == ["apis"]:
            return {
                "kind": "APIGroupList",
                "apiVersion": "v1",
                "groups": [self._group(g, vs) for g, vs in named.items()],
            }
        if len(parts) == 2 and parts[1] in named:
            return {"kind": "APIGroup", "apiVersion": "v1", **self._group(parts[1], named[parts[1]])}
        return None

    @staticmethod
    def _group(group: str, versions: Mapping[str, Any]) -> dict[str, Any]:
        entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        return {"name": group, "versions": entries, "preferredVersion": entries[0]}

    def resource_list(self, group: str, version: str, registry: ResourceRegistry) -> dict[str, Any] | None:
        res = self._groups(registry).get(group, {}).get(version)
        if not res:
            return None
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version,
            "resources": [e for r in res for e in _legacy_entries(group, version, r)],
        }

    @staticmethod
    def page(
        items: list[dict[str, Any]], limit: str, resource_version: str
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """A ``?limit=N`` list: the first N items, a continue token and how many remain."""
        try:
            n = int(limit)
        except ValueError:
            return items, {}
        if n <= 0 or n >= len(items):
            return items, {}
        token = base64.urlsafe_b64encode(f'{{"v":"meta.k8s.io/v1","rv":{resource_version},"start":"{n}"}}'.encode())
        return items[:n], {"continue": token.decode().rstrip("="), "remainingItemCount": len(items) - n}


# -- object weight ---------------------------------------------------------------------------------

_HELM = "Helm"
_TS = "2024-08-20T09:14:27Z"


def _field_tree(doc: Any, depth: int = 0) -> Any:
    """A managedFields ``fieldsV1`` tree for ``doc``: the keys it sets, as the server records them."""
    if isinstance(doc, dict) and depth < 6:
        return {f"f:{k}": _field_tree(v, depth + 1) for k, v in doc.items() if k not in ("status", "managedFields")}
    if isinstance(doc, list) and depth < 6:
        out: dict[str, Any] = {}
        for item in doc:
            if isinstance(item, dict) and "name" in item:
                out[f'k:{{"name":"{item["name"]}"}}'] = {".": {}, **_field_tree(item, depth + 1)}
        return out or {}
    return {}


def _managed(obj: Mapping[str, Any], manager: str, status_manager: str | None) -> list[dict[str, Any]]:
    api_version = str(obj.get("apiVersion", "v1"))
    fields = _field_tree({k: v for k, v in obj.items() if k in ("metadata", "spec", "data", "type")})
    fields.get("f:metadata", {}).pop("f:uid", None)
    entries = [
        {
            "manager": manager,
            "operation": "Update",
            "apiVersion": api_version,
            "time": _TS,
            "fieldsType": "FieldsV1",
            "fieldsV1": fields,
        }
    ]
    status = obj.get("status")
    if status_manager and isinstance(status, dict):
        entries.append(
            {
                "manager": status_manager,
                "operation": "Update",
                "apiVersion": api_version,
                "time": _TS,
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:status": _field_tree(status)},
                "subresource": "status",
            }
        )
    return entries


_STATUS_MANAGERS = {
    "Deployment": "kube-controller-manager",
    "StatefulSet": "kube-controller-manager",
    "ReplicaSet": "kube-controller-manager",
    "Service": "aws-load-balancer-controller",
    "Node": "kubelet",
    "Pod": "kubelet",
    "Broker": "meshery-operator",
    "MeshSync": "meshery-operator",
    "Namespace": None,
}


def _node_images(seed: str) -> list[dict[str, Any]]:
    repos = [
        "602401143452.dkr.ecr.us-west-2.amazonaws.com/amazon-k8s-cni",
        "602401143452.dkr.ecr.us-west-2.amazonaws.com/amazon-k8s-cni-init",
        "602401143452.dkr.ecr.us-west-2.amazonaws.com/eks/kube-proxy",
        "602401143452.dkr.ecr.us-west-2.amazonaws.com/eks/coredns",
        "602401143452.dkr.ecr.us-west-2.amazonaws.com/eks/aws-ebs-csi-driver",
        "602401143452.dkr.ecr.us-west-2.amazonaws.com/eks/csi-node-driver-registrar",
        "602401143452.dkr.ecr.us-west-2.amazonaws.com/eks/livenessprobe",
        "602401143452.dkr.ecr.us-west-2.amazonaws.com/eks/pause",
        "registry.k8s.io/metrics-server/metrics-server",
        "docker.io/meshery/meshery-operator",
        "docker.io/meshery/meshsync",
        "docker.io/library/nats",
        "docker.io/natsio/nats-server-config-reloader",
        "docker.io/natsio/prometheus-nats-exporter",
        "gcr.io/kubebuilder/kube-rbac-proxy",
        "quay.io/prometheus/node-exporter",
        "quay.io/prometheus/prometheus",
        "quay.io/prometheus-operator/prometheus-config-reloader",
        "docker.io/grafana/grafana",
        "docker.io/bitnami/redis",
        "docker.io/istio/proxyv2",
        "docker.io/istio/pilot",
        "ghcr.io/fluxcd/source-controller",
        "ghcr.io/fluxcd/kustomize-controller",
        "public.ecr.aws/karpenter/controller",
        "public.ecr.aws/aws-observability/aws-for-fluent-bit",
        "docker.io/library/busybox",
        "docker.io/library/nginx",
        "registry.k8s.io/ingress-nginx/controller",
        "quay.io/jetstack/cert-manager-controller",
        "quay.io/jetstack/cert-manager-webhook",
        "quay.io/jetstack/cert-manager-cainjector",
        "docker.io/library/postgres",
        "docker.io/library/alpine",
        "docker.io/openpolicyagent/gatekeeper",
        "docker.io/datadog/agent",
    ]
    images = []
    for i, repo in enumerate(repos):
        digest = hashlib.sha256(f"{seed}/{repo}".encode()).hexdigest()
        images.append(
            {
                "names": [f"{repo}@sha256:{digest}", f"{repo}:v1.{i % 30}.{i % 7}"],
                "sizeBytes": 12_000_000 + i * 7_919_177,
            }
        )
    return images


def _dress_node(node: dict[str, Any]) -> None:
    meta, spec, status = node["metadata"], node.setdefault("spec", {}), node.setdefault("status", {})
    name = meta["name"]
    instance = hashlib.md5(name.encode()).hexdigest()[:17]
    meta.setdefault("labels", {}).update(
        {
            "beta.kubernetes.io/arch": "amd64",
            "beta.kubernetes.io/instance-type": "m5.xlarge",
            "beta.kubernetes.io/os": "linux",
            "eks.amazonaws.com/capacityType": "ON_DEMAND",
            "eks.amazonaws.com/nodegroup": "meshery-workers",
            "eks.amazonaws.com/nodegroup-image": "ami-0a5a8b1c2d3e4f567",
            "eks.amazonaws.com/sourceLaunchTemplateId": "lt-0123456789abcdef0",
            "eks.amazonaws.com/sourceLaunchTemplateVersion": "1",
            "failure-domain.beta.kubernetes.io/region": "us-west-2",
            "failure-domain.beta.kubernetes.io/zone": "us-west-2a",
            "k8s.io/cloud-provider-aws": hashlib.md5(name.encode()).hexdigest(),
            "node.kubernetes.io/instance-type": "m5.xlarge",
            "topology.ebs.csi.aws.com/zone": "us-west-2a",
            "topology.kubernetes.io/region": "us-west-2",
            "topology.kubernetes.io/zone": "us-west-2a",
        }
    )
    meta.setdefault("annotations", {}).update(
        {
            "alpha.kubernetes.io/provided-node-ip": next(
                (a["address"] for a in status.get("addresses") or [] if a.get("type") == "InternalIP"), ""
            ),
            "csi.volume.kubernetes.io/nodeid": json.dumps({"ebs.csi.aws.com": f"i-{instance}"}, separators=(",", ":")),
            "node.alpha.kubernetes.io/ttl": "0",
            "volumes.kubernetes.io/controller-managed-attach-detach": "true",
        }
    )
    spec.setdefault("providerID", f"aws:///us-west-2a/i-{instance}")
    resources = {
        "cpu": "4",
        "ephemeral-storage": "83873772Ki",
        "hugepages-1Gi": "0",
        "hugepages-2Mi": "0",
        "memory": "15896024Ki",
        "pods": "58",
    }
    status.update(
        capacity=resources,
        allocatable={**resources, "cpu": "3920m", "ephemeral-storage": "76224326324", "memory": "14880216Ki"},
        daemonEndpoints={"kubeletEndpoint": {"Port": 10250}},
        images=_node_images(name),
    )
    addresses = status.setdefault("addresses", [])
    if not any(a.get("type") == "Hostname" for a in addresses):
        addresses += [
            {"type": "InternalDNS", "address": f"{name}.us-west-2.compute.internal"},
            {"type": "Hostname", "address": f"{name}.us-west-2.compute.internal"},
        ]
    conditions = [c for c in status.get("conditions") or [] if c.get("type") == "Ready"]
    for kind, reason, message in (
        ("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
        ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
    ):
        conditions.insert(
            0,
            {
                "type": kind,
                "status": "False",
                "reason": reason,
                "message": message,
                "lastHeartbeatTime": _TS,
                "lastTransitionTime": _TS,
            },
        )
    status["conditions"] = conditions


def dress(obj: Mapping[str, Any]) -> dict[str, Any]:
    """``obj`` with the metadata a real cluster's copy carries: managedFields, Helm's labels and annotations,
    a node's full status. What the checks read (names, specs, addresses, status) is left as it was."""
    out = copy.deepcopy(dict(obj))
    kind = str(out.get("kind", ""))
    meta = out.setdefault("metadata", {})
    if kind == "Node":
        _dress_node(out)
        manager = "kubelet"
    elif meta.get("namespace") == "meshery" or str(out.get("apiVersion", "")).startswith("meshery.io"):
        manager = _HELM
        meta.setdefault("labels", {}).update(
            {
                "app.kubernetes.io/managed-by": _HELM,
                "helm.sh/chart": "meshery-operator-v0.7.84",
                "app.kubernetes.io/version": "v0.7.84",
            }
        )
        meta.setdefault("annotations", {}).update(
            {"meta.helm.sh/release-name": "meshery", "meta.helm.sh/release-namespace": "meshery"}
        )
        if kind in ("Deployment", "StatefulSet"):
            meta["annotations"]["deployment.kubernetes.io/revision"] = "3"
            meta.setdefault("generation", 3)
    else:
        manager = "kube-apiserver" if kind in ("Namespace", "Service") else "kubectl-client-side-apply"
    meta.setdefault("managedFields", _managed(out, manager, _STATUS_MANAGERS.get(kind, "kube-controller-manager")))
    return out


def _pod(name: str, namespace: str, app: str, image: str, node: str, index: int) -> dict[str, Any]:
    container = {
        "name": app,
        "image": image,
        "args": ["--v=2", "--metrics-bind-address=:8080", "--health-probe-bind-address=:8081"],
        "ports": [{"name": "metrics", "containerPort": 8080, "protocol": "TCP"}],
        "env": [
            {"name": "AWS_REGION", "value": "us-west-2"},
            {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "spec.nodeName"}}},
        ],
        "resources": {"limits": {"memory": "170Mi"}, "requests": {"cpu": "100m", "memory": "70Mi"}},
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": 8081, "scheme": "HTTP"},
            "periodSeconds": 10,
            "timeoutSeconds": 5,
        },
        "volumeMounts": [
            {"name": "kube-api-access", "readOnly": True, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}
        ],
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "imagePullPolicy": "IfNotPresent",
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "generateName": name.rsplit("-", 1)[0] + "-",
            "labels": {"k8s-app": app, "pod-template-hash": hashlib.md5(app.encode()).hexdigest()[:10]},
            "annotations": {"kubectl.kubernetes.io/restartedAt": _TS},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": name.rsplit("-", 1)[0],
                    "uid": str(uuid.uuid4()),
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "containers": [container],
            "volumes": [
                {
                    "name": "kube-api-access",
                    "projected": {
                        "defaultMode": 420,
                        "sources": [{"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}}],
                    },
                }
            ],
            "nodeName": node,
            "serviceAccountName": app,
            "priorityClassName": "system-cluster-critical",
            "tolerations": [
                {
                    "key": "node.kubernetes.io/not-ready",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                },
                {
                    "key": "node.kubernetes.io/unreachable",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                },
            ],
        },
        "status": {
            "phase": "Running",
            "conditions": [
                {"type": t, "status": "True", "lastProbeTime": None, "lastTransitionTime": _TS}
                for t in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")
            ],
            "hostIP": "192.0.2.10",
            "podIP": f"198.51.100.{index % 250 + 1}",
            "startTime": _TS,
            "qosClass": "Burstable",
            "containerStatuses": [
                {
                    "name": app,
                    "ready": True,
                    "restartCount": 0,
                    "image": image,
                    "imageID": f"{image}@sha256:{hashlib.sha256(image.encode()).hexdigest()}",
                    "started": True,
                    "state": {"running": {"startedAt": _TS}},
                }
            ],
        },
    }


_SYSTEM_PODS = (
    ("coredns", "602401143452.dkr.ecr.us-west-2.amazonaws.com/eks/coredns:v1.11.1-eksbuild.9", 2),
    ("aws-node", "602401143452.dkr.ecr.us-west-2.amazonaws.com/amazon-k8s-cni:v1.18.3-eksbuild.2", 3),
    ("kube-proxy", "602401143452.dkr.ecr.us-west-2.amazonaws.com/eks/kube-proxy:v1.30.3-eksbuild.5", 3),
    ("ebs-csi-node", "602401143452.dkr.ecr.us-west-2.amazonaws.com/eks/aws-ebs-csi-driver:v1.33.0", 3),
    ("ebs-csi-controller", "602401143452.dkr.ecr.us-west-2.amazonaws.com/eks/aws-ebs-csi-driver:v1.33.0", 2),
    ("metrics-server", "registry.k8s.io/metrics-server/metrics-server:v0.7.1", 1),
)


def filler_objects(node_names: Sequence[str]) -> list[dict[str, Any]]:
    """kube-system's pods, ConfigMaps and ReplicaSets of a small EKS cluster, as heavy as the real ones."""
    objs: list[dict[str, Any]] = []
    nodes = list(node_names) or ["node-1"]
    index = 0
    for app, image, count in _SYSTEM_PODS:
        objs.append(
            dress(
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "metadata": {
                        "name": f"{app}-{hashlib.md5(app.encode()).hexdigest()[:10]}",
                        "namespace": "kube-system",
                        "labels": {"k8s-app": app},
                    },
                    "spec": {"replicas": count, "selector": {"matchLabels": {"k8s-app": app}}},
                    "status": {"replicas": count, "readyReplicas": count, "availableReplicas": count},
                }
            )
        )
        for k in range(count):
            suffix = hashlib.md5(f"{app}{k}".encode()).hexdigest()[:5]
            objs.append(dress(_pod(f"{app}-{suffix}", "kube-system", app, image, nodes[k % len(nodes)], index)))
            index += 1
    ca = (
        "-----BEGIN CERTIFICATE-----\n"
        + "\n".join(["MIIDBTCCAe2gAwIBAgIIQ2xhYkNBcmVhbGlzdGljMA0GCSqGSIb3DQEBCwUAMBUx"] * 17)
        + "\n-----END CERTIFICATE-----\n"
    )
    for ns in ("default", "kube-system", "kube-public", "kube-node-lease", "meshery"):
        objs.append(
            dress(
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": "kube-root-ca.crt", "namespace": ns},
                    "data": {"ca.crt": ca},
                }
            )
        )
    corefile = "\n".join(
        [
            ".:53 {",
            "    errors",
            "    health {\n        lameduck 5s\n      }",
            "    ready",
            "    kubernetes cluster.local in-addr.arpa ip6.arpa {",
            "      pods insecure\n      fallthrough in-addr.arpa ip6.arpa\n    }",
            "    prometheus :9153\n    forward . /etc/resolv.conf\n    cache 30\n    loop\n    reload\n    loadbalance",
            "}\n",
        ]
    )
    objs.append(
        dress(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "coredns", "namespace": "kube-system"},
                "data": {"Corefile": corefile},
            }
        )
    )
    return objs


# An operator's group on a real cluster is bound to the aggregated `admin` role as well as cluster-admin:
# every rule shows up in a SelfSubjectRulesReview (duplicates included), as kube-apiserver lists them.
_ADMIN_RULES: tuple[tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]], ...] = (
    (
        ("",),
        ("pods/attach", "pods/exec", "pods/portforward", "pods/proxy", "secrets", "services/proxy"),
        ("get", "list", "watch"),
    ),
    (("",), ("serviceaccounts",), ("impersonate",)),
    (
        ("",),
        ("pods", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy"),
        ("create", "delete", "deletecollection", "patch", "update"),
    ),
    (("",), ("pods/eviction",), ("create",)),
    (
        ("",),
        (
            "configmaps",
            "endpoints",
            "persistentvolumeclaims",
            "replicationcontrollers",
            "replicationcontrollers/scale",
            "secrets",
            "serviceaccounts",
            "services",
            "services/proxy",
        ),
        ("create", "delete", "deletecollection", "patch", "update"),
    ),
    (("",), ("serviceaccounts/token",), ("create",)),
    (
        ("apps",),
        (
            "daemonsets",
            "deployments",
            "deployments/rollback",
            "deployments/scale",
            "replicasets",
            "replicasets/scale",
            "statefulsets",
            "statefulsets/scale",
        ),
        ("create", "delete", "deletecollection", "patch", "update"),
    ),
    (("autoscaling",), ("horizontalpodautoscalers",), ("create", "delete", "deletecollection", "patch", "update")),
    (("batch",), ("cronjobs", "jobs"), ("create", "delete", "deletecollection", "patch", "update")),
    (
        ("extensions",),
        (
            "daemonsets",
            "deployments",
            "deployments/rollback",
            "deployments/scale",
            "ingresses",
            "networkpolicies",
            "replicasets",
            "replicasets/scale",
            "replicationcontrollers/scale",
        ),
        ("create", "delete", "deletecollection", "patch", "update"),
    ),
    (("policy",), ("poddisruptionbudgets",), ("create", "delete", "deletecollection", "patch", "update")),
    (
        ("networking.k8s.io",),
        ("ingresses", "networkpolicies"),
        ("create", "delete", "deletecollection", "patch", "update"),
    ),
    (
        ("coordination.k8s.io",),
        ("leases",),
        ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"),
    ),
    (
        ("",),
        (
            "configmaps",
            "endpoints",
            "persistentvolumeclaims",
            "persistentvolumeclaims/status",
            "pods",
            "replicationcontrollers",
            "replicationcontrollers/scale",
            "serviceaccounts",
            "services",
            "services/status",
        ),
        ("get", "list", "watch"),
    ),
    (
        ("",),
        (
            "bindings",
            "events",
            "limitranges",
            "namespaces/status",
            "pods/log",
            "pods/status",
            "replicationcontrollers/status",
            "resourcequotas",
            "resourcequotas/status",
        ),
        ("get", "list", "watch"),
    ),
    (("",), ("namespaces",), ("get", "list", "watch")),
    (("discovery.k8s.io",), ("endpointslices",), ("get", "list", "watch")),
    (
        ("apps",),
        (
            "controllerrevisions",
            "daemonsets",
            "daemonsets/status",
            "deployments",
            "deployments/scale",
            "deployments/status",
            "replicasets",
            "replicasets/scale",
            "replicasets/status",
            "statefulsets",
            "statefulsets/scale",
            "statefulsets/status",
        ),
        ("get", "list", "watch"),
    ),
    (("autoscaling",), ("horizontalpodautoscalers", "horizontalpodautoscalers/status"), ("get", "list", "watch")),
    (("batch",), ("cronjobs", "cronjobs/status", "jobs", "jobs/status"), ("get", "list", "watch")),
    (("policy",), ("poddisruptionbudgets", "poddisruptionbudgets/status"), ("get", "list", "watch")),
    (("networking.k8s.io",), ("ingresses", "ingresses/status", "networkpolicies"), ("get", "list", "watch")),
    (("authorization.k8s.io",), ("localsubjectaccessreviews",), ("create",)),
    (
        ("rbac.authorization.k8s.io",),
        ("rolebindings", "roles"),
        ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"),
    ),
    (("meshery.io",), ("brokers", "meshsyncs"), ("get", "list", "watch")),
    (("meshery.io",), ("brokers/status", "meshsyncs/status"), ("get",)),
)
OPERATOR_RULES: tuple[Rule, ...] = tuple(Rule(verbs=v, api_groups=g, resources=r) for g, r, v in _ADMIN_RULES)


def dress_store(objects: Iterable[Mapping[str, Any]], put: Callable[[Mapping[str, Any]], Any]) -> None:
    """Replace each of ``objects`` by its dressed copy through ``put`` (a store's)."""
    for obj in objects:
        put(dress(obj))
