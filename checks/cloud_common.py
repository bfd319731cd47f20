"""What every cloud check shares: which cloud and cluster, and how a missing credential is reported.

Not a check. A missing credential skips the cloud checks with the exact hint, unless the fleet file
declared this cluster's cloud identifiers: then the user asked for them, and it is an error.
"""

from __future__ import annotations

from preflight.cloud.identity import CloudIds, identify
from preflight.context import ClusterContext
from preflight.model import Finding, Status, error, skip


def cloud_ids(ctx: ClusterContext) -> CloudIds:
    return ctx.memo("cloud:ids", lambda: identify(ctx.target))


def not_this_cloud(ctx: ClusterContext, provider: str) -> Finding | None:
    ids = cloud_ids(ctx)
    if ids.provider != provider:
        article = "an" if provider[0] in "ae" else "a"
        return skip(f"not {article} {provider.upper()} cluster (provider: {ctx.target.provider})")
    return None


def missing(ids: CloudIds, what: str, hint: str) -> Finding:
    """No credential, or an identifier the check cannot do without."""
    if ids.declared:
        return error(what, remediation=hint)
    return Finding(Status.SKIP, what, {"hint": hint}, remediation=hint)


def api_calls(ctx: ClusterContext, name: str) -> int:
    from preflight.cloud.cache import run_cache

    return run_cache(ctx.settings.shared, name).calls
