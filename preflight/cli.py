"""Command line. Heavy modules (the kubernetes client, the checks, cloud SDKs) load inside commands,
so that `--help` stays instant."""

from __future__ import annotations

import dataclasses
import gc
import ipaddress
import json
import math
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

import click

from preflight import TOOL_NAME, __version__
from preflight.engine import model
from preflight.engine.cancel import Cancellation
from preflight.engine.errors import ConfigError
from preflight.engine.interrupt import Guard, Interrupted, exit_now
from preflight.engine.settings import (
    DEFAULT_CLUSTER_TIMEOUT_S,
    DEFAULT_CONNECT_TIMEOUT_S,
    DEFAULT_EXEC_TIMEOUT_S,
    DEFAULT_LARGE_CLUSTER_OBJECTS,
    DEFAULT_LATENCY_FAIL_MS,
    DEFAULT_LATENCY_WARN_MS,
    DEFAULT_MESHERY_NAMESPACE,
    DEFAULT_PARALLEL,
    Settings,
)

if TYPE_CHECKING:
    from preflight.engine.fingerprint import FingerprintKey
    from preflight.engine.model import RunReport

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
# --fail-on's thresholds are model.STATUS_RANK's: one ranking for the whole tool.
FAIL_ON = model.FAIL_ON


def die(message: str) -> NoReturn:
    # One line whatever the input put in it (a key with a line break, a name with a tab).
    click.echo(f"{TOOL_NAME}: error: {' '.join(message.split())}", err=True)
    sys.exit(EXIT_USAGE)


def _registry() -> Any:
    from preflight.app import load_registry

    return load_registry()


def _progress(done: int, total: int, name: str) -> None:
    sys.stderr.write(f"\r\033[K[{done}/{total}] {name}")
    if done == total:
        sys.stderr.write("\r\033[K")
    sys.stderr.flush()


def parse_outputs(specs: tuple[str, ...]) -> list[tuple[str, str | None]]:
    from preflight.reports import writer

    try:
        parsed = [writer.parse_output_spec(s) for s in specs] or [("console", None)]
    except ValueError as exc:
        die(str(exc))
    on_stdout = [f"{fmt}={path}" if path else fmt for fmt, path in parsed if writer.goes_to_stdout(path)]
    if len(on_stdout) > 1:
        # Two formats interleaved on one stream are neither: /dev/stdout is stdout by another name.
        die(f"only one output format can go to stdout ({', '.join(on_stdout)}); give the others a path (FORMAT=PATH)")
    try:
        writer.check_outputs(parsed)  # here, before the checks and SDKs load: a typo costs no time
    except writer.OutputError as exc:
        die(str(exc))
    return parsed


def exit_code(report: RunReport, fail_on: str) -> int:
    return EXIT_FINDINGS if model.run_fails(report, fail_on) else EXIT_OK


def execute(
    request: Any,
    settings: Settings,
    outputs: list[tuple[str, str | None]],
    include: tuple[str, ...] = (),
    exclude: tuple[str, ...] = (),
    progress: Callable[[int, int, str], None] | None = None,
    cancel: Cancellation | None = None,
    options: Any = None,
) -> RunReport:
    """The `check` command around :func:`preflight.app.run`: bad input exits 2 before any probe runs;
    an interrupted run (SIGINT, SIGTERM) still writes every output and exits 128+signal; an output that
    could not be written exits 2 after the others were written."""
    try:
        from preflight import app

        app.check_outputs(outputs)
        report = app.run(request, settings, include=include, exclude=exclude, progress=progress, cancel=cancel)
    except ConfigError as exc:
        die(str(exc))
    except KeyboardInterrupt:
        report = _startup_report(cancel)
    # From here (the runner made it so) a first signal waits for the reports; a second one still exits at once.
    from preflight import app
    from preflight.engine.execcred import kill_running

    if report.aborted:
        kill_running()  # before writing: a report bound for a FIFO may wait for its reader
    if cancel is not None and cancel.signum is not None:
        import dataclasses

        from preflight.reports.options import RenderOptions

        # The reports state the code this process exits with: 143 after SIGTERM, not SIGINT's 130.
        options = dataclasses.replace(options or RenderOptions(), interrupted_code=cancel.exit_code)
    failed = app.emit(report, outputs, options)
    for line in failed:
        click.echo(f"{TOOL_NAME}: error: {line}", err=True)
    if report.aborted or (cancel is not None and cancel.signum is not None):
        kill_running()
        what = "reports written" if not failed else f"{len(failed)} of {len(outputs)} outputs not written"
        reason = report.aborted or f"interrupted by {cancel.name if cancel else 'a signal'} while writing reports"
        # Probe threads may still be inside their deadlines; do not wait for them on the way out.
        exit_now(cancel.exit_code if cancel else EXIT_INTERRUPTED, f"{TOOL_NAME}: {reason}; {what}")
    if failed:
        sys.exit(EXIT_USAGE)
    return report


def _startup_report(cancel: Cancellation | None) -> RunReport:
    """Interrupted before the runner started: the reports still say so, with no cluster in them."""
    import datetime as dt

    import preflight
    from preflight.engine.model import RunReport

    now = dt.datetime.now(dt.timezone.utc)
    took = f" after {cancel.elapsed():.0f}s" if cancel else ""
    name = f" by {cancel.name}" if cancel else ""
    return RunReport(
        tool_name=preflight.TOOL_NAME,
        tool_version=preflight.__version__,
        started_at=now,
        finished_at=now,
        origin_cidrs=[],
        clusters=[],
        fleet_results=[],
        aborted=f"interrupted{name} during start-up{took}, before any cluster was checked",
    )


def _second_signal(code: int) -> None:
    from preflight.engine.execcred import kill_running

    kill_running()
    exit_now(code, f"{TOOL_NAME}: interrupted again: exiting at once")


def _settings(**kw: Any) -> Settings:
    s = Settings(
        connect_timeout=kw["connect_timeout"],
        check_timeout=kw["check_timeout"],
        cluster_timeout=kw["cluster_timeout"],
        exec_timeout=kw["exec_timeout"],
        parallel=kw["parallel"],
        workers=kw["workers"],
        latency_warn_ms=kw["latency_warn_ms"],
        latency_fail_ms=kw["latency_fail_ms"],
        dns_server=kw["dns_server"],
        meshery_namespace=kw["meshery_namespace"],
        default_mode=kw["meshsync_default_mode"],
        disable_operator=kw["disable_operator"],
        broker_port_forward=kw["broker_port_forward"],
        broker_port_forward_source="flag" if kw["broker_port_forward"] is not None else "default",
        server_vantage=kw["server_vantage"],
        large_cluster_objects=kw["large_cluster_objects"],
        gcp_api_endpoint=kw["gcp_api_endpoint"],
        azure_cloud=kw["azure_cloud"],
        azure_arm_endpoint=kw["azure_arm_endpoint"],
    )
    if s.latency_warn_ms > s.latency_fail_ms:
        die("--latency-warn-ms must not exceed --latency-fail-ms")
    return s


def _fingerprint_key(path: str) -> FingerprintKey:
    from preflight.engine import fingerprint

    try:
        return fingerprint.load(path)
    except ConfigError as exc:
        die(str(exc))


class Number(click.ParamType):
    """A finite number in a range: `nan`, `inf` and `1e309` are typos, not deadlines that never come."""

    name = "number"

    def __init__(self, low: float, high: float) -> None:
        self.low, self.high = low, high

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not (math.isfinite(number) and self.low <= number <= self.high):
            self.fail(f"{value!r} must be a number from {self.low:.10g} to {self.high:.10g}", param, ctx)
        return number


class Workers(click.ParamType):
    """``auto`` (0: decided by the fleet's size and the cores) or a whole number of worker processes."""

    name = "N|auto"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        text = str(value).strip().lower()
        if text == "auto":
            return 0
        if not (text.isdigit() and 1 <= int(text) <= MAX_WORKERS):
            self.fail(f"{value!r} is not auto or a whole number from 1 to {MAX_WORKERS}", param, ctx)
        return int(text)


class DnsServer(click.ParamType):
    """ADDR, ADDR:PORT, V6, [V6] or [V6]:PORT, checked once at start-up instead of once per look-up."""

    name = "ADDR[:PORT]"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value).strip()
        host, port = text, "53"
        if text.startswith("["):
            host, bracket, rest = text[1:].partition("]")
            if not bracket or (rest and not rest.startswith(":")):
                self.fail(f"{value!r} is not [IPV6] or [IPV6]:PORT", param, ctx)
            port = rest[1:] if rest else "53"
        elif text.count(":") == 1:
            host, port = text.split(":")
        try:
            ipaddress.ip_address(host)
        except ValueError:
            self.fail(f"{value!r} is not an IP address with an optional :PORT", param, ctx)
        if not (port.isdigit() and 1 <= int(port) <= 65535):
            self.fail(f"{value!r}: the port must be a number from 1 to 65535", param, ctx)
        return text


MAX_SECONDS = 86400.0
MAX_WORKERS = 64
_seconds = Number(0.05, MAX_SECONDS)
_millis = Number(0.05, MAX_SECONDS * 1000)


def policy_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Deadlines, thresholds and the check selection: shared by `check` and `serve`."""
    options = [
        click.option(
            "--connect-timeout",
            type=_seconds,
            default=DEFAULT_CONNECT_TIMEOUT_S,
            show_default=True,
            help="Deadline in seconds for each connect, handshake and request.",
        ),
        click.option(
            "--check-timeout",
            type=_seconds,
            default=None,
            help="Budget in seconds for one check (default: derived from --connect-timeout).",
        ),
        click.option(
            "--cluster-timeout",
            type=_seconds,
            default=DEFAULT_CLUSTER_TIMEOUT_S,
            show_default=True,
            help="Budget in seconds for all checks of one cluster.",
        ),
        click.option(
            "--exec-timeout",
            type=_seconds,
            default=DEFAULT_EXEC_TIMEOUT_S,
            show_default=True,
            help="Deadline in seconds for an exec credential plugin.",
        ),
        click.option(
            "--parallel",
            type=click.IntRange(min=1, max=1024),
            default=DEFAULT_PARALLEL,
            show_default=True,
            help="Clusters checked at once.",
        ),
        click.option(
            "--workers",
            type=Workers(),
            default="auto",
            show_default=True,
            help="Processes sharing the clusters (and --parallel); auto: one per core once the fleet has "
            "a few dozen clusters per core. 1 checks every cluster in this process.",
        ),
        click.option("--latency-warn-ms", type=_millis, default=DEFAULT_LATENCY_WARN_MS, show_default=True),
        click.option("--latency-fail-ms", type=_millis, default=DEFAULT_LATENCY_FAIL_MS, show_default=True),
        click.option(
            "--dns-server",
            type=DnsServer(),
            metavar="ADDR[:PORT]",
            default=None,
            help="Resolve every name of the run through this DNS server.",
        ),
        click.option(
            "--meshery-namespace",
            default=DEFAULT_MESHERY_NAMESPACE,
            show_default=True,
            help="Namespace of Meshery's in-cluster components (Operator, Broker, MeshSync).",
        ),
        click.option(
            "--meshsync-default-mode",
            type=click.Choice(["embedded", "operator"]),
            default="embedded",
            show_default=True,
            envvar="MESHSYNC_DEFAULT_DEPLOYMENT_MODE",
            show_envvar=True,
            help="Meshery Server's default MeshSync mode; a cluster's meshsync_mode in the fleet file wins.",
        ),
        click.option(
            "--disable-operator",
            is_flag=True,
            envvar="DISABLE_OPERATOR",
            show_envvar=True,
            help="Meshery Server never deploys the Operator (DISABLE_OPERATOR=true).",
        ),
        click.option(
            "--broker-port-forward/--no-broker-port-forward",
            default=None,
            help="Whether Meshery Server reaches Brokers through its managed port-forward over the API server "
            "(default: MESHERY_MANAGED_BROKER_PORTFORWARD, on unless false); a cluster's broker_port_forward in the "
            "fleet file wins. --in-cluster: the Broker's ClusterIP.",
        ),
        click.option(
            "--server-vantage",
            type=click.Choice(["host", "docker"]),
            default="host",
            show_default=True,
            help="Where Meshery Server runs on this workstation: docker (mesheryctl's default platform) means "
            "loopback addresses (127.0.0.1, localhost, ::1) are its container's own, not this machine's.",
        ),
        click.option(
            "--large-cluster-objects",
            type=click.IntRange(min=1, max=10**9),
            default=DEFAULT_LARGE_CLUSTER_OBJECTS,
            show_default=True,
            help="Object count above which MeshSync should run with a blacklist.",
        ),
        click.option(
            "--gcp-api-endpoint",
            metavar="URL",
            default=None,
            help="Send GKE and Compute API calls here (private service endpoints, proxies).",
        ),
        click.option(
            "--azure-cloud",
            type=click.Choice(["public", "china", "usgov"]),
            default="public",
            show_default=True,
            help="Azure cloud whose ARM endpoint and login authority to use.",
        ),
        click.option(
            "--azure-arm-endpoint",
            metavar="URL",
            default=None,
            help="Send Azure Resource Manager calls here instead (overrides --azure-cloud's endpoint).",
        ),
        click.option("--checks", "include", multiple=True, metavar="GLOB", help="Run only these check ids."),
        click.option("--skip-checks", "exclude", multiple=True, metavar="GLOB", help="Do not run these check ids."),
    ]
    for opt in reversed(options):
        fn = opt(fn)
    return fn


def run_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`check`'s policy options plus where its reports go and what fails the run."""
    options = [
        click.option(
            "-o",
            "--output",
            "outputs",
            multiple=True,
            metavar="FORMAT[=PATH]",
            help="Report format (console, json, junit, html, prometheus, markdown), to stdout or PATH. Repeatable.",
        ),
        click.option(
            "--fail-on",
            type=click.Choice([*sorted(FAIL_ON), "new"]),
            default="fail",
            show_default=True,
            help="Exit 1 when any result is at or above this status (error counts as fail); "
            "`new`: only when a result got worse than in --baseline.",
        ),
    ]
    for opt in reversed(options):
        fn = opt(fn)
    return policy_options(fn)


# click >= 8.2 shows the help for a bare command as an error; that stays a help page.
_NO_ARGS_IS_HELP: Any = getattr(click.exceptions, "NoArgsIsHelpError", ())


class OneLineErrors(click.Group):
    """Usage errors as one line and exit 2, like every other bad input, instead of click's usage block;
    Ctrl-C outside `check` is 130 with one line, not `Aborted!` and exit 1."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, False, **extra)
        except _NO_ARGS_IS_HELP as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click.UsageError as exc:
            hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
            click.echo(f"{TOOL_NAME}: error: {exc.format_message()}{hint}", err=True)
            sys.exit(EXIT_USAGE)
        except click.ClickException as exc:
            click.echo(f"{TOOL_NAME}: error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo(f"{TOOL_NAME}: interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        sys.exit(rv if isinstance(rv, int) else EXIT_OK)


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name=TOOL_NAME)
def main() -> None:
    """Preflight and connectivity diagnostics for Meshery fleets.

    Run it where Meshery Server runs: every probe is made from this machine's network position.
    Exit codes: 0 nothing at or above --fail-on, 1 findings, 2 usage or configuration error (or a report
    that could not be written), 130 interrupted (SIGINT), 143 terminated (SIGTERM).
    """


def target_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Which clusters to check, and from where: shared by `check` and `serve`."""
    options = [
        click.option(
            "--kubeconfig",
            "kubeconfigs",
            multiple=True,
            metavar="PATH",
            help="Kubeconfig file (repeatable; merged as kubectl merges). Default: $KUBECONFIG, "
            "else every kubeconfig in $KUBECONFIG_FOLDER (~/.kube).",
        ),
        click.option(
            "--context", "contexts", multiple=True, metavar="GLOB", help="Contexts to check (repeatable, globs)."
        ),
        click.option("--in-cluster", is_flag=True, help="Check the cluster this pod runs in, with its ServiceAccount."),
        click.option("--fleet", "fleet", metavar="FILE", help="Fleet file (YAML) describing the connection set."),
        click.option(
            "--origin",
            "origins",
            multiple=True,
            metavar="CIDR",
            help="Address range Meshery Server's traffic comes from (repeatable).",
        ),
    ]
    for opt in reversed(options):
        fn = opt(fn)
    return fn


FINGERPRINT_KEY_OPTION = click.option(
    "--fingerprint-key-file",
    metavar="PATH",
    default=None,
    help="Key (16+ bytes) for the credential fingerprints in reports; give every run of a fleet the same one "
    "so merge can compare credentials across runs. Default: a random key per run.",
)


@main.command("check")
@target_options
@click.option(
    "--baseline",
    metavar="PREVIOUS.json",
    default=None,
    help="A previous JSON report: mark each result new, fixed, changed or unchanged since then.",
)
@click.option(
    "--shard",
    metavar="K/N|auto",
    default=None,
    help="Check only shard K (from 0) of N of the selected contexts, split by a hash of the context name; "
    "auto: K from $JOB_COMPLETION_INDEX, N from $PREFLIGHT_SHARDS. Fleet checks are skipped (merge reruns them).",
)
@click.option(
    "--pushgateway",
    metavar="URL",
    default=None,
    help="Also push the run's metrics (as -o prometheus) to this Prometheus Pushgateway, "
    "job meshery-preflight, grouped by cluster set and shard.",
)
@click.option(
    "--cluster-set",
    metavar="NAME",
    default=None,
    help="Name of this set of clusters in the Pushgateway grouping key (default: the fleet file's name, else default).",
)
@FINGERPRINT_KEY_OPTION
@click.option("-v", "--verbose", is_flag=True, help="Console: list every result, passes and skips included.")
@run_options
def check_cmd(
    kubeconfigs: tuple[str, ...],
    contexts: tuple[str, ...],
    in_cluster: bool,
    fleet: str | None,
    origins: tuple[str, ...],
    baseline: str | None,
    shard: str | None,
    pushgateway: str | None,
    cluster_set: str | None,
    fingerprint_key_file: str | None,
    outputs: tuple[str, ...],
    fail_on: str,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    verbose: bool,
    **kw: Any,
) -> None:
    """Check every selected cluster and report."""
    cancel = Guard(_second_signal).install().cancel
    try:
        from preflight.engine.plan import Request
        from preflight.reports.options import RenderOptions

        if in_cluster and (kubeconfigs or contexts):
            die("--in-cluster cannot be combined with --kubeconfig or --context")
        if in_cluster and kw["server_vantage"] == "docker":
            die("--server-vantage docker is a Server on a workstation; --in-cluster is a Server inside the cluster")
        if in_cluster and shard:
            die("--shard splits the contexts of a kubeconfig or fleet file; --in-cluster checks one cluster")
        if fail_on == "new" and not baseline:
            die("--fail-on new needs --baseline PREVIOUS.json")
        if pushgateway:
            from preflight.reports.prometheus import check_url

            if problem := check_url(pushgateway):
                die(f"--pushgateway: {problem}")
        parsed = parse_outputs(outputs)
        request = Request(
            list(kubeconfigs), list(contexts), in_cluster, fleet, list(origins), baseline=baseline, shard=shard
        )
        progress = _progress if sys.stderr.isatty() else None
        settings = _settings(**kw)
        if fingerprint_key_file:
            settings = dataclasses.replace(settings, fingerprint_key=_fingerprint_key(fingerprint_key_file))
        options = RenderOptions(verbose=verbose, fail_on=fail_on)
        report = execute(request, settings, parsed, include, exclude, progress, cancel, options)
        if pushgateway:
            from pathlib import Path

            from preflight import app

            name = cluster_set or (Path(fleet).stem if fleet else "default")
            try:
                app.push_metrics(report, pushgateway, cluster_set=name, timeout=settings.connect_timeout * 2)
            except ConfigError as exc:
                die(str(exc))
    except Interrupted:
        # Before the outputs were known: nothing to write yet.
        exit_now(cancel.exit_code, f"{TOOL_NAME}: interrupted by {cancel.name} during start-up; no report written")
    sys.exit(exit_code(report, fail_on))


class Duration(click.ParamType):
    """Seconds, or a number with a unit: ``90``, ``30s``, ``5m``, ``1h``, ``1m30s``."""

    name = "DURATION"
    _UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}

    def __init__(self, low: float, high: float) -> None:
        self.low, self.high = low, high

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        import re

        if isinstance(value, (int, float)):
            seconds = float(value)
        else:
            text = str(value).strip().lower()
            parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text)
            if re.fullmatch(r"\d+(?:\.\d+)?", text):
                seconds = float(text)
            elif parts and "".join(n + u for n, u in parts) == text:
                seconds = sum(float(n) * self._UNITS[u] for n, u in parts)
            else:
                self.fail(f"{value!r} is not a duration (90, 30s, 5m, 1h, 1m30s)", param, ctx)
        if not (math.isfinite(seconds) and self.low <= seconds <= self.high):
            self.fail(f"{value!r} must be from {self.low:g}s to {self.high:g}s", param, ctx)
        return seconds


@main.command("serve")
@target_options
@FINGERPRINT_KEY_OPTION
@click.option(
    "--listen",
    default="127.0.0.1:9464",
    show_default=True,
    metavar="ADDR:PORT",
    help="Where to serve /metrics, /probe, / (HTML report), /report.json, /healthz and /readyz; "
    ":PORT for every interface.",
)
@click.option("--interval", type=Duration(1.0, MAX_SECONDS), default="5m", show_default=True, help="Time between runs.")
@click.option(
    "--jitter",
    type=Number(0.0, 0.5),
    default=0.1,
    show_default=True,
    help="Spread each wait by up to this fraction of --interval, so probers do not fire in step.",
)
@click.option(
    "--cloud-cache-ttl",
    type=Duration(0.0, MAX_SECONDS),
    default="10m",
    show_default=True,
    help="Keep cloud API describes this long across runs and probes.",
)
@click.option(
    "--probe-timeout-margin",
    type=Number(0.0, 60.0),
    default=0.5,
    show_default=True,
    help="Seconds a /probe leaves of the scrape's timeout (X-Prometheus-Scrape-Timeout-Seconds).",
)
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True)
@policy_options
def serve_cmd(
    kubeconfigs: tuple[str, ...],
    contexts: tuple[str, ...],
    in_cluster: bool,
    fleet: str | None,
    origins: tuple[str, ...],
    fingerprint_key_file: str | None,
    listen: str,
    interval: float,
    jitter: float,
    cloud_cache_ttl: float,
    probe_timeout_margin: float,
    log_format: str,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    **kw: Any,
) -> None:
    """Check the fleet every --interval and serve the results to Prometheus (and people) over HTTP."""
    cancel = Guard(_second_signal).install().cancel
    from preflight.engine.plan import Request
    from preflight.serve import command

    if in_cluster and (kubeconfigs or contexts):
        die("--in-cluster cannot be combined with --kubeconfig or --context")
    try:
        address = command.parse_listen(listen)
    except ValueError as exc:
        die(f"--listen {exc}")
    settings = _settings(**kw)
    if fingerprint_key_file:
        settings = dataclasses.replace(settings, fingerprint_key=_fingerprint_key(fingerprint_key_file))
    request = Request(list(kubeconfigs), list(contexts), in_cluster, fleet, list(origins))
    options = command.Options(address, interval, jitter, cloud_cache_ttl, log_format, probe_timeout_margin)
    try:
        command.serve(request, settings, include, exclude, options, cancel)
    except ConfigError as exc:
        die(str(exc))
    except Interrupted:  # stopped during start-up, before it served: nothing to close
        exit_now(EXIT_OK)


@main.command("merge")
@click.argument("reports", nargs=-1, metavar="REPORT.json...")
@click.option(
    "-o",
    "--output",
    "outputs",
    multiple=True,
    metavar="FORMAT[=PATH]",
    help="Report format (console, json, junit, html, prometheus, markdown), to stdout or PATH. Repeatable.",
)
@click.option(
    "--fail-on",
    type=click.Choice([*sorted(FAIL_ON), "new"]),
    default="fail",
    show_default=True,
    help="Exit 1 when any merged result is at or above this status; `new`: only when one got worse than in --baseline.",
)
@click.option("--baseline", metavar="PREVIOUS.json", default=None, help="A previous JSON report to compare with.")
@click.option(
    "--fingerprint-key-file",
    metavar="PATH",
    default=None,
    help="The key every run was given: a report fingerprinted with another key is an error.",
)
@click.option(
    "--pushgateway",
    metavar="URL",
    default=None,
    help="Also push the merged report's metrics to this Prometheus Pushgateway (grouping key shard=all): "
    "the fleet's metrics once, for shards that did not push their own.",
)
@click.option(
    "--cluster-set",
    metavar="NAME",
    default="default",
    show_default=True,
    help="Name of this set of clusters in the Pushgateway grouping key.",
)
def merge_cmd(
    reports: tuple[str, ...],
    outputs: tuple[str, ...],
    fail_on: str,
    baseline: str | None,
    fingerprint_key_file: str | None,
    pushgateway: str | None,
    cluster_set: str,
) -> None:
    """One fleet report from the JSON reports of several runs (regions, shards)."""
    from preflight import app
    from preflight.reports.options import RenderOptions

    if not reports:
        die("merge needs one or more JSON reports: merge A.json B.json ... -o FORMAT[=PATH]")
    if fail_on == "new" and not baseline:
        die("--fail-on new needs --baseline PREVIOUS.json")
    if pushgateway:
        from preflight.reports.prometheus import check_url

        if problem := check_url(pushgateway):
            die(f"--pushgateway: {problem}")
    parsed = parse_outputs(outputs)
    key = _fingerprint_key(fingerprint_key_file) if fingerprint_key_file else None
    try:
        report = app.merge_files(list(reports), baseline_path=baseline, fingerprint_key=key)
    except ConfigError as exc:
        die(str(exc))
    from preflight.engine.merge import missing_in

    if missing := missing_in(report):
        click.echo(
            f"{TOOL_NAME}: warning: merge: shard {', '.join(missing)} missing: the fleet checks are not decided "
            "(error) until every shard's report is merged",
            err=True,
        )
    failed = app.emit(report, parsed, RenderOptions(fail_on=fail_on))
    for line in failed:
        click.echo(f"{TOOL_NAME}: error: {line}", err=True)
    if failed:
        sys.exit(EXIT_USAGE)
    if pushgateway:
        try:
            app.push_metrics(report, pushgateway, cluster_set=cluster_set, timeout=DEFAULT_CONNECT_TIMEOUT_S * 2)
        except ConfigError as exc:
            die(str(exc))
    sys.exit(exit_code(report, fail_on))


@main.command("list-checks")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable list.")
def list_checks(as_json: bool) -> None:
    """List every check id with its category, severity and dependencies."""
    checks = _registry().all()
    if as_json:
        doc = [
            {
                "id": c.id,
                "title": c.title,
                "category": c.category,
                "severity": c.severity.value,
                "scope": c.scope.value,
                "depends_on": list(c.depends_on),
                "after": list(c.after),
                "docs_url": c.docs_url,
            }
            for c in checks
        ]
        click.echo(json.dumps(doc, indent=2))
        return
    width = max(len(c.id) for c in checks)
    for c in checks:
        click.echo(f"{c.id:<{width}}  {c.severity.value:<8}  {c.scope.value:<7}  {c.title}")


@main.command("explain")
@click.argument("check_id")
def explain(check_id: str) -> None:
    """What a check verifies, why it matters for Meshery, and how to fix it."""
    from preflight.docs import meshery_words

    registry = _registry()
    if check_id not in registry:
        die(f"unknown check id {check_id!r} (see `{TOOL_NAME} list-checks`)")
    c = registry.get(check_id)
    lines = [
        f"{c.id}: {c.title}",
        f"  category: {c.category}   severity: {c.severity.value}   scope: {c.scope.value}",
        f"  needs the data of: {', '.join(c.depends_on) or 'nothing'}",
        *([f"  reported after: {', '.join(c.after)}"] if c.after else []),
        "",
        "Why it matters:",
        f"  {c.description or c.title}",
        "",
        "How to fix:",
        f"  {c.remediation}",
        "",
        *([f"In Meshery's words: {words}", ""] if (words := meshery_words(c)) else []),
        f"Docs: {c.docs_url}",
    ]
    click.echo("\n".join(lines))


@main.command("demo")
@click.option(
    "--dir",
    "directory",
    default="preflight-demo",
    show_default=True,
    help="Where the demo writes its JSON and JUnit reports and lab files.",
)
def demo(directory: str) -> None:
    """Start a local lab fleet with typical failures, check it, and write the reports."""
    import time

    from preflight import demo as lab_demo

    t0 = time.monotonic()
    try:
        with lab_demo.running(directory) as (request, settings, outputs):
            report = execute(request, settings, outputs)
    except ConfigError as exc:
        die(str(exc))
    lab_demo.print_summary(report, outputs, time.monotonic() - t0)
    # Everything is stopped; skip the interpreter's last full collection over the SDKs' objects on the way out.
    gc.freeze()
    sys.exit(EXIT_OK)


@main.command("rbac")
@click.option(
    "--mode",
    type=click.Choice(["embedded", "operator"]),
    default="operator",
    show_default=True,
    help="MeshSync mode of the clusters it will audit (operator adds the Broker reads and the Operator's rights).",
)
@click.option("--meshery-namespace", default=DEFAULT_MESHERY_NAMESPACE, show_default=True)
@click.option(
    "--service-account",
    default="meshery-preflight/meshery-preflight",
    show_default=True,
    metavar="NAMESPACE/NAME",
    help="The ServiceAccount the audit runs as.",
)
@click.option(
    "--broker-port-forward/--no-broker-port-forward",
    "port_forward",
    default=None,
    help="Whether the audited Servers use the managed Broker port-forward (default: "
    "MESHERY_MANAGED_BROKER_PORTFORWARD, on unless false): on adds create pods/portforward in the Meshery namespace.",
)
def rbac_cmd(mode: str, meshery_namespace: str, service_account: str, port_forward: bool | None) -> None:
    """Print the ClusterRole and Role (with bindings) that let every check decide, generated from the registry."""
    import os

    import yaml

    from preflight.engine.permissions import manifests
    from preflight.engine.settings import PORT_FORWARD_ENV, port_forward_policy

    sa_namespace, sep, sa_name = service_account.partition("/")
    if not sep or not sa_namespace or not sa_name or "/" in sa_name:
        die(f"--service-account {service_account!r}: expected NAMESPACE/NAME")
    perms = [p for c in _registry().all() for p in c.permissions]
    forward, _source = port_forward_policy(port_forward, os.environ)
    docs = manifests(perms, mode, meshery_namespace, sa_namespace, sa_name, port_forward=forward)
    flag = "" if forward or mode != "operator" else " --no-broker-port-forward"
    header = f"# Generated by `{TOOL_NAME} rbac --mode {mode}{flag}`: what the checks read, and nothing else.\n"
    if mode == "operator" and forward:
        header += (
            f"# create pods/portforward (Role in {meshery_namespace}): broker.port-forward opens the tunnel Meshery "
            f"Server reaches the Broker through (its managed port-forward, on unless {PORT_FORWARD_ENV}=false); "
            "--no-broker-port-forward leaves it out.\n"
        )
    click.echo(header + yaml.safe_dump_all(docs, sort_keys=False), nl=False)


@main.command("gen-docs", hidden=True)
def gen_docs() -> None:
    """Print docs/checks.md, the checks reference, generated from the registry."""
    from preflight.docs import render

    click.echo(render(_registry().all()), nl=False)


if __name__ == "__main__":
    main()
