"""The fleet file: a full valid example, and errors that name file:line and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from preflight.engine.errors import ConfigError
from preflight.engine.fleetfile import ClusterEntry, Mute, load

FULL = """\
version: 1
kubeconfig:
  - kube/prod.yaml
  - ../shared/staging.yaml
  - {absolute}
origin:
  cidrs:
    - 203.0.113.0/24
    - 198.51.100.7
    - "2001:db8::/32"
    - 10.1.2.3/8
defaults:
  meshsync_mode: operator
  timeouts:
    connect: 2
    cluster: 90
thresholds:
  latency_warn_ms: 100
  latency_fail_ms: 400.5
clusters:
  - context: prod-eu
    provider: eks
    aws: {{profile: prod, region: eu-west-1, cluster_name: prod-eu, account: "123456789012"}}
    timeouts: {{connect: 5, exec: 20}}
  - context: staging
    meshsync_mode: embedded
    provider: gke
    gcp: {{project: acme-staging, location: europe-west1, cluster: staging}}
  - context: dev
    provider: aks
    azure: {{subscription: sub-1, resource_group: rg-dev, cluster: dev}}
mutes:
  - check: kube-api.latency
    cluster: dev
    reason: dev is on another continent
  - check: "tls.*"
    reason: the lab CA is private
"""


def write(tmp_path: Path, text: str, name: str = "fleet.yaml") -> Path:
    path = tmp_path / "repo" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    seen = 0
    for i, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            seen += 1
            if seen == occurrence:
                return i
    raise AssertionError(f"{needle!r} not in the text")


def error_of(tmp_path: Path, text: str) -> tuple[Path, str]:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load(path)
    return path, str(info.value)


def test_full_valid_fleet_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    absolute = tmp_path / "elsewhere" / "abs.yaml"
    path = write(tmp_path, FULL.format(absolute=absolute))
    absolute.parent.mkdir()
    monkeypatch.chdir(absolute.parent)  # the working directory must not matter
    fleet = load(path)
    assert fleet.path == path
    # Relative kubeconfig paths are relative to the fleet file, not to the working directory.
    assert fleet.kubeconfig == [
        tmp_path / "repo" / "kube" / "prod.yaml",
        tmp_path / "shared" / "staging.yaml",
        absolute,
    ]
    assert fleet.origin_cidrs == ["203.0.113.0/24", "198.51.100.7/32", "2001:db8::/32", "10.0.0.0/8"]
    assert fleet.thresholds == {"latency_warn_ms": 100.0, "latency_fail_ms": 400.5}
    assert [c.context for c in fleet.clusters] == ["prod-eu", "staging", "dev"]
    prod = fleet.cluster("prod-eu")
    assert prod == ClusterEntry(
        context="prod-eu",
        meshsync_mode="operator",  # from defaults
        provider="eks",
        aws={"profile": "prod", "region": "eu-west-1", "cluster_name": "prod-eu", "account": "123456789012"},
        timeouts={"connect": 5.0, "cluster": 90.0, "exec": 20.0},  # defaults, overridden per cluster
    )
    staging = fleet.cluster("staging")
    assert staging is not None
    assert staging.meshsync_mode == "embedded"
    assert staging.timeouts == {"connect": 2.0, "cluster": 90.0}
    assert staging.gcp == {"project": "acme-staging", "location": "europe-west1", "cluster": "staging"}
    dev = fleet.cluster("dev")
    assert dev is not None and dev.azure["resource_group"] == "rg-dev"
    assert fleet.cluster("unknown") is None
    assert fleet.mutes == [
        Mute("kube-api.latency", "dev", "dev is on another continent"),
        Mute("tls.*", "*", "the lab CA is private"),  # no cluster: every cluster
    ]


def test_defaults_do_not_leak_between_clusters(tmp_path: Path) -> None:
    text = (
        "defaults:\n  timeouts: {connect: 2}\nclusters:\n  - context: a\n    timeouts: {connect: 9}\n  - context: b\n"
    )
    fleet = load(write(tmp_path, text))
    assert [c.timeouts for c in fleet.clusters] == [{"connect": 9.0}, {"connect": 2.0}]
    assert [c.meshsync_mode for c in fleet.clusters] == [None, None]


def test_empty_file_is_an_error_and_minimal_files_load(tmp_path: Path) -> None:
    path, msg = error_of(tmp_path, "# nothing yet\n")
    assert msg.startswith(f"{path}:1: ") and "empty" in msg
    minimal = load(write(tmp_path, "clusters:\n  - context: only\nmutes:\n", name="min.yaml"))
    assert [c.context for c in minimal.clusters] == ["only"]
    assert minimal.mutes == []


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read fleet file"):
        load(tmp_path / "absent.yaml")


@pytest.mark.parametrize(
    ("text", "needle", "field", "words"),
    [
        pytest.param("version: 1\nclusterz: []\n", "clusterz", "clusterz", "unknown field", id="unknown-top"),
        pytest.param(
            "clusters:\n  - context: a\n    contexts: b\n",
            "contexts: b",
            "clusters[0].contexts",
            "unknown field",
            id="unknown-nested",
        ),
        pytest.param(
            "clusters:\n  - context: a\n    aws: {profile: p, regoin: x}\n",
            "regoin",
            "clusters[0].aws.regoin",
            "unknown field",
            id="unknown-aws",
        ),
        pytest.param(
            "defaults:\n  meshsync_mode: sidecar\n",
            "sidecar",
            "defaults.meshsync_mode",
            "must be one of",
            id="bad-default-mode",
        ),
        pytest.param(
            "clusters:\n  - context: a\n  - context: b\n    meshsync_mode: Operator\n",
            "Operator",
            "clusters[1].meshsync_mode",
            "must be one of",
            id="bad-mode",
        ),
        pytest.param(
            "clusters:\n  - context: a\n    provider: openshift\n",
            "openshift",
            "clusters[0].provider",
            "must be one of",
            id="bad-provider",
        ),
        pytest.param(
            "origin:\n  cidrs:\n    - 203.0.113.0/24\n    - 203.0.113.0/33\n",
            "/33",
            "origin.cidrs[1]",
            "not a CIDR",
            id="bad-cidr",
        ),
        pytest.param(
            "origin:\n  cidrs: [office-network]\n",
            "office-network",
            "origin.cidrs[0]",
            "not a CIDR",
            id="cidr-word",
        ),
        pytest.param(
            "mutes:\n  - check: tls.expiry\n    cluster: dev\n",
            "check: tls.expiry",
            "mutes[0].reason",
            "is required",
            id="mute-without-reason",
        ),
        pytest.param(
            "mutes:\n  - check: tls.expiry\n    reason: ''\n",
            "reason:",
            "mutes[0].reason",
            "non-empty",
            id="mute-empty-reason",
        ),
        pytest.param(
            "mutes:\n  - reason: because\n",
            "reason: because",
            "mutes[0].check",
            "is required",
            id="mute-without-check",
        ),
        pytest.param(
            "clusters:\n  - context: a\n    timeouts:\n      connect: -1\n",
            "connect: -1",
            "clusters[0].timeouts.connect",
            "positive number",
            id="negative-timeout",
        ),
        pytest.param(
            "defaults:\n  timeouts: {cluster: 0}\n",
            "cluster: 0",
            "defaults.timeouts.cluster",
            "positive number",
            id="zero-timeout",
        ),
        pytest.param(
            "defaults:\n  timeouts:\n    check: fast\n",
            "check: fast",
            "defaults.timeouts.check",
            "positive number",
            id="word-timeout",
        ),
        pytest.param(
            "defaults:\n  timeouts:\n    check: nan\n",
            "check: nan",
            "defaults.timeouts.check",
            "positive number",
            id="nan-timeout",
        ),
        pytest.param(
            "defaults:\n  timeouts:\n    cluster: 1e999\n",
            "1e999",
            "defaults.timeouts.cluster",
            "positive number",
            id="infinite-timeout",
        ),
        pytest.param(
            "defaults:\n  timeouts:\n    deadline: 5\n",
            "deadline",
            "defaults.timeouts.deadline",
            "unknown field",
            id="unknown-timeout",
        ),
        pytest.param(
            "thresholds:\n  latency_warn_ms: -5\n",
            "latency_warn_ms",
            "thresholds.latency_warn_ms",
            "positive number",
            id="negative-threshold",
        ),
        pytest.param("version: 2\nclusters: []\n", "version: 2", "version", "unsupported version", id="version"),
        pytest.param("version: '1.1'\n", "version", "version", "unsupported version", id="version-string"),
        pytest.param(
            "clusters:\n  - provider: eks\n",
            "provider: eks",
            "clusters[0].context",
            "is required",
            id="cluster-without-context",
        ),
        pytest.param("clusters:\n  context: a\n", "context: a", "clusters", "must be a list", id="clusters-map"),
        pytest.param(
            "mutes:\n  - check: a.b\n    reason: x\nclusters: []\nmutes:\n  - check: c.d\n    reason: y\n",
            "mutes:",
            "mutes",
            "given twice",
            id="duplicate-key",
        ),
    ],
)
def test_errors_name_file_line_and_field(tmp_path: Path, text: str, needle: str, field: str, words: str) -> None:
    occurrence = 2 if "given twice" in words else 1
    path, msg = error_of(tmp_path, text)
    line = line_of(text, needle, occurrence)
    assert msg.startswith(f"{path}:{line}: {field}: "), msg
    assert words in msg


def test_duplicate_context_names_the_second_entry(tmp_path: Path) -> None:
    text = "clusters:\n  - context: a\n  - context: b\n  - context: a\n    provider: eks\n"
    path, msg = error_of(tmp_path, text)
    assert msg.startswith(f"{path}:{line_of(text, 'context: a', 2)}: clusters"), msg
    assert "'a'" in msg and "twice" in msg


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    text = "version: 1\nclusters:\n  - context: a\n    provider: [eks\n  - context: b\n"
    path, msg = error_of(tmp_path, text)
    assert msg.startswith(f"{path}:")
    line = int(msg[len(str(path)) + 1 :].split(":", 1)[0])
    assert 4 <= line <= 6
    assert "malformed fleet file" in msg


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    path, msg = error_of(tmp_path, "- context: a\n")
    assert msg.startswith(f"{path}:1:")
    assert "must be a mapping" in msg
