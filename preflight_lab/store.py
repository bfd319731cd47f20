"""The lab API server's object store: the kinds it serves (with discovery) and the objects it holds.

A real cluster's objects keep their shape here (metadata filled in as kube-apiserver would), so the
real kubernetes client lists, gets and decodes them; the HTTP layer only routes to this store.
"""

from __future__ import annotations

import copy
import datetime as _dt
import itertools
import json
import threading
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["BUILTIN_RESOURCES", "ObjectStore", "ResourceRegistry", "ResourceType", "guess_plural"]


_RW_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class ResourceType:
    """A kind the server serves: where it lives in the REST tree and how discovery describes it."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool = True
    verbs: tuple[str, ...] = _RW_VERBS
    short_names: tuple[str, ...] = ()
    custom: bool = True  # a CRD-backed kind: list items keep apiVersion/kind, and a CRD object is served

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()

    def discovery(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": list(self.verbs),
        }
        if self.short_names:
            entry["shortNames"] = list(self.short_names)
        return entry


def _builtin(
    group: str,
    version: str,
    kind: str,
    plural: str,
    namespaced: bool = True,
    verbs: tuple[str, ...] = _RW_VERBS,
    short: tuple[str, ...] = (),
) -> ResourceType:
    return ResourceType(group, version, kind, plural, namespaced, verbs, short, custom=False)


_CREATE = ("create",)
BUILTIN_RESOURCES: tuple[ResourceType, ...] = (
    _builtin("", "v1", "Namespace", "namespaces", False, short=("ns",)),
    _builtin("", "v1", "Node", "nodes", False, short=("no",)),
    _builtin("", "v1", "Pod", "pods", short=("po",)),
    _builtin("", "v1", "Service", "services", short=("svc",)),
    _builtin("", "v1", "Secret", "secrets"),
    _builtin("", "v1", "ConfigMap", "configmaps", short=("cm",)),
    _builtin("", "v1", "ServiceAccount", "serviceaccounts", short=("sa",)),
    _builtin("", "v1", "Endpoints", "endpoints", short=("ep",)),
    _builtin("", "v1", "Event", "events", short=("ev",)),
    _builtin("apps", "v1", "Deployment", "deployments", short=("deploy",)),
    _builtin("apps", "v1", "StatefulSet", "statefulsets", short=("sts",)),
    _builtin("apps", "v1", "DaemonSet", "daemonsets", short=("ds",)),
    _builtin("apps", "v1", "ReplicaSet", "replicasets", short=("rs",)),
    _builtin("authentication.k8s.io", "v1", "SelfSubjectReview", "selfsubjectreviews", False, _CREATE),
    _builtin("authentication.k8s.io", "v1", "TokenReview", "tokenreviews", False, _CREATE),
    _builtin("authorization.k8s.io", "v1", "LocalSubjectAccessReview", "localsubjectaccessreviews", True, _CREATE),
    _builtin("authorization.k8s.io", "v1", "SelfSubjectAccessReview", "selfsubjectaccessreviews", False, _CREATE),
    _builtin("authorization.k8s.io", "v1", "SelfSubjectRulesReview", "selfsubjectrulesreviews", False, _CREATE),
    _builtin("authorization.k8s.io", "v1", "SubjectAccessReview", "subjectaccessreviews", False, _CREATE),
    _builtin(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        False,
        short=("crd", "crds"),
    ),
)


def guess_plural(kind: str) -> str:
    """English-ish plural of a kind, as CRD authors usually choose it (Broker -> brokers)."""
    low = kind.lower()
    if low.endswith(("s", "x", "z", "ch", "sh")):
        return low + "es"
    if low.endswith("y") and len(low) > 1 and low[-2] not in "aeiou":
        return low[:-1] + "ies"
    return low + "s"


class ResourceRegistry:
    """Kind <-> plural map per group/version; also the source of the discovery documents."""

    def __init__(self, types: Iterable[ResourceType] = BUILTIN_RESOURCES) -> None:
        self._lock = threading.Lock()
        self._by_plural: dict[tuple[str, str, str], ResourceType] = {}
        self._by_kind: dict[tuple[str, str], ResourceType] = {}
        for rt in types:
            self.register(rt)

    def register(self, rt: ResourceType) -> bool:
        """Add (or replace) a type; returns whether it was new."""
        with self._lock:
            key = (rt.group, rt.version, rt.plural)
            new = key not in self._by_plural
            self._by_plural[key] = rt
            self._by_kind[(rt.api_version, rt.kind)] = rt
            return new

    def by_kind(self, api_version: str, kind: str) -> ResourceType | None:
        with self._lock:
            return self._by_kind.get((api_version, kind))

    def by_plural(self, group: str, version: str, plural: str) -> ResourceType | None:
        with self._lock:
            return self._by_plural.get((group, version, plural))

    def all(self) -> list[ResourceType]:
        with self._lock:
            return list(self._by_plural.values())

    def group_versions(self) -> dict[str, list[str]]:
        """Named groups (not core) in registration order, each with its versions."""
        groups: dict[str, list[str]] = {}
        for rt in self.all():
            if rt.group:
                versions = groups.setdefault(rt.group, [])
                if rt.version not in versions:
                    versions.append(rt.version)
        return groups


def _now_rfc3339() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class ObjectStore:
    """Objects by group/version/resource, namespace and name, as the REST handlers serve them.

    ``put`` copies the object and fills in the metadata a real server would (uid, resourceVersion,
    creationTimestamp; namespace ``default`` for namespaced kinds). Unknown kinds are registered on
    the fly with a guessed plural; register them first for full control.
    """

    def __init__(self, resources: ResourceRegistry) -> None:
        self._resources = resources
        self._lock = threading.Lock()
        self._objects: dict[tuple[str, str, str], dict[tuple[str, str], dict[str, Any]]] = {}
        self._rv = itertools.count(1)
        self._last_rv = 0

    @property
    def resource_version(self) -> str:
        with self._lock:
            return str(max(self._last_rv, 1))

    def _type_of(self, obj: Mapping[str, Any]) -> ResourceType:
        api_version, kind = obj.get("apiVersion"), obj.get("kind")
        if not isinstance(api_version, str) or not isinstance(kind, str):
            raise ValueError("object needs string apiVersion and kind")
        rt = self._resources.by_kind(api_version, kind)
        if rt is None:
            group, _, version = api_version.rpartition("/")
            namespaced = bool((obj.get("metadata") or {}).get("namespace"))
            rt = ResourceType(group, version, kind, guess_plural(kind), namespaced)
            self._resources.register(rt)
        return rt

    def put(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Store a copy of ``obj`` (replacing any same-named one) and return the stored copy."""
        stored: dict[str, Any] = json.loads(json.dumps(obj))
        rt = self._type_of(stored)
        meta = stored.setdefault("metadata", {})
        name = meta.get("name")
        if not name:
            raise ValueError(f"{rt.kind} needs metadata.name")
        if rt.namespaced:
            meta.setdefault("namespace", "default")
        elif meta.get("namespace"):
            raise ValueError(f"{rt.kind} is cluster-scoped; it cannot have a namespace")
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", _now_rfc3339())
        with self._lock:
            self._last_rv = next(self._rv)
            meta["resourceVersion"] = str(self._last_rv)
            key = (rt.group, rt.version, rt.plural)
            self._objects.setdefault(key, {})[(meta.get("namespace", ""), name)] = stored
        return copy.deepcopy(stored)

    def delete(self, api_version: str, kind: str, name: str, namespace: str = "") -> bool:
        rt = self._resources.by_kind(api_version, kind)
        if rt is None:
            return False
        with self._lock:
            bucket = self._objects.get((rt.group, rt.version, rt.plural), {})
            return bucket.pop((namespace if rt.namespaced else "", name), None) is not None

    def get(self, rt: ResourceType, name: str, namespace: str = "") -> dict[str, Any] | None:
        with self._lock:
            obj = self._objects.get((rt.group, rt.version, rt.plural), {}).get(
                (namespace if rt.namespaced else "", name)
            )
            return copy.deepcopy(obj) if obj is not None else None

    def list(self, rt: ResourceType, namespace: str | None = None) -> list[dict[str, Any]]:
        """All objects of a type, in one namespace or (``None``) everywhere, sorted like etcd keys."""
        with self._lock:
            bucket = self._objects.get((rt.group, rt.version, rt.plural), {})
            items = [obj for (ns, _), obj in sorted(bucket.items()) if namespace is None or ns == namespace]
            return copy.deepcopy(items)
