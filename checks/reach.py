"""The TCP step the kube-api and broker checks share: try the resolved addresses in turn, classify the result.

Not a check. Every connect is memoised per cluster (address, port), so "one connect per address per
cluster" holds across checks and concurrent candidates alike: a filtered port costs one deadline.
"""

from __future__ import annotations

from collections.abc import Sequence

from preflight.engine import reasons
from preflight.engine.context import ClusterContext
from preflight.engine.model import Finding, error, fail, passed
from preflight.engine.probes import addresses as addr
from preflight.engine.probes import tcp

MAX_ADDRESSES = 4  # a name with more answers: the first few decide
LOCAL_FIX = "The connection failed locally: check this machine's network configuration."


def fixes(*, filtered: str, refused: str, unreachable: str) -> dict[str, str]:
    """A fix per outcome: what drops the SYN, what should listen, which path is missing; the local one is shared."""
    return {tcp.FILTERED: filtered, tcp.REFUSED: refused, tcp.UNREACHABLE: unreachable, tcp.FAILED: LOCAL_FIX}


def connect(ctx: ClusterContext, address: str, port: int) -> tcp.TcpOutcome:
    """One connect per address and port per cluster, whoever asks first."""
    return ctx.memo(f"tcp:{address}:{port}", lambda: tcp.connect(address, port, ctx.settings.connect_timeout))


def first_open(
    ctx: ClusterContext, addresses: Sequence[str], port: int, fix: dict[str, str], via: str = ""
) -> tuple[Finding, str | None]:
    """Pass on the first address that accepts, else fail with the last outcome's fix; and the open address."""
    attempts = []
    for address in addresses[:MAX_ADDRESSES]:
        out = connect(ctx, address, port)
        attempts.append(out.as_evidence())
        if out.state == tcp.OPEN:
            shown = addr.hostport(address, port)
            return passed(f"{shown}{via} open in {out.elapsed_ms:g} ms", attempts=attempts), address
        if ctx.remaining() < ctx.settings.connect_timeout:
            break
    if not attempts:
        return error("no address to connect to"), None
    last = attempts[-1]
    state = str(last["state"])
    return (
        fail(
            f"{addr.hostport(str(last['address']), port)}{via} is {state}: {last['detail']}",
            remediation=fix.get(state),
            reason=reasons.of(reasons.TCP, state),
            attempts=attempts,
            state=state,
        ),
        None,
    )
