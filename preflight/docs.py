"""Render the checks reference (docs/checks.md) from the registry, so docs never drift from code."""

from __future__ import annotations

from preflight.engine.model import MESHERY_CODES, Check

# What Meshery Server means by each of its per-connection diagnostics (the words its UI shows).
MESHERY_MEANINGS = {
    "connection_inactive": "Meshery cannot reach or authenticate to the cluster's Kubernetes API: the connection "
    "is inactive.",
    "operator_not_deployed": "Operator mode, but the Operator is not (yet) deployed in the cluster.",
    "operator_deploy_failed": "Meshery could not deploy the Operator, or it runs but is not ready or did not "
    "create its Broker.",
    "broker_unreachable": "Meshery Server cannot connect to the cluster's Broker (NATS, 4222).",
    "broker_networking": "Informational: which path the Server takes to the Broker (in cluster, port-forward, "
    "published endpoint) and the address.",
}
assert tuple(MESHERY_MEANINGS) == MESHERY_CODES


def meshery_words(c: Check) -> str | None:
    """Which of Meshery Server's diagnostics this check's results carry (``meshery_code``), in one sentence."""
    also = ", ".join(f"`{x}`" for x in c.meshery_codes)
    if c.meshery_code and also:
        return f"a fail is `{c.meshery_code}` in Meshery's UI; findings with a known cause may name {also} instead."
    if c.meshery_code:
        return f"a fail is `{c.meshery_code}` in Meshery's UI."
    if also:
        return f"the findings that are one of Meshery's diagnostics name it: {also}."
    return None


def _meshery_section(checks: list[Check]) -> list[str]:
    lines = [
        "",
        '<a id="meshery-diagnostics"></a>',
        "## Meshery's diagnostics",
        "",
        "Meshery Server reports per connection one of the codes below, and its UI shows them. A result that "
        'corresponds to one carries it (`meshery_code` in the JSON report, "In Meshery\'s words" in the HTML '
        "detail), so a finding here matches what Meshery shows. A check's fail carries its code unless the finding "
        "names another; a skip never does (its root cause carries it).",
        "",
        "| code | Meshery means | checks |",
        "| --- | --- | --- |",
    ]
    for code, meaning in MESHERY_MEANINGS.items():
        ids = [c.id for c in checks if code == c.meshery_code or code in c.meshery_codes]
        lines.append(f"| `{code}` | {meaning} | {', '.join(f'`{i}`' for i in ids) or 'none yet'} |")
    return lines


TERMS = [
    "",
    '<a id="terms"></a>',
    "## Terms",
    "",
    "- **Origin**: the address ranges Meshery Server's traffic comes from, as the cluster's firewalls see it "
    "(`--origin`, `origin.cidrs`). Every probe runs from the machine the tool runs on: run it where the Server runs.",
    "- **Private**: RFC 1918 (10/8, 172.16/12, 192.168/16), RFC 6598 (100.64/10) and IPv6 unique-local "
    "(fc00::/7): reachable from elsewhere only through peering, VPN or a transit gateway. Loopback and link-local "
    "are their own classes; every other unicast address is public (documentation ranges included).",
    "- **Needs the data of / reported after**: the two kinds of dependency. A check that needs another's data "
    "(`depends_on`) cannot run until that one passes (or warns); it is skipped, naming the root cause to fix "
    "first. A check reported after another (`after`) stands on its own: it runs whatever the other found, and "
    "when both fail it says they are separate problems, the other one listed first.",
    "- **Server vantage** (`--server-vantage host|docker`): where Meshery Server runs on a workstation. With "
    "`docker` (mesheryctl's default platform) loopback addresses (127.0.0.0/8, localhost, ::1) are the Server's "
    "own container: a kubeconfig server or Broker endpoint on loopback is judged unreachable from the Server "
    "without dialing, though it answers from this machine.",
    "- **Filtered / refused / unreachable**: a connect that times out (something drops the SYN) / is answered "
    "with a reset (reachable, nothing listens) / fails at once with no route (the network path does not exist).",
    "",
    '<a id="broker-paths"></a>',
    "## Broker paths",
    "",
    "Which way Meshery Server reaches a cluster's Broker decides which failures matter (`broker.transport` says "
    "which paths it tries and which works, as the Server's `broker_networking` does):",
    "",
    "| where the Server runs | path | set by |",
    "| --- | --- | --- |",
    "| in the cluster (`--in-cluster`) | the Broker Service's ClusterIP | `KUBERNETES_SERVICE_HOST` |",
    "| outside, managed port-forward on (default) | a port-forward through the API server to the NATS pod "
    "(`broker.port-forward`), then the published endpoint, then `127.0.0.1:<port>` and "
    "`host.docker.internal:<port>` | `MESHERY_MANAGED_BROKER_PORTFORWARD` unset or not `false`; "
    "`--broker-port-forward`; fleet file `broker_port_forward: true` |",
    "| outside, forward off | the published endpoint only | `MESHERY_MANAGED_BROKER_PORTFORWARD=false` "
    "(any case); `--no-broker-port-forward`; fleet file `broker_port_forward: false` |",
    "",
    "With the forward on, one verdict from both paths:",
    "",
    "| port-forward | published endpoint | verdict |",
    "| --- | --- | --- |",
    "| works | works | all pass (`broker.exposure` warns that a LoadBalancer or NodePort is exposure nobody needs) |",
    "| works | fails | the endpoint checks (`broker.service`, `broker.endpoint`, `broker.dns`, `broker.tcp`, "
    "`broker.nats`, `meshery.broker-resource`'s missing endpoint) warn: Meshery reaches the Broker through the "
    "forward; the endpoint matters only with the forward off or a Server older than it |",
    "| fails | works | `broker.port-forward` warns, naming its cause and fix |",
    "| fails | fails | both fail, each naming the other; `broker.transport` fails with both causes, root cause first |",
    "",
    "With the forward off every verdict is the endpoint path's, as before the managed port-forward.",
]


def render(checks: list[Check]) -> str:
    lines = [
        "# Checks reference",
        "",
        "Generated by `meshery-preflight gen-docs`; do not edit by hand. Check ids are a public contract.",
        "",
        "| id | severity | scope | title |",
        "| --- | --- | --- | --- |",
    ]
    lines += [f"| [`{c.id}`](#{c.docs_anchor}) | {c.severity.value} | {c.scope.value} | {c.title} |" for c in checks]
    lines += TERMS
    lines += _meshery_section(checks)
    for c in checks:
        lines += [
            "",
            f'<a id="{c.docs_anchor}"></a>',
            f"## `{c.id}`: {c.title}",
            "",
            f"Category `{c.category}`, severity `{c.severity.value}`, scope `{c.scope.value}`; "
            f"needs the data of {', '.join(f'`{d}`' for d in c.depends_on) or 'nothing'}"
            + (f"; reported after {', '.join(f'`{d}`' for d in c.after)}" if c.after else "")
            + ".",
            "",
            f"**Why it matters.** {c.description or c.title}",
            "",
            f"**How to fix.** {c.remediation}",
        ]
        words = meshery_words(c)
        if words:
            lines += ["", f"**In Meshery's words.** {words[0].upper()}{words[1:]}"]
    return "\n".join(lines) + "\n"
