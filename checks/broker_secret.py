"""The Broker's token as Meshery Server reads it (Secret meshery-nats-auth), shared by every path that connects."""

from __future__ import annotations

import base64

from preflight.checks import meshery_state as ms
from preflight.engine.context import ClusterContext
from preflight.engine.model import Finding, Status, fail, stop


def secret_token(ctx: ClusterContext) -> str | None:
    """The token Meshery would use (None: no Secret), registered as a secret; the probe stops when it cannot
    be read."""
    path = f"/api/v1/namespaces/{ms.ns(ctx)}/secrets/{ms.TOKEN_SECRET}"
    # Every path that connects (broker.auth, broker.token, the port-forward path) needs it: one read per cluster.
    resp = ctx.memo("broker:token-secret", lambda: ctx.api().get(path))
    if resp.status in (401, 403):
        # Not a verdict on the Broker, and not "does not apply" either: this credential may not read the token.
        stop(
            Finding(
                Status.SKIP,
                f"cannot read Secret {ms.ns(ctx)}/{ms.TOKEN_SECRET} to test the token: needs get on secrets "
                f"(resourceNames: [{ms.TOKEN_SECRET}]) in namespace {ms.ns(ctx)}",
                {"permission": f"get secrets/{ms.TOKEN_SECRET} in {ms.ns(ctx)}"},
                remediation=f"Grant this credential get on Secret {ms.TOKEN_SECRET} in {ms.ns(ctx)} (a Role with "
                "resourceNames; `meshery-preflight rbac` prints it) to have the token tested.",
            )
        )
    if resp.status == 404:
        return None
    data = ((resp.body or {}).get("data") or {}) if isinstance(resp.body, dict) else {}
    raw = data.get("token")
    if not raw:
        stop(fail(f"Secret {ms.ns(ctx)}/{ms.TOKEN_SECRET} has no 'token' key"))
    try:
        token = base64.b64decode(raw).decode()
    except ValueError:
        stop(fail(f"Secret {ms.ns(ctx)}/{ms.TOKEN_SECRET} key 'token' is not base64"))
    ctx.add_secret(token)
    ctx.add_secret(str(raw))
    return token
