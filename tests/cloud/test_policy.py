"""The one cloud failure policy (checks/cloud_common.py), class by class: the adapters' tests drive each
error through the real SDKs against the labs; this pins what each class becomes, declared or not."""

from __future__ import annotations

import pytest

from preflight.checks.cloud_common import cloud_probe, failure
from preflight.cloud import errors
from preflight.cloud.identity import CloudIds
from preflight.engine.context import ClusterContext
from preflight.engine.model import Check, Finding, Scope, Severity, Status, passed
from preflight.engine.runner import run_cluster
from preflight.engine.settings import Settings
from preflight.engine.targets import ClusterTarget

HINT = "az login, or set AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET"


def ctx_for(provider: str, declared: bool) -> ClusterContext:
    ctx = ClusterContext(ClusterTarget(name="c1"), Settings())
    ctx.memo("cloud:ids", lambda: CloudIds(provider, {}, declared))
    return ctx


@pytest.mark.parametrize("declared", [False, True])
def test_no_credentials_skip_with_the_hint_unless_the_fleet_file_declared_the_ids(declared: bool) -> None:
    f = failure(ctx_for("aks", declared), errors.NoCredentials("no Azure credential", HINT, detail="chain empty"))
    assert f.status is (Status.ERROR if declared else Status.SKIP)
    # Says once what is missing (the message) and once how to give it (the fix).
    assert f.message == "no Azure credential" and f.remediation == HINT
    assert f.evidence["failure"] == "no-credentials" and f.evidence["detail"] == "chain empty"


@pytest.mark.parametrize("declared", [False, True])
def test_forbidden_is_an_error_naming_the_permission_declared_or_not(declared: bool) -> None:
    exc = errors.Forbidden(
        "not allowed to call ec2:DescribeSecurityGroups",
        "grant the read-only action ec2:DescribeSecurityGroups to the identity the tool uses",
        permission="ec2:DescribeSecurityGroups",
        call="ec2:DescribeSecurityGroups",
    )
    f = failure(ctx_for("eks", declared), exc)
    assert f.status is Status.ERROR and f.evidence["permission"] == "ec2:DescribeSecurityGroups"
    assert f.remediation == exc.hint and f.evidence["call"] == "ec2:DescribeSecurityGroups"
    unnamed = failure(ctx_for("eks", declared), errors.Forbidden("403 Forbidden", permission="compute.firewalls.list"))
    assert unnamed.message == "403 Forbidden (needs compute.firewalls.list)"
    assert unnamed.remediation == "Grant compute.firewalls.list."


@pytest.mark.parametrize(
    ("exc", "status", "fix"),
    [
        (errors.Unauthenticated("AWS rejected the credentials (ExpiredToken)", "aws sso login"), Status.ERROR, None),
        (errors.Throttled("AWS throttled ec2:DescribeInstances (Throttling)"), Status.ERROR, "lower --parallel"),
        (errors.Unavailable("cannot reach ARM", "check the proxy"), Status.ERROR, None),
        (errors.Timeout("ARM did not answer in time", "raise --connect-timeout"), Status.ERROR, None),
        (errors.CloudError("ARM answered 500"), Status.ERROR, None),
        (errors.NotFound("clusters.get x: not found", "check the ids"), Status.FAIL, None),
    ],
)
def test_everything_else_says_what_happened(exc: errors.CloudError, status: Status, fix: str | None) -> None:
    for declared in (False, True):
        f = failure(ctx_for("gke", declared), exc)
        assert f.status is status and f.message == exc.message and f.evidence["failure"] == exc.failure
        assert fix in (f.remediation or "") if fix else f.remediation == (exc.hint or None)


def test_cloud_probe_applies_the_policy_and_skips_other_providers_through_the_runner() -> None:
    def body(_ids: CloudIds) -> Finding:
        raise errors.Timeout("the AWS API did not answer eks:DescribeCluster", "check the route")

    def probe(ctx: ClusterContext) -> Finding:
        return cloud_probe(ctx, "eks", body, lambda: {"aws_api_calls": 3})

    chk = Check("aws.x", "t", "aws", Severity.HIGH, Scope.CLUSTER, probe, "fix", "aws-x")
    ours = run_cluster(ctx_for("eks", False), [chk], ())[0]
    assert ours.status is Status.ERROR and ours.evidence == {
        "aws_api_calls": 3,
        "failure": "timeout",
    }
    other = run_cluster(ctx_for("gke", False), [chk], ())[0]
    assert other.status is Status.SKIP and other.message == "not an EKS cluster (provider: unknown)"
    assert cloud_probe(ctx_for("eks", True), "eks", lambda ids: passed("fine")).status is Status.PASS
