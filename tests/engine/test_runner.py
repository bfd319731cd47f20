"""The runner and the registry, with stub checks in a private Registry (no network, no cluster)."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from preflight.engine import workers
from preflight.engine.context import ClusterContext, FleetContext
from preflight.engine.facts import Fact, MissingFact
from preflight.engine.model import (
    STATUS_ORDER,
    Check,
    Finding,
    Result,
    Scope,
    Severity,
    Status,
    error,
    fail,
    not_applicable,
    passed,
    severity,
    skip,
    stop,
    warn,
    worst,
)
from preflight.engine.redact import REDACTED, Redactor
from preflight.engine.registry import Registry, RegistryError, check
from preflight.engine.runner import Forked, InProcess, MuteRule, executor_for, run_cluster, run_fleet
from preflight.engine.settings import Settings
from preflight.engine.targets import ClusterTarget, Credential

TOKEN = "sha256~Pl4nted-T0ken-ThatMustNeverLeak-0123456789abcdef"


@pytest.fixture()
def release() -> Iterator[threading.Event]:
    """Hung probes wait on this; setting it at teardown lets their daemon threads end."""
    ev = threading.Event()
    yield ev
    ev.set()


def add(
    reg: Registry,
    cid: str,
    probe: Callable[[Any], Finding],
    depends_on: tuple[str, ...] = (),
    scope: Scope = Scope.CLUSTER,
    reads: tuple[Fact[Any], ...] = (),
) -> Check:
    check(
        id=cid,
        title=f"title of {cid}",
        category=cid.split(".")[0],
        severity=Severity.HIGH,
        remediation=f"fix {cid}",
        depends_on=depends_on,
        scope=scope,
        reads=reads,
        registry=reg,
    )(probe)
    return reg.get(cid)


def returning(finding: Finding, calls: list[str] | None = None, cid: str = "") -> Callable[[Any], Finding]:
    def probe(_: Any) -> Finding:
        if calls is not None:
            calls.append(cid)
        return finding

    return probe


def hanging(release: threading.Event, started: list[str] | None = None) -> Callable[[Any], Finding]:
    def probe(ctx: Any) -> Finding:
        if started is not None:
            started.append(getattr(ctx, "name", "?"))
        release.wait(30)
        return passed("woke up")

    return probe


def cluster(name: str = "c1", settings: Settings | None = None, **target: Any) -> ClusterContext:
    return ClusterContext(ClusterTarget(name=name, **target), settings or Settings(check_timeout=2.0))


def run(
    reg: Registry, ctx: ClusterContext, mutes: Sequence[MuteRule] = (), redactor: Redactor | None = None
) -> dict[str, Result]:
    checks = reg.ordered(reg.all(), Scope.CLUSTER)
    if redactor is not None:
        ctx.state.redactor = redactor
    return {r.check_id: r for r in run_cluster(ctx, checks, mutes)}


# --- ordering and dependencies ---------------------------------------------------------------------


def test_checks_run_in_dependency_order() -> None:
    reg, calls = Registry(), list[str]()
    add(reg, "api.auth", returning(passed("ok"), calls, "api.auth"), depends_on=("api.tcp",))
    add(reg, "api.tcp", returning(passed("ok"), calls, "api.tcp"), depends_on=("api.dns",))
    add(reg, "api.dns", returning(passed("ok"), calls, "api.dns"))
    add(reg, "misc.other", returning(passed("ok"), calls, "misc.other"))
    results = run(reg, cluster())
    assert calls == ["api.dns", "api.tcp", "api.auth", "misc.other"]
    assert list(results) == calls
    assert all(r.status is Status.PASS for r in results.values())


@pytest.mark.parametrize("status", [Status.FAIL, Status.ERROR])
def test_dependants_skip_when_a_dependency_does_not_pass(status: Status) -> None:
    reg, calls = Registry(), list[str]()
    add(reg, "a.first", returning(Finding(status, "first broke"), calls, "a.first"))
    add(reg, "a.second", returning(passed("ok"), calls, "a.second"), depends_on=("a.first",))
    add(reg, "a.third", returning(passed("ok"), calls, "a.third"), depends_on=("a.second",))
    add(reg, "a.free", returning(passed("ok"), calls, "a.free"))
    results = run(reg, cluster())
    assert calls == ["a.first", "a.free"]  # dependants were never called
    second, third = results["a.second"], results["a.third"]
    assert second.status is Status.SKIP
    assert "a.first" in second.message and status.value in second.message
    assert second.evidence["blocked_by"] == "a.first"
    # A chain of skips names the root cause, and the link it came through.
    assert third.status is Status.SKIP and third.evidence["blocked_by"] == "a.first"
    assert "a.first did not pass" in third.message and "via a.second" in third.message
    assert third.remediation == "Fix a.first first; this check runs once it passes."
    assert results["a.free"].status is Status.PASS


def test_a_warning_dependency_does_not_block() -> None:
    reg, calls = Registry(), list[str]()
    add(reg, "a.first", returning(warn("static token"), calls, "a.first"))
    add(reg, "a.second", returning(passed("ok"), calls, "a.second"), depends_on=("a.first",))
    results = run(reg, cluster())
    assert calls == ["a.first", "a.second"]
    assert results["a.second"].status is Status.PASS


def test_a_muted_failure_still_blocks_its_dependants() -> None:
    reg = Registry()
    add(reg, "a.first", returning(fail("down")))
    add(reg, "a.second", returning(passed("ok")), depends_on=("a.first",))
    results = run(reg, cluster(), mutes=[MuteRule("a.first", "*", "known outage")])
    assert results["a.first"].status is Status.MUTED
    assert results["a.second"].status is Status.SKIP


# --- probe failures and budgets ---------------------------------------------------------------------


def test_a_raising_probe_becomes_error_and_the_run_continues() -> None:
    reg = Registry()

    def boom(_: ClusterContext) -> Finding:
        raise RuntimeError("socket exploded")

    add(reg, "x.boom", boom)
    add(reg, "x.bad", lambda _: "not a finding")  # type: ignore[arg-type,return-value]
    add(reg, "x.after", returning(passed("fine")))
    results = run(reg, cluster())
    assert results["x.boom"].status is Status.ERROR
    assert "RuntimeError" in results["x.boom"].message and "socket exploded" in results["x.boom"].message
    assert results["x.bad"].status is Status.ERROR and "not a Finding" in results["x.bad"].message
    assert results["x.after"].status is Status.PASS


def test_a_hanging_probe_is_cut_at_its_budget(release: threading.Event) -> None:
    reg = Registry()
    add(reg, "x.hang", hanging(release))
    add(reg, "x.after", returning(passed("fine")))
    t0 = time.monotonic()
    results = run(reg, cluster(settings=Settings(check_timeout=0.3)))
    elapsed = time.monotonic() - t0
    hung = results["x.hang"]
    assert hung.status is Status.ERROR
    assert "budget" in hung.message and "0.3" in hung.message
    assert hung.duration_s >= 0.29  # it was given its budget...
    assert elapsed < 10  # ...and not the 30 s the probe wanted
    assert results["x.after"].status is Status.PASS


def test_a_clusters_probes_share_one_thread_until_one_overruns(release: threading.Event) -> None:
    reg, threads = Registry(), dict[str, int]()

    def recording(cid: str) -> Callable[[Any], Finding]:
        def probe(_: Any) -> Finding:
            threads[cid] = threading.get_ident()
            return passed("ok")

        return probe

    for i in range(10):
        add(reg, f"a.c{i}", recording(f"a.c{i}"))
    add(reg, "b.hang", hanging(release), depends_on=tuple(f"a.c{i}" for i in range(10)))
    for i in range(5):
        add(reg, f"c.c{i}", recording(f"c.c{i}"), depends_on=("b.hang",) if i == 0 else ())
    before = threading.active_count()
    results = run(reg, cluster(settings=Settings(check_timeout=0.3)))
    assert results["b.hang"].status is Status.ERROR
    first = {threads[f"a.c{i}"] for i in range(10)}
    after = {threads[f"c.c{i}"] for i in range(1, 5)}
    assert len(first) == 1 and len(after) == 1  # one thread per run of probes, not one per probe
    assert first != after  # the overrunning probe kept its thread; the rest got a fresh one
    assert results["c.c0"].status is Status.SKIP
    release.set()
    deadline = time.monotonic() + 10
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert threading.active_count() <= before  # both probe threads exit once their work is done


def test_the_cluster_budget_turns_remaining_checks_into_errors(release: threading.Event) -> None:
    reg, calls = Registry(), list[str]()
    add(reg, "x.hang", hanging(release))
    add(reg, "x.next", returning(passed("fine"), calls, "x.next"))
    add(reg, "x.last", returning(passed("fine"), calls, "x.last"))
    settings = Settings(check_timeout=20.0, cluster_timeout=0.4)
    t0 = time.monotonic()
    results = run(reg, cluster(settings=settings))
    elapsed = time.monotonic() - t0
    assert elapsed < 10  # the cluster budget, not the 20 s check budget, cut the hung probe
    assert results["x.hang"].status is Status.ERROR
    assert results["x.hang"].duration_s >= 0.35
    for cid in ("x.next", "x.last"):
        assert results[cid].status is Status.ERROR
        assert "cluster's budget" in results[cid].message
        assert "--cluster-timeout" in results[cid].remediation
    assert calls == []


# --- mutes -------------------------------------------------------------------------------------------


def test_mutes_turn_warn_fail_error_into_muted_but_never_pass_or_skip() -> None:
    reg = Registry()
    add(reg, "m.warn", returning(warn("slow", latency_ms=180)))
    add(reg, "m.fail", returning(fail("closed")))
    add(reg, "m.error", returning(error("undecided")))
    add(reg, "m.pass", returning(passed("fine")))
    add(reg, "m.skip", returning(skip("n/a")))
    mutes = [MuteRule("m.*", "prod-*", "tracked in OPS-42")]
    results = run(reg, cluster("prod-eu"), mutes)
    for cid, original in (("m.warn", "warn"), ("m.fail", "fail"), ("m.error", "error")):
        r = results[cid]
        assert r.status is Status.MUTED
        assert r.evidence["muted_status"] == original
        assert r.evidence["mute_reason"] == "tracked in OPS-42"
        assert "tracked in OPS-42" in r.message
    assert results["m.warn"].evidence["latency_ms"] == 180  # the probe's evidence is kept
    assert results["m.pass"].status is Status.PASS and "muted_status" not in results["m.pass"].evidence
    assert results["m.skip"].status is Status.SKIP


def test_mutes_match_check_and_cluster_globs() -> None:
    reg = Registry()
    add(reg, "tls.expiry", returning(warn("expires soon")))
    add(reg, "tcp.reach", returning(fail("filtered")))
    mutes = [MuteRule("tls.*", "dev", "lab CA")]
    dev = run(reg, cluster("dev"), mutes)
    prod = run(reg, cluster("prod"), mutes)
    assert dev["tls.expiry"].status is Status.MUTED
    assert dev["tcp.reach"].status is Status.FAIL
    assert prod["tls.expiry"].status is Status.WARN


# --- redaction -----------------------------------------------------------------------------------------


def test_planted_token_is_redacted_from_message_remediation_and_evidence() -> None:
    reg = Registry()
    leaky = fail(
        f"server echoed Authorization: Bearer {TOKEN}",
        remediation=f"rotate {TOKEN}",
        request={"headers": {"Authorization": f"Bearer {TOKEN}"}, "tokens": [TOKEN]},
    )
    add(reg, "leak.probe", returning(leaky))
    target: dict[str, Any] = {
        "credential": Credential("token", token=TOKEN),
        "server": f"https://u:{TOKEN}@203.0.113.1",
    }
    ctx = cluster("c1", **target)
    report = run_fleet([ctx], reg.ordered(reg.all(), Scope.CLUSTER), [], Settings(check_timeout=2.0))
    (result,) = report.clusters[0].results
    assert TOKEN not in repr(result)
    assert TOKEN not in report.clusters[0].server
    assert REDACTED in result.message and REDACTED in result.remediation
    assert result.evidence["request"]["tokens"] == [REDACTED]


# --- fleets ----------------------------------------------------------------------------------------------


def test_hung_clusters_do_not_serialize(release: threading.Event) -> None:
    reg = Registry()
    hung_names = {"c03", "c07", "c11", "c19"}
    lock, in_flight, peak = threading.Lock(), [0], [0]

    def probe(ctx: ClusterContext) -> Finding:
        if ctx.name not in hung_names:
            return passed("ok")
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        release.wait(30)
        return passed("woke")

    add(reg, "x.probe", probe)
    budget = 0.5
    settings = Settings(check_timeout=budget, parallel=20)
    contexts = [cluster(f"c{i:02d}", settings) for i in range(20)]
    seen: list[tuple[int, int, str]] = []
    t0 = time.monotonic()
    order = reg.ordered(reg.all(), Scope.CLUSTER)
    report = run_fleet(contexts, order, [], settings, progress=lambda d, n, name: seen.append((d, n, name)))
    elapsed = time.monotonic() - t0
    assert peak[0] == 4  # all four hung probes were in flight at once
    assert elapsed < 4 * budget  # serialized, the four budgets alone would take this long
    assert [c.name for c in report.clusters] == [c.name for c in contexts]
    for c in report.clusters:
        (r,) = c.results
        expected = Status.ERROR if c.name in hung_names else Status.PASS
        assert r.status is expected, c.name
    assert [d for d, _, _ in seen] == list(range(1, 21))
    assert {name for _, _, name in seen} == {c.name for c in contexts}
    assert report.summary["error"] == 4 and report.summary["pass"] == 16


def test_fleet_checks_receive_a_fleet_context_after_the_clusters() -> None:
    reg = Registry()
    received: list[Any] = []
    state: Fact[str] = Fact("c.state", producer="c.probe", fleet=True)
    local: Fact[str] = Fact("c.local", producer="c.probe")

    def probe(ctx: ClusterContext) -> Finding:
        ctx.set_fact(state, "down" if ctx.name == "bad" else "up")
        ctx.set_fact(local, "not for the fleet")
        return passed("ok") if ctx.name != "bad" else fail("down")

    add(reg, "c.probe", probe)

    def fleet_probe(fctx: FleetContext) -> Finding:
        received.append(fctx)
        failing = [name for name, value in fctx.facts(state).items() if value == "down"]
        return warn("some clusters fail", failing=failing) if failing else passed("all good")

    add(reg, "fleet.summary", fleet_probe, scope=Scope.FLEET)
    add(reg, "fleet.after", returning(passed("ok")), depends_on=("fleet.broken",), scope=Scope.FLEET)
    add(reg, "fleet.broken", returning(fail("no")), scope=Scope.FLEET)
    settings = Settings(check_timeout=2.0)
    contexts = [cluster("good", settings), cluster("bad", settings)]
    report = run_fleet(
        contexts,
        reg.ordered(reg.all(), Scope.CLUSTER),
        reg.ordered(reg.all(), Scope.FLEET),
        settings,
        mutes=[MuteRule("fleet.broken", "fleet", "known")],
    )
    (fctx,) = received
    assert isinstance(fctx, FleetContext)
    assert [m.name for m in fctx.members] == ["bad", "good"] and fctx.settings is settings  # by name
    assert [dict(m.facts) for m in fctx.members] == [{"c.state": "down"}, {"c.state": "up"}]  # fleet facts only
    assert [c.member for c in reversed(report.clusters)] == fctx.members  # what the JSON report carries for merge
    by_id = {r.check_id: r for r in report.fleet_results}
    assert [r.check_id for r in report.fleet_results] == ["fleet.summary", "fleet.broken", "fleet.after"]
    assert by_id["fleet.summary"].status is Status.WARN
    assert by_id["fleet.summary"].evidence["failing"] == ["bad"]
    assert by_id["fleet.broken"].status is Status.MUTED  # fleet mutes match the cluster name "fleet"
    assert by_id["fleet.after"].status is Status.SKIP
    assert [r.check_id for r in report.all_results][-3:] == ["fleet.summary", "fleet.broken", "fleet.after"]


# --- registry ----------------------------------------------------------------------------------------------


def test_duplicate_ids_are_rejected() -> None:
    reg = Registry()
    add(reg, "a.one", returning(passed("ok")))
    with pytest.raises(RegistryError, match="'a.one' is declared twice"):
        add(reg, "a.one", returning(passed("again")))


def test_cycles_are_detected() -> None:
    reg = Registry()
    add(reg, "a.x", returning(passed("ok")), depends_on=("a.z",))
    add(reg, "a.y", returning(passed("ok")), depends_on=("a.x",))
    add(reg, "a.z", returning(passed("ok")), depends_on=("a.y",))
    with pytest.raises(RegistryError) as info:
        reg.ordered(reg.all(), Scope.CLUSTER)
    msg = str(info.value)
    assert msg.startswith("dependency cycle: ")
    assert all(c in msg for c in ("a.x", "a.y", "a.z"))
    with pytest.raises(RegistryError, match="dependency cycle"):
        reg.validate()


def test_validate_rejects_unknown_dependencies() -> None:
    reg = Registry()
    add(reg, "a.x", returning(passed("ok")), depends_on=("a.ghost",))
    with pytest.raises(RegistryError, match="'a.x' depends on unknown check 'a.ghost'"):
        reg.validate()
    # Ordering a selection ignores dependencies outside it (the user chose not to run them).
    assert [c.id for c in reg.ordered(reg.all(), Scope.CLUSTER)] == ["a.x"]


def test_validate_accepts_a_sound_registry() -> None:
    reg = Registry()
    add(reg, "a.x", returning(passed("ok")))
    add(reg, "a.y", returning(passed("ok")), depends_on=("a.x",))
    reg.validate()
    assert [c.id for c in reg.ordered(reg.all(), Scope.FLEET)] == []


def test_select_with_globs() -> None:
    reg = Registry()
    for cid in ("kube-api.dns", "kube-api.tcp", "kube-api.tls", "kubeconfig.context", "fleet.origin"):
        add(reg, cid, returning(passed("ok")))
    ids = lambda checks: [c.id for c in checks]  # noqa: E731
    assert ids(reg.select()) == ["kube-api.dns", "kube-api.tcp", "kube-api.tls", "kubeconfig.context", "fleet.origin"]
    assert ids(reg.select(["kube-api.*"])) == ["kube-api.dns", "kube-api.tcp", "kube-api.tls"]
    assert ids(reg.select(["kube-api.t??", "fleet.*"])) == ["kube-api.tcp", "kube-api.tls", "fleet.origin"]
    assert ids(reg.select(["kube*"], exclude=["*.tls", "kubeconfig.*"])) == ["kube-api.dns", "kube-api.tcp"]
    assert ids(reg.select(exclude=["*"])) == []
    assert ids(reg.select(["nothing.*"])) == []
    assert "kube-api.dns" in reg and "kube-api.nope" not in reg
    with pytest.raises(RegistryError, match="unknown check id"):
        reg.get("kube-api.nope")


def test_check_decorator_fills_metadata() -> None:
    reg = Registry()

    @check(id="kube-api.dns", title="t", category="kube-api", severity=Severity.LOW, remediation="r", registry=reg)
    def probe(_: ClusterContext) -> Finding:
        """Resolves the API server's name,
        from where Meshery runs."""
        return passed("ok")

    chk = reg.get("kube-api.dns")
    assert chk.probe is probe
    assert chk.description == "Resolves the API server's name, from where Meshery runs."
    assert chk.docs_url.endswith("#kube-api-dns")
    assert chk.scope is Scope.CLUSTER and chk.depends_on == ()


def test_dependants_of_a_check_that_does_not_apply_do_not_apply_either() -> None:
    reg, calls = Registry(), list[str]()
    add(reg, "a.first", returning(Finding(Status.SKIP, "embedded mode: no Broker"), calls, "a.first"))
    add(reg, "a.second", returning(passed("ok"), calls, "a.second"), depends_on=("a.first",))
    add(reg, "a.third", returning(passed("ok"), calls, "a.third"), depends_on=("a.second",))
    results = run(reg, cluster())
    assert calls == ["a.first"]
    for cid in ("a.second", "a.third"):
        r = results[cid]
        assert r.status is Status.SKIP and r.message == "not applicable: embedded mode: no Broker"
        assert r.remediation == "" and r.evidence["blocked_by"] == "a.first"
    # A probe's own skip carries no fix either: the check's remediation is for when it fails.
    assert results["a.first"].remediation == ""


# --- one "stop here" idiom ---------------------------------------------------------------------------


def _helper_that_does_not_apply(ctx: ClusterContext) -> str:
    not_applicable("embedded mode: no Broker", mode="embedded")


def test_not_applicable_and_stop_from_a_helper_become_the_checks_finding() -> None:
    reg, calls = Registry(), list[str]()

    def deep(ctx: ClusterContext) -> Finding:
        _helper_that_does_not_apply(ctx)
        return passed("never reached")

    def stopping(_: ClusterContext) -> Finding:
        stop(fail("the Secret is missing", remediation="recreate it", secret="meshery-nats-auth"))

    add(reg, "a.first", deep)
    add(reg, "a.second", returning(passed("ok"), calls, "a.second"), depends_on=("a.first",))
    add(reg, "b.stop", stopping)
    results = run(reg, cluster())
    first = results["a.first"]
    assert first.status is Status.SKIP and first.message == "embedded mode: no Broker"
    assert first.evidence == {"mode": "embedded"} and first.remediation == ""
    # Dependants inherit the reason, exactly as for a returned skip.
    assert results["a.second"].message == "not applicable: embedded mode: no Broker" and calls == []
    stopped = results["b.stop"]
    assert stopped.status is Status.FAIL and stopped.message == "the Secret is missing"
    assert stopped.remediation == "recreate it" and stopped.evidence == {"secret": "meshery-nats-auth"}


def test_worst_follows_the_one_severity_order() -> None:
    order = sorted(STATUS_ORDER, key=severity)
    assert order.index(Status.SKIP) > order.index(Status.PASS)
    assert order.index(Status.FAIL) > order.index(Status.ERROR) > order.index(Status.WARN) > order.index(Status.SKIP)
    assert worst(f.status for f in [passed("a"), skip("b"), warn("c")]) is Status.WARN
    assert worst(f.status for f in [fail("f"), error("e"), fail("g")]) is Status.FAIL
    assert worst(f.status for f in [passed("a"), skip("b")]) is Status.SKIP


# --- typed facts -------------------------------------------------------------------------------------

ADDRESS: Fact[str] = Fact("toy.address", producer="toy.tcp")


def test_registry_rejects_a_fact_read_outside_the_dependency_closure() -> None:
    reg = Registry()
    add(reg, "toy.dns", returning(passed("ok")))
    add(reg, "toy.tcp", returning(passed("ok")), depends_on=("toy.dns",))
    add(reg, "toy.nats", returning(passed("ok")), depends_on=("toy.tcp",), reads=(ADDRESS,))
    add(reg, "toy.auth", returning(passed("ok")), depends_on=("toy.nats",), reads=(ADDRESS,))  # transitively
    add(reg, "toy.self", returning(passed("ok")), reads=(Fact("toy.own", producer="toy.self"),))
    reg.validate()
    add(reg, "toy.stray", returning(passed("ok")), depends_on=("toy.dns",), reads=(ADDRESS,))
    with pytest.raises(RegistryError, match=r"'toy.stray' reads toy.address, but its producer 'toy.tcp'"):
        reg.validate()
    ghost = Registry()
    add(ghost, "toy.nats", returning(passed("ok")), reads=(ADDRESS,))
    with pytest.raises(RegistryError, match="unknown check 'toy.tcp'"):
        ghost.validate()


def test_shipped_checks_declare_every_fact_they_read() -> None:
    from preflight.app import load_registry

    reg = load_registry()  # validates
    assert {f.name for f in reg.get("broker.auth").reads} == {"broker.info", "broker.address", "broker.dialed"}
    assert reg.get("fleet.broker-endpoint-collision").reads[0].producer == "broker.endpoint"


def test_facts_are_typed_set_and_read_and_a_missing_one_names_its_producer() -> None:
    reg = Registry()

    def producer(ctx: ClusterContext) -> Finding:
        ctx.set_fact(ADDRESS, "127.0.0.1")
        return passed("open")

    def consumer(ctx: ClusterContext) -> Finding:
        return passed(f"read {ctx.fact(ADDRESS)}")

    add(reg, "toy.tcp", producer)
    add(reg, "toy.nats", consumer, depends_on=("toy.tcp",), reads=(ADDRESS,))
    results = run(reg, cluster())
    assert results["toy.nats"].message == "read 127.0.0.1"
    empty = cluster("c2")
    assert empty.get_fact(ADDRESS) is None
    with pytest.raises(MissingFact, match="toy.address was not set: toy.tcp"):
        empty.fact(ADDRESS)
    shared: Fact[str] = Fact("toy.shared", producer="toy.tcp", fleet=True)
    a = cluster("a")
    a.set_fact(shared, "10.0.0.1")
    fleet = FleetContext([a.member(Settings().fingerprint_key), empty.member(Settings().fingerprint_key)], Settings())
    assert fleet.facts(shared) == {"a": "10.0.0.1"}


def test_memo_computes_once_per_key_under_concurrent_callers() -> None:
    ctx = cluster()
    computed: list[str] = []
    gate = threading.Barrier(8)
    entered = threading.Event()

    def slow_connect() -> str:
        computed.append("connect")
        entered.set()
        time.sleep(0.2)  # every other caller arrives while this one is still connecting
        return "open"

    def caller() -> str:
        gate.wait(5)
        return ctx.memo("tcp:127.0.0.1:4222", slow_connect)

    threads_out: list[str] = []
    threads = [threading.Thread(target=lambda: threads_out.append(caller())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert entered.is_set() and computed == ["connect"] and threads_out == ["open"] * 8
    # Another key is not held up by this one, and a failed computation is not remembered.
    assert ctx.memo("tcp:127.0.0.2:4222", lambda: "refused") == "refused"
    with pytest.raises(OSError):
        ctx.memo("tcp:127.0.0.3:4222", lambda: (_ for _ in ()).throw(OSError("boom")))
    assert ctx.memo("tcp:127.0.0.3:4222", lambda: "open") == "open"


def test_a_finished_cluster_releases_its_cached_reads_and_keeps_its_facts() -> None:
    reg = Registry()
    shared: Fact[str] = Fact("toy.zone", producer="toy.read", fleet=True)
    big = [{"name": f"node-{i}", "images": list(range(100))} for i in range(50)]

    def read(ctx: ClusterContext) -> Finding:
        nodes = ctx.memo("meshery:nodes", lambda: big)
        ctx.set_fact(shared, "zone-a")
        return passed(f"{len(nodes)} nodes")

    def again(ctx: ClusterContext) -> Finding:
        return passed(f"{len(ctx.memo('meshery:nodes', list))} nodes, read once")

    add(reg, "toy.read", read)
    add(reg, "toy.again", again, depends_on=("toy.read",))
    ctx = cluster()
    results = run(reg, ctx)
    assert results["toy.again"].message == "50 nodes, read once"
    # A fleet's contexts live until the report is written: what the probes cached must not.
    assert len(ctx._memo) == 0 and ctx.memo("meshery:nodes", list) == []
    assert ctx.member(Settings().fingerprint_key).facts == {"toy.zone": "zone-a"}


# --- two dependency kinds, and set-up outside the budgets ---------------------------------------------


def test_reported_after_runs_anyway_and_says_the_problems_are_separate() -> None:
    reg = Registry()
    add(reg, "b.service", returning(fail("load balancer pending")))
    check(
        id="b.endpoint",
        title="t",
        category="b",
        severity=Severity.HIGH,
        remediation="r",
        after=("b.service",),
        registry=reg,
    )(returning(warn("publishes localhost:31222")))
    check(
        id="b.dns",
        title="t",
        category="b",
        severity=Severity.HIGH,
        remediation="r",
        depends_on=("b.service",),
        registry=reg,
    )(returning(passed("never")))
    results = run(reg, cluster())
    ep = results["b.endpoint"]
    assert ep.status is Status.WARN and ep.evidence["independent_of"] == ["b.service"]
    assert ep.message == "publishes localhost:31222 [a separate problem from b.service (fail), reported above]"
    assert results["b.dns"].status is Status.SKIP and "b.service did not pass" in results["b.dns"].message


def test_reported_after_a_check_that_could_not_judge_cannot_judge_either() -> None:
    reg = Registry()
    add(reg, "b.service", returning(skip("embedded mode")))
    check(
        id="b.endpoint",
        title="t",
        category="b",
        severity=Severity.HIGH,
        remediation="r",
        after=("b.service",),
        registry=reg,
    )(returning(passed("never")))
    r = run(reg, cluster())["b.endpoint"]
    assert r.status is Status.SKIP and r.message == "not applicable: embedded mode"


def test_prepare_runs_once_before_the_budgets_and_not_against_them() -> None:
    reg, calls = Registry(), list[int]()

    def slow_setup(targets: Sequence[Any]) -> None:
        calls.append(len(targets))
        time.sleep(0.4)  # longer than the check's whole budget below

    for cid in ("cloud.a", "cloud.b"):
        check(
            id=cid,
            title="t",
            category="cloud",
            severity=Severity.HIGH,
            remediation="r",
            prepare=slow_setup,
            registry=reg,
        )(returning(passed("ok")))
    settings = Settings(check_timeout=0.2)
    ctxs = [cluster("c1", settings), cluster("c2", settings)]
    report = run_fleet(ctxs, reg.ordered(reg.all(), Scope.CLUSTER), [], settings)
    assert calls == [2]
    assert all(r.status is Status.PASS for c in report.clusters for r in c.results)


# --- a cluster that ends early ----------------------------------------------------------------------------


def test_an_internal_error_gives_every_selected_check_of_the_cluster_a_result_with_the_cause() -> None:
    reg = Registry()
    first = add(reg, "a.first", returning(passed("fine")))
    add(reg, "a.second", returning(passed("fine")))
    add(reg, "a.third", returning(passed("fine")))
    checks = reg.ordered(reg.all(), Scope.CLUSTER)
    # A check whose budget cannot be computed: the runner's own code raises while the cluster runs.
    broken = [first, dataclasses.replace(checks[1], timeout_factor="x"), checks[2]]  # type: ignore[arg-type]
    report = run_fleet([cluster("c1", Settings())], broken, [], Settings())
    results = {r.check_id: r for r in report.clusters[0].results}
    assert list(results) == ["a.first", "a.second", "a.third"]
    assert results["a.first"].status is Status.PASS  # what finished stands
    for cid in ("a.second", "a.third"):
        assert results[cid].status is Status.ERROR and results[cid].message.startswith("internal error: TypeError")
        assert results[cid].remediation
    assert report.aborted is None


def test_one_place_chooses_the_executor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workers, "can_fork", lambda: True)
    assert executor_for(Settings(workers=3), 10) == Forked(3)
    assert executor_for(Settings(workers=3), 2) == Forked(2)  # never more workers than clusters
    assert executor_for(Settings(workers=1), 10) == InProcess()
    assert executor_for(Settings(workers=0), workers.CLUSTERS_PER_WORKER - 1) == InProcess()  # a small fleet
    # A process with other threads must not fork, whatever was asked.
    monkeypatch.setattr(workers, "can_fork", lambda: False)
    assert executor_for(Settings(workers=3), 10) == InProcess()
