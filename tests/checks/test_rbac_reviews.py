"""The RBAC checks' answers come partly from one SelfSubjectRulesReview: they must equal what an access
review per question says, which the lab's HTTPS API servers decide with their RBAC evaluator.

Rule sets cover RoleBindings in Meshery's namespace and elsewhere, wildcards on each field, rules naming
objects, cluster-admin and nothing at all; the reference answers are SelfSubjectAccessReviews sent one by
one, as the checks did before.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from preflight import app
from preflight.checks import rbac
from preflight.engine import access
from preflight.engine.context import ClusterContext
from preflight.engine.plan import Request, build
from preflight.engine.settings import Settings
from preflight_lab.apiserver import CLUSTER_ADMIN, Rule
from preflight_lab.fleet import ClusterSpec, LabFleet

NS = "meshery"
QUESTIONS: list[access.Question] = [
    *[(v, g, r, None) for g, r in rbac.DISCOVERY for v in ("list", "watch")],
    *[(v, g, r, NS if namespaced else None) for v, g, r, namespaced in rbac.OPERATOR_DEPLOY],
    ("list", "", "nodes", None),
    ("watch", "", "nodes", None),
    access.EVERYTHING,
]
READ = ("get", "list", "watch")
RULE_SETS: dict[str, tuple[Rule, ...]] = {
    "admin": CLUSTER_ADMIN,
    "nothing": (),
    "meshery-chart": (
        Rule(verbs=READ, api_groups=("", "apps", "batch", "networking.k8s.io", "apiextensions.k8s.io")),
        Rule(verbs=("list", "watch"), api_groups=("",), resources=("nodes",)),
    ),
    "admin-in-meshery-only": (Rule(verbs=("*",), namespaces=(NS,)),),
    "admin-elsewhere": (Rule(verbs=("*",), namespaces=("other",)), Rule(verbs=("list",), resources=("pods",))),
    "create-in-meshery": (
        Rule(verbs=("create",), api_groups=("", "apps", "meshery.io"), namespaces=(NS,)),
        Rule(verbs=("create",), api_groups=("*",), resources=("namespaces", "clusterroles")),
    ),
    "named-objects": (
        Rule(verbs=("*",), api_groups=("*",), resources=("*",), resource_names=("one",)),
        Rule(verbs=("list",), api_groups=("",), resources=("pods",), namespaces=(NS,)),
    ),
    "wildcard-verbs-not-groups": (Rule(verbs=("*",), api_groups=("",), resources=("*",)),),
    "wildcard-groups-not-verbs": (Rule(verbs=("list", "create"), api_groups=("*",), resources=("*",)),),
    "watch-only": (Rule(verbs=("watch",), api_groups=("",), resources=("nodes", "pods")),),
}


def _random_rules(seed: int) -> tuple[Rule, ...]:
    rnd = random.Random(seed)
    verbs = ["get", "list", "watch", "create", "*"]
    groups = ["", "apps", "batch", "meshery.io", "rbac.authorization.k8s.io", "apiextensions.k8s.io", "*"]
    resources = [r for _g, r in rbac.DISCOVERY] + ["nodes", "secrets", "brokers", "clusterroles", "*"]
    return tuple(
        Rule(
            verbs=tuple(rnd.sample(verbs, rnd.randint(1, 2))),
            api_groups=tuple(rnd.sample(groups, rnd.randint(1, 2))),
            resources=tuple(rnd.sample(resources, rnd.randint(1, 4))),
            namespaces=rnd.choice([("*",), (NS,), ("other",), (NS, "other")]),
            resource_names=rnd.choice([(), (), (), ("one",)]),
        )
        for _ in range(rnd.randint(1, 6))
    )


SPECS = [ClusterSpec(name=name, rules=rules) for name, rules in RULE_SETS.items()]
SPECS += [ClusterSpec(name=f"random-{seed}", rules=_random_rules(seed)) for seed in range(12)]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory):
    with LabFleet(SPECS, tmp_path_factory.mktemp("rbac-reviews")) as fleet:
        yield fleet


def _contexts(kubeconfig: Path) -> list[ClusterContext]:
    settings = Settings(connect_timeout=5.0, meshery_namespace=NS)
    return build(Request(kubeconfigs=[str(kubeconfig)]), settings, app.load_registry(), {}).contexts


def test_answers_equal_one_access_review_per_question(lab: LabFleet) -> None:
    for ctx in _contexts(lab.kubeconfig_path):
        server = lab.clusters[ctx.name].server
        assert server is not None
        expected = {q: ctx.api().can(q[0], q[2], q[1], q[3]) for q in QUESTIONS}
        assert None not in expected.values()
        server.clear_requests()
        answers = rbac._reviews(ctx, QUESTIONS)
        got = {q: answers[tuple(str(x) for x in q)] for q in QUESTIONS}
        assert got == expected, ctx.name
        posts = [r.path.rsplit("/", 1)[-1] for r in server.requests()]
        assert posts.count("selfsubjectrulesreviews") == 1 and len(posts) <= len(QUESTIONS) + 1, ctx.name
        if ctx.name == "admin":
            assert posts.count("selfsubjectaccessreviews") == 1
        ctx.close()


def test_without_an_answer_from_rules_reviews_every_question_is_asked() -> None:
    incomplete = access.RulesReview(NS, ({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]},), True)
    assert access.to_ask(QUESTIONS, True, incomplete) == QUESTIONS
    assert access.to_ask(QUESTIONS, False, None) == QUESTIONS


def test_cluster_wide_allowed_by_rules_is_still_asked() -> None:
    """A rule listed in Meshery's namespace may come from a RoleBinding there: not proof of cluster-wide."""
    review = access.RulesReview(NS, ({"verbs": ["list"], "apiGroups": [""], "resources": ["pods"]},), False)
    assert access.decide(("list", "", "pods", None), False, review) is None
    assert access.decide(("list", "", "pods", NS), False, review) is True
    assert access.decide(("watch", "", "pods", None), False, review) is False
    assert access.decide(("list", "", "pods", "other"), False, review) is None
