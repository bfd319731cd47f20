"""Run-wide settings: deadlines, thresholds and the Server's origin, with documented defaults.

Configuration only, and frozen: what changes while a run goes (cloud caches, call counts, breakers, the
redactor's secrets, the fingerprint key in use) is the run's :class:`preflight.engine.runstate.RunState`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from preflight.engine.fingerprint import FingerprintKey

DEFAULT_CONNECT_TIMEOUT_S = 3.0
DEFAULT_EXEC_TIMEOUT_S = 10.0
DEFAULT_CLUSTER_TIMEOUT_S = 60.0
DEFAULT_PARALLEL = 32
DEFAULT_LATENCY_WARN_MS = 150.0
DEFAULT_LATENCY_FAIL_MS = 500.0
DEFAULT_LATENCY_SAMPLES = 5
DEFAULT_MESHERY_NAMESPACE = "meshery"
DEFAULT_LARGE_CLUSTER_OBJECTS = 5000


PORT_FORWARD_ENV = "MESHERY_MANAGED_BROKER_PORTFORWARD"


def port_forward_policy(flag: bool | None, env: Mapping[str, str]) -> tuple[bool, str]:
    """Whether Meshery Server opens its managed Broker port-forward, and what said so: the flag wins, else
    MESHERY_MANAGED_BROKER_PORTFORWARD as the Server reads it (on unless "false", in any case)."""
    if flag is not None:
        return flag, "flag"
    raw = env.get(PORT_FORWARD_ENV)
    if raw is None:
        return True, "default"
    return raw.lower() != "false", "environment"


@dataclass(frozen=True)
class Settings:
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S
    # Per-check budget; None derives it from connect_timeout and the check's timeout_factor.
    check_timeout: float | None = None
    cluster_timeout: float = DEFAULT_CLUSTER_TIMEOUT_S
    exec_timeout: float = DEFAULT_EXEC_TIMEOUT_S
    parallel: int = DEFAULT_PARALLEL
    # Worker processes sharing the clusters (the cores a large fleet can use); 0: decided by the fleet's size.
    workers: int = 0
    origin_cidrs: list[str] = field(default_factory=list)
    latency_warn_ms: float = DEFAULT_LATENCY_WARN_MS
    latency_fail_ms: float = DEFAULT_LATENCY_FAIL_MS
    latency_samples: int = DEFAULT_LATENCY_SAMPLES
    dns_server: str | None = None
    meshery_namespace: str = DEFAULT_MESHERY_NAMESPACE
    # Meshery Server's policy: MESHSYNC_DEFAULT_DEPLOYMENT_MODE and DISABLE_OPERATOR.
    default_mode: str = "embedded"
    disable_operator: bool = False
    # Meshery Server's MESHERY_MANAGED_BROKER_PORTFORWARD (--broker-port-forward wins; None: decided from the
    # environment when the run is planned); a cluster's broker_port_forward in the fleet file wins over both.
    broker_port_forward: bool | None = None
    # Where broker_port_forward came from, for messages: flag, environment, default or fleet file.
    broker_port_forward_source: str = "default"
    # Where Meshery Server runs on a workstation: "host", or "docker" (a container: loopback is its own).
    server_vantage: str = "host"
    large_cluster_objects: int = DEFAULT_LARGE_CLUSTER_OBJECTS
    # Cloud endpoints, for sovereign clouds, private endpoints, proxies and tests.
    gcp_api_endpoint: str | None = None
    azure_cloud: str = "public"
    azure_arm_endpoint: str | None = None
    # Builds the Azure TokenCredential for a login authority instead of DefaultAzureCredential
    # (the demo's and the tests' lab token, so the default chain never probes a metadata address).
    azure_credential: Callable[[str], Any] | None = None
    # CA file for the cloud APIs' HTTPS (a TLS-inspecting proxy's CA, a lab CA); default: the environment's.
    cloud_ca_file: str | None = None
    # Keys the credential fingerprints (fleet.shared-credential); one --fingerprint-key-file makes runs
    # comparable. None: a random key per run (RunState.fingerprint_key).
    fingerprint_key: FingerprintKey | None = None

    def with_overrides(self, overrides: dict[str, float]) -> Settings:
        """A copy with a cluster's own timeouts (fleet file) applied."""
        return dataclasses.replace(
            self,
            connect_timeout=overrides.get("connect", self.connect_timeout),
            check_timeout=overrides.get("check", self.check_timeout),
            cluster_timeout=overrides.get("cluster", self.cluster_timeout),
            exec_timeout=overrides.get("exec", self.exec_timeout),
        )
