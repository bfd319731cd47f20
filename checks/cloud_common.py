"""What every cloud check shares: which cloud and cluster, and THE policy for a cloud read that failed.

Not a check. One policy for AWS, GCP and Azure alike (the adapters raise cloud.errors):

- no credential at all (or no SDK): ``skip`` with the exact hint as its fix, unless the fleet file declared
  this cluster's cloud identifiers: then the user asked for the audit, and it is an ``error``;
- a credential the cloud rejects, or a read it forbids: ``error`` naming the login fix or the permission
  (the audit was asked for and could not decide);
- throttled, unreachable, timed out, any other API failure: ``error`` saying so;
- identifiers that name nothing in the account: ``fail`` (the configuration points at no cluster).
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn

from preflight.cloud.errors import CloudError, Forbidden, NoCredentials, NotFound, Throttled
from preflight.cloud.identity import CloudIds, identify
from preflight.engine.context import ClusterContext
from preflight.engine.model import Finding, Status, Stop, error, fail, not_applicable, stop
from preflight.engine.targets import ClusterTarget

THROTTLED_FIX = "The cloud API throttled this tool: retry later, or lower --parallel so fewer clusters ask at once."


def cloud_ids(ctx: ClusterContext) -> CloudIds:
    return ctx.memo("cloud:ids", lambda: identify(ctx.target))


def only_on(ctx: ClusterContext, provider: str) -> CloudIds:
    """This cluster's cloud ids; the check does not apply (a skip) to a cluster of another provider."""
    ids = cloud_ids(ctx)
    if ids.provider != provider:
        article = "an" if provider[0] in "ae" else "a"
        not_applicable(f"not {article} {provider.upper()} cluster (provider: {ctx.target.provider})")
    return ids


def missing(ids: CloudIds, what: str, hint: str, **evidence: Any) -> Finding:
    """No credential, or an identifier the check cannot do without: the message says what, the fix how."""
    ev = {"hint": hint, **({"ids_from": dict(ids.sources)} if ids.sources else {}), **evidence}
    if ids.declared:
        return error(what, remediation=hint, **ev)
    return Finding(Status.SKIP, what, ev, remediation=hint)


def require(ids: CloudIds, what: str, hint: str) -> NoReturn:
    """Stop the probe for an identifier it cannot do without."""
    stop(missing(ids, what, hint))


def failure(ctx: ClusterContext, exc: CloudError, **evidence: Any) -> Finding:
    """THE cloud failure policy (see the module docstring): the one place a CloudError becomes a finding."""
    ev: dict[str, Any] = {**evidence, "failure": exc.failure}
    if exc.call:
        ev["call"] = exc.call
    if exc.detail:
        ev["detail"] = exc.detail
    if isinstance(exc, NoCredentials):
        return missing(cloud_ids(ctx), exc.message, exc.hint, **ev)
    if isinstance(exc, Forbidden):
        named = exc.permission and exc.permission not in exc.message
        message = f"{exc.message} (needs {exc.permission})" if named else exc.message
        return error(message, remediation=exc.hint or f"Grant {exc.permission}.", permission=exc.permission, **ev)
    if isinstance(exc, NotFound):
        return fail(exc.message, remediation=exc.hint or None, **ev)
    if isinstance(exc, Throttled):
        return error(exc.message, remediation=exc.hint or THROTTLED_FIX, **ev)
    return error(exc.message, remediation=exc.hint or None, **ev)


def cloud_probe(
    ctx: ClusterContext,
    provider: str,
    body: Callable[[CloudIds], Finding],
    evidence: Callable[[], Mapping[str, Any]] = dict,
) -> Finding:
    """Run a cloud check's body on its provider's clusters only, applying :func:`failure` to what it raises.

    Every finding it ends with (returned, a helper's early answer, or a failure) carries ``evidence()``: the
    run's API call count, which is empty until the check reached its cloud."""
    ids = only_on(ctx, provider)
    try:
        finding = body(ids)
    except Stop as stopped:
        finding = stopped.finding
    except CloudError as exc:
        return failure(ctx, exc, **evidence())
    extra = evidence()
    if not extra:
        return finding
    return Finding(finding.status, finding.message, {**finding.evidence, **extra}, finding.remediation)


def preloader(provider: str, modules: Sequence[str]) -> Callable[[Sequence[ClusterTarget]], None]:
    """A check's ``prepare`` hook: import the cloud SDK once, before the budgets start, when a cluster needs it."""

    def prepare(targets: Sequence[ClusterTarget]) -> None:
        if any(t.provider == provider for t in targets):
            for module in modules:
                with contextlib.suppress(ImportError):  # a missing SDK is the checks' skip, with its hint
                    importlib.import_module(module)

    return prepare
