"""What a check needs the credential to be allowed, declared next to the check, and the RBAC that grants it.

Each check declares the API reads it makes (and, for the rbac.* checks, the rights it verifies Meshery has),
so `meshery-preflight rbac` can print the least ClusterRole and Role that let every check decide, and a test
can prove that nothing less would do.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

MODES = ("embedded", "operator")
NAME = "meshery-preflight"


@dataclass(frozen=True)
class Permission:
    """``verbs`` on ``group/resource``, cluster-wide or only in the Meshery namespace (``names``: only those)."""

    verbs: tuple[str, ...]
    group: str
    resource: str
    in_meshery_namespace: bool = False
    names: tuple[str, ...] = ()
    # MeshSync modes in which the check makes this request (operator-only checks skip in embedded mode).
    modes: tuple[str, ...] = MODES
    # Needed only where Meshery Server reaches Brokers through its managed port-forward (broker.port-forward).
    port_forward_only: bool = False


def reads(
    resource: str,
    group: str = "",
    *,
    verbs: tuple[str, ...] = ("get",),
    meshery_namespace: bool = False,
    names: tuple[str, ...] = (),
) -> Permission:
    """A read the check makes in both modes; wrap in :func:`operator_only` for operator-mode checks."""
    return Permission(verbs, group, resource, meshery_namespace, names)


def operator_only(perms: Iterable[Permission]) -> tuple[Permission, ...]:
    """The same requests, made only in operator mode (the check does not apply in embedded mode)."""
    return tuple(dataclasses.replace(p, modes=("operator",)) for p in perms)


def port_forward_only(perms: Iterable[Permission]) -> tuple[Permission, ...]:
    """The same requests, made only when the Server's managed Broker port-forward is on."""
    return tuple(dataclasses.replace(p, port_forward_only=True) for p in perms)


def _rules(perms: Iterable[Permission]) -> list[dict[str, object]]:
    """One rule per (group, verbs, names), resources merged, sorted: stable output, as small as RBAC allows."""
    verbs: dict[tuple[str, str, tuple[str, ...]], set[str]] = {}
    for p in perms:
        verbs.setdefault((p.group, p.resource, p.names), set()).update(p.verbs)
    grouped: dict[tuple[str, tuple[str, ...], tuple[str, ...]], list[str]] = {}
    for (group, resource, names), allowed in verbs.items():
        grouped.setdefault((group, tuple(sorted(allowed)), names), []).append(resource)
    rules = []
    for (group, vs, names), resources in sorted(grouped.items()):
        rule: dict[str, object] = {"apiGroups": [group], "resources": sorted(resources)}
        if names:
            rule["resourceNames"] = list(names)
        rule["verbs"] = list(vs)
        rules.append(rule)
    return rules


def manifests(
    perms: Iterable[Permission],
    mode: str,
    meshery_namespace: str,
    sa_namespace: str,
    sa_name: str = NAME,
    port_forward: bool = True,
) -> list[dict[str, object]]:
    """ClusterRole + binding for cluster-wide needs, Role + binding in the Meshery namespace for the rest.
    ``port_forward``: include what testing Meshery's managed Broker port-forward needs."""
    wanted = [p for p in perms if mode in p.modes and (port_forward or not p.port_forward_only)]
    subject = [{"kind": "ServiceAccount", "name": sa_name, "namespace": sa_namespace}]
    labels = {"app.kubernetes.io/name": NAME, "meshery-preflight/mode": mode}
    docs: list[dict[str, object]] = [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": NAME, "labels": labels},
            "rules": _rules(p for p in wanted if not p.in_meshery_namespace),
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": NAME, "labels": labels},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": NAME},
            "subjects": subject,
        },
    ]
    local = _rules(p for p in wanted if p.in_meshery_namespace)
    if local:
        docs += [
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": {"name": NAME, "namespace": meshery_namespace, "labels": labels},
                "rules": local,
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": NAME, "namespace": meshery_namespace, "labels": labels},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": NAME},
                "subjects": subject,
            },
        ]
    return docs
