"""Which access questions a SelfSubjectRulesReview answers exactly, so that only the rest cost a
SelfSubjectAccessReview each.

A rules review for namespace N lists the rules of the ClusterRoleBindings and of N's RoleBindings, and
says ``incomplete`` when an authorizer in the chain cannot list its rules (webhooks, the Node
authorizer). When it is complete:

- a question in N is answered by the rules, as RBAC matches them (wildcards included);
- a cluster-wide question the rules deny is denied: cluster-wide rights come from ClusterRoleBindings,
  which are all listed. One the rules allow may come from N's RoleBindings only: it is asked;
- when the access review of verb, group and resource ``*`` cluster-wide allows, every question is
  allowed (only a rule of ``*`` on all three, cluster-wide, allows it, and no webhook could deny).

Otherwise (incomplete, no answer, a server without rules reviews) every question is asked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# (verb, group, resource, namespace or None for cluster-wide)
Question = tuple[str, str, str, str | None]
EVERYTHING: Question = ("*", "*", "*", None)


def _has(rule: Mapping[str, Any], key: str, value: str) -> bool:
    listed = rule.get(key) or ()
    return isinstance(listed, list) and ("*" in listed or value in listed)


def rule_allows(rule: Mapping[str, Any], verb: str, group: str, resource: str) -> bool:
    """RBAC's match of one rule for a request without a name or subresource (a rule naming objects
    matches only requests for those objects)."""
    names = rule.get("resourceNames") or ()
    return (
        _has(rule, "verbs", verb)
        and _has(rule, "apiGroups", group)
        and _has(rule, "resources", resource)
        and (not names or "" in names)
    )


@dataclass(frozen=True)
class RulesReview:
    namespace: str
    rules: tuple[Mapping[str, Any], ...]
    incomplete: bool

    @classmethod
    def from_status(cls, namespace: str, status: Any) -> RulesReview | None:
        """The review's status as the API returned it; None when it is not shaped like one."""
        if not isinstance(status, Mapping) or not isinstance(status.get("resourceRules", []), list):
            return None
        rules = tuple(r for r in status.get("resourceRules") or () if isinstance(r, Mapping))
        incomplete = bool(status.get("incomplete")) or bool(status.get("evaluationError"))
        return cls(namespace, rules, incomplete)

    def allows(self, verb: str, group: str, resource: str) -> bool:
        return any(rule_allows(r, verb, group, resource) for r in self.rules)


def decide(question: Question, everything: bool | None, review: RulesReview | None) -> bool | None:
    """The exact answer without an access review of its own, or None: ask one."""
    if review is None or review.incomplete:
        return None
    if everything:
        return True
    verb, group, resource, namespace = question
    allowed = review.allows(verb, group, resource)
    if namespace == review.namespace:
        return allowed
    if namespace is None and not allowed:
        return False
    return None


def to_ask(questions: Sequence[Question], everything: bool | None, review: RulesReview | None) -> list[Question]:
    return [q for q in questions if decide(q, everything, review) is None]
