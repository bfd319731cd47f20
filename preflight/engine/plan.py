"""Turn flags, environment and the fleet file into targets, settings and mutes for one run.

Shared by `check` and `demo`, so the demo exercises exactly the path users run.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from preflight.engine import fleetfile, kubeconfig, provider, targets
from preflight.engine import shard as sharding
from preflight.engine.context import ClusterContext
from preflight.engine.errors import ConfigError
from preflight.engine.fleetfile import FleetFile
from preflight.engine.registry import Registry
from preflight.engine.runner import MuteRule
from preflight.engine.settings import Settings, port_forward_policy


@dataclass
class Request:
    kubeconfigs: list[str] = field(default_factory=list)
    contexts: list[str] = field(default_factory=list)
    in_cluster: bool = False
    fleet: str | None = None
    origins: list[str] = field(default_factory=list)
    # Where --in-cluster reads the ServiceAccount (tests point it at a lab directory).
    service_account_dir: str | None = None
    # A previous JSON report to compare with (--baseline).
    baseline: str | None = None
    # K/N or auto (--shard): check only this share of the selected contexts.
    shard: str | None = None


@dataclass
class Plan:
    contexts: list[ClusterContext]
    settings: Settings
    mutes: list[MuteRule]
    fleet: FleetFile | None
    shard: sharding.Shard | None = None


def _origins(values: list[str]) -> list[str]:
    out = []
    for v in values:
        try:
            out.append(str(ipaddress.ip_network(v, strict=False)))
        except ValueError:
            raise ConfigError(f"--origin {v!r} is not a CIDR") from None
    return out


def _fleet_contexts_exist(fleet: FleetFile, merged: kubeconfig.MergedKubeconfig) -> None:
    for i, entry in enumerate(fleet.clusters):
        if not targets.matching(merged.contexts, entry.context):
            files = ", ".join(str(f) for f in merged.files)
            raise ConfigError(
                f"{fleet.where(entry.line, f'clusters[{i}].context')}: {entry.context!r} is in none of the "
                f"kubeconfig files ({files})"
            )


def build(req: Request, settings: Settings, registry: Registry, env: Mapping[str, str]) -> Plan:
    part = sharding.parse(req.shard, env) if req.shard else None
    fleet = fleetfile.load(Path(req.fleet)) if req.fleet else None
    settings = dataclasses.replace(
        settings, origin_cidrs=_origins(req.origins) or (fleet.origin_cidrs if fleet else [])
    )
    if fleet:
        settings = dataclasses.replace(
            settings,
            latency_warn_ms=fleet.thresholds.get("latency_warn_ms", settings.latency_warn_ms),
            latency_fail_ms=fleet.thresholds.get("latency_fail_ms", settings.latency_fail_ms),
        )
        if settings.latency_warn_ms > settings.latency_fail_ms:
            raise ConfigError(
                f"{fleet.path}: thresholds: latency warn {settings.latency_warn_ms:g} ms exceeds latency fail "
                f"{settings.latency_fail_ms:g} ms (one comes from the fleet file, the other from the flags)"
            )
    mutes = []
    for i, m in enumerate(fleet.mutes if fleet else []):
        if fleet and not registry.select([m.check]):
            raise ConfigError(
                f"{fleet.where(m.line, f'mutes[{i}].check')}: {m.check!r} matches no check id "
                "(see `meshery-preflight list-checks`)"
            )
        mutes.append(MuteRule(m.check, m.cluster, m.reason))

    if settings.broker_port_forward is None:
        forward, source = port_forward_policy(None, env)
        settings = dataclasses.replace(settings, broker_port_forward=forward, broker_port_forward_source=source)
    mode = settings.default_mode
    targets.check_proxy_environment(env)
    if req.in_cluster:
        sa = {"sa_dir": Path(req.service_account_dir)} if req.service_account_dir else {}
        chosen = [targets.in_cluster_target(env, **sa)]
    else:
        explicit = req.kubeconfigs or ([str(p) for p in fleet.kubeconfig] if fleet else [])
        merged = kubeconfig.merge(kubeconfig.discover_paths(explicit, env))
        if not merged.contexts:
            files = ", ".join(str(f) for f in merged.files)
            raise ConfigError(f"{files}: the kubeconfig defines no contexts")
        if fleet and not req.contexts:
            _fleet_contexts_exist(fleet, merged)
        patterns = req.contexts or ([c.context for c in fleet.clusters] if fleet else [])
        names = targets.select_contexts(merged, patterns)
        chosen = [targets.from_context(merged, n, env) for n in (sharding.select(names, part, str) if part else names)]
    contexts = []
    for t in chosen:
        entry = fleet.cluster(t.name) if fleet else None
        t.mode = (entry.meshsync_mode if entry else None) or mode
        t.mode_from_fleet = bool(entry and entry.meshsync_mode)
        t.declared_provider = entry.provider if entry and entry.provider else None
        t.provider = provider.detect(t).provider
        if entry:
            t.provider_ids = {k: v for k, v in (("aws", entry.aws), ("gcp", entry.gcp), ("azure", entry.azure)) if v}
            t.timeouts = entry.timeouts
        own = settings.with_overrides(t.timeouts)
        if entry and entry.broker_port_forward is not None:
            own = dataclasses.replace(
                own, broker_port_forward=entry.broker_port_forward, broker_port_forward_source="fleet file"
            )
        contexts.append(ClusterContext(t, own))
    return Plan(contexts, settings, mutes, fleet, part)
