"""What a check needs the credential to be allowed, declared next to the check, and the RBAC that grants it.

Each check declares the API reads it makes (and, for the rbac.* checks, the rights it verifies Meshery has),
so `meshery-preflight rbac` can print the least ClusterRole and Role that let every check decide, and a test
can prove that nothing less would do.
"""

from __future__ import annotations

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


def reads(
    resource: str,
    group: str = "",
    *,
    verbs: tuple[str, ...] = ("get",),
    meshery_namespace: bool = False,
    names: tuple[str, ...] = (),
    operator_only: bool = False,
) -> Permission:
    return Permission(verbs, group, resource, meshery_namespace, names, ("operator",) if operator_only else MODES)


def _rules(perms: Iterable[Permission]) -> list[dict[str, object]]:
    """Merge by (group, resource, names) and sort, so the output is stable and small."""
    merged: dict[tuple[str, str, tuple[str, ...]], set[str]] = {}
    for p in perms:
        merged.setdefault((p.group, p.resource, p.names), set()).update(p.verbs)
    rules = []
    for (group, resource, names), verbs in sorted(merged.items()):
        rule: dict[str, object] = {"apiGroups": [group], "resources": [resource]}
        if names:
            rule["resourceNames"] = list(names)
        rule["verbs"] = sorted(verbs)
        rules.append(rule)
    return rules


def manifests(
    perms: Iterable[Permission], mode: str, meshery_namespace: str, sa_namespace: str, sa_name: str = NAME
) -> list[dict[str, object]]:
    """ClusterRole + binding for cluster-wide needs, Role + binding in the Meshery namespace for the rest."""
    wanted = [p for p in perms if mode in p.modes]
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
