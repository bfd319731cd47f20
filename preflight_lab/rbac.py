"""Who a lab API request is and what RBAC lets it do: identities, rules and the authorizer.

Kept apart from the HTTP server so a test can ask the authorizer directly what a kubeconfig user may
do, and the fleet can grant rules without starting anything. The semantics follow kube-apiserver's
RBAC authorizer (wildcards, subresources, non-resource URLs, bootstrap roles, ``system:masters``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["ANONYMOUS", "CLUSTER_ADMIN", "RBAC", "Identity", "ResourceAttributes", "Rule"]


@dataclass(frozen=True)
class Identity:
    """Who a request authenticated as. ``groups`` are the asserted ones, before the implicit groups."""

    username: str
    groups: tuple[str, ...] = ()
    uid: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "groups", tuple(self.groups))

    @property
    def anonymous(self) -> bool:
        return self.username == "system:anonymous"

    @property
    def effective_groups(self) -> tuple[str, ...]:
        """Groups as kube-apiserver reports them: plus system:authenticated (or unauthenticated)."""
        implicit = "system:unauthenticated" if self.anonymous else "system:authenticated"
        return self.groups if implicit in self.groups else (*self.groups, implicit)


ANONYMOUS = Identity("system:anonymous")


def _tup(value: str | Iterable[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


@dataclass(frozen=True)
class Rule:
    """One RBAC rule. ``"*"`` is a wildcard everywhere.

    ``namespaces=("*",)`` behaves like a ClusterRoleBinding (all namespaces and cluster-scoped
    resources); naming namespaces behaves like RoleBindings there. A rule with ``non_resource_urls``
    governs only non-resource paths (``/version``, ``/healthz``); a trailing ``*`` is a prefix match.
    """

    verbs: tuple[str, ...]
    api_groups: tuple[str, ...] = ("*",)
    resources: tuple[str, ...] = ("*",)
    namespaces: tuple[str, ...] = ("*",)
    resource_names: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("verbs", "api_groups", "resources", "namespaces", "resource_names", "non_resource_urls"):
            object.__setattr__(self, name, _tup(getattr(self, name)))

    def _verb_ok(self, verb: str) -> bool:
        return "*" in self.verbs or verb in self.verbs

    def matches(self, attrs: ResourceAttributes) -> bool:
        if self.non_resource_urls or not self._verb_ok(attrs.verb):
            return False
        if "*" not in self.api_groups and attrs.group not in self.api_groups:
            return False
        combined = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
        if not any(
            r == "*" or r == combined or (attrs.subresource and r == f"*/{attrs.subresource}") for r in self.resources
        ):
            return False
        if self.resource_names and attrs.name not in self.resource_names:
            return False
        return "*" in self.namespaces or (bool(attrs.namespace) and attrs.namespace in self.namespaces)

    def matches_path(self, verb: str, path: str) -> bool:
        if not self.non_resource_urls or not self._verb_ok(verb):
            return False
        return any(
            u == "*" or u == path or (u.endswith("*") and path.startswith(u[:-1])) for u in self.non_resource_urls
        )

    def applies_in(self, namespace: str) -> bool:
        """Whether the rule shows up in a SelfSubjectRulesReview for ``namespace``."""
        return bool(self.non_resource_urls) or "*" in self.namespaces or namespace in self.namespaces


CLUSTER_ADMIN: tuple[Rule, ...] = (Rule(verbs=("*",)), Rule(verbs=("*",), non_resource_urls=("*",)))
_SELF_REVIEWS = Rule(
    verbs=("create",),
    api_groups=("authentication.k8s.io", "authorization.k8s.io"),
    resources=("selfsubjectreviews", "selfsubjectaccessreviews", "selfsubjectrulesreviews"),
)
_PUBLIC_INFO = Rule(verbs=("get",), non_resource_urls=("/healthz", "/livez", "/readyz", "/version", "/version/"))
_DISCOVERY = Rule(
    verbs=("get",),
    non_resource_urls=(
        "/api",
        "/api/*",
        "/apis",
        "/apis/*",
        "/openapi",
        "/openapi/*",
        "/version",
        "/version/",
    ),
)


@dataclass(frozen=True)
class ResourceAttributes:
    """What RBAC decides on for a resource request, as in a SubjectAccessReview."""

    verb: str
    resource: str
    group: str = ""
    namespace: str = ""
    name: str = ""
    subresource: str = ""


class RBAC:
    """Rules bound to users and groups, with the bootstrap bindings every cluster has.

    ``system:authenticated`` gets the self-review and discovery roles, ``system:unauthenticated`` the
    public-info viewer, and members of ``system:masters`` are allowed everything (as in the real
    authorizer chain, where that group short-circuits RBAC).
    """

    SUPERUSER_GROUP = "system:masters"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users: dict[str, list[Rule]] = {}
        self._groups: dict[str, list[Rule]] = {
            "system:authenticated": [_SELF_REVIEWS, _DISCOVERY, _PUBLIC_INFO],
            "system:unauthenticated": [_PUBLIC_INFO],
        }

    def grant_user(self, username: str, rules: Iterable[Rule]) -> None:
        with self._lock:
            self._users.setdefault(username, []).extend(rules)

    def grant_group(self, group: str, rules: Iterable[Rule]) -> None:
        with self._lock:
            self._groups.setdefault(group, []).extend(rules)

    def revoke_user(self, username: str) -> None:
        with self._lock:
            self._users.pop(username, None)

    def is_superuser(self, identity: Identity) -> bool:
        return self.SUPERUSER_GROUP in identity.groups

    def rules_for(self, identity: Identity) -> list[Rule]:
        if self.is_superuser(identity):
            return list(CLUSTER_ADMIN)
        with self._lock:
            rules = list(self._users.get(identity.username, ()))
            for group in identity.effective_groups:
                rules.extend(self._groups.get(group, ()))
        return rules

    def allows(self, identity: Identity, attrs: ResourceAttributes) -> bool:
        return any(rule.matches(attrs) for rule in self.rules_for(identity))

    def allows_path(self, identity: Identity, verb: str, path: str) -> bool:
        return any(rule.matches_path(verb, path) for rule in self.rules_for(identity))
