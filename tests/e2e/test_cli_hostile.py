"""Input nobody reviewed: every case is one line on stderr and exit 2, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from preflight.app import load_registry
from preflight.cli import DnsServer
from preflight.engine import plan
from preflight.engine.errors import ConfigError
from preflight.engine.plan import Request
from preflight.engine.settings import Settings

CLI = [sys.executable, "-m", "preflight.cli"]
NUMERIC_FLAGS = [
    "--connect-timeout",
    "--check-timeout",
    "--cluster-timeout",
    "--exec-timeout",
    "--latency-warn-ms",
    "--latency-fail-ms",
]


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"} | {"NO_COLOR": "1"}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60, env=env, cwd=cwd)


def one_line_exit_2(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e309", "0", "-1", "1e9", "soon"])
@pytest.mark.parametrize("flag", NUMERIC_FLAGS)
def test_numeric_flags_refuse_non_finite_and_absurd(flag: str, value: str) -> None:
    line = one_line_exit_2(cli("check", flag, value))
    assert flag in line and repr(value) in line


@pytest.mark.parametrize("value", ["garbage", "127.0.0.1:abc", "127.0.0.1:99999", "127.0.0.1:0", "[::1", "", "dns.lab"])
def test_dns_server_is_parsed_at_startup(value: str) -> None:
    line = one_line_exit_2(cli("check", "--dns-server", value))
    assert "--dns-server" in line


@pytest.mark.parametrize("value", ["127.0.0.1", "127.0.0.1:5353", "::1", "[::1]", "[::1]:5353"])
def test_dns_server_accepts_literals(value: str) -> None:
    assert DnsServer().convert(value, None, None) == value


def test_dns_server_accepted_by_the_cli(tmp_path: Path) -> None:
    """Accepted at start-up: the run goes on to the (empty) kubeconfig, which is the error reported."""
    empty = tmp_path / "config"
    empty.write_text("")
    line = one_line_exit_2(cli("check", "--dns-server", "[::1]:5353", "--kubeconfig", str(empty)))
    assert "--dns-server" not in line and str(empty) in line


def _nested(depth: int) -> str:
    return "[" * depth


@pytest.mark.parametrize("what", ["--kubeconfig", "--fleet"])
def test_deeply_nested_yaml_names_the_file(what: str, tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(_nested(100_000))
    proc = cli("check", what, str(bomb))
    line = one_line_exit_2(proc)
    assert line.count(str(bomb)) == 1 and "nested deeper" in line
    assert len(proc.stderr) < 500


def test_oversized_kubeconfig_names_the_file(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    with big.open("wb") as handle:
        handle.truncate(33 * 1024 * 1024)
    line = one_line_exit_2(cli("check", "--kubeconfig", str(big)))
    assert str(big) in line and "larger than" in line


def test_empty_kubeconfig_names_the_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty-config"
    empty.write_text("# nothing here\n")
    line = one_line_exit_2(cli("check", "--kubeconfig", str(empty)))
    assert str(empty) in line and "no contexts" in line


def test_kubeconfig_from_a_fifo_is_read(tmp_path: Path) -> None:
    """`--kubeconfig <(vault read ...)`: a FIFO is read like a file (here it says it has no contexts)."""
    fifo = tmp_path / "from-vault"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_text("apiVersion: v1\nkind: Config\n"), daemon=True)
    writer.start()
    line = one_line_exit_2(cli("check", "--kubeconfig", str(fifo)))
    writer.join(5)
    assert str(fifo) in line and "no contexts" in line and "not found" not in line


def test_process_substitution_kubeconfig_is_read(tmp_path: Path) -> None:
    script = f"exec {' '.join(CLI)} check --kubeconfig <(printf 'apiVersion: v1\\nkind: Config\\n')"
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
    line = one_line_exit_2(proc)
    assert "/dev/fd/" in line and "no contexts" in line


def test_directory_as_kubeconfig(tmp_path: Path) -> None:
    line = one_line_exit_2(cli("check", "--kubeconfig", str(tmp_path)))
    assert str(tmp_path) in line and "directory" in line


def test_kubeconfig_variable_naming_a_directory_says_so(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"} | {"KUBECONFIG": str(tmp_path)}
    proc = subprocess.run([*CLI, "check"], capture_output=True, text=True, timeout=60, env=env)
    line = one_line_exit_2(proc)
    assert f"{tmp_path} is a directory" in line and "KUBECONFIG_FOLDER" in line


def test_a_line_break_in_a_context_name_cannot_forge_a_console_line(tmp_path: Path) -> None:
    """A context named to look like a passing cluster's header: the console shows the name escaped."""
    forged = "prod-eu\n\ncluster prod-eu ✔ pass  (35 pass)"
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "u", "user": {"token": "t" * 20}}],
        "contexts": [{"name": forged, "context": {"cluster": "c", "user": "u"}}],
    }
    (tmp_path / "config").write_text(yaml.safe_dump(doc))
    proc = cli("check", "--kubeconfig", str(tmp_path / "config"), "--checks", "kube-api.tcp", "-o", "console")
    assert proc.returncode == 1, proc.stderr
    lines = proc.stdout.splitlines()
    assert not [line for line in lines if line.startswith("cluster prod-eu ✔")], proc.stdout
    assert "cluster prod-eu\\n\\ncluster prod-eu ✔ pass  (35 pass)  ✖ fail" in proc.stdout


KUBECONFIG = {
    "apiVersion": "v1",
    "kind": "Config",
    "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
    "users": [{"name": "u", "user": {"token": "t" * 20}}],
    "contexts": [{"name": "prod", "context": {"cluster": "c", "user": "u"}}],
}


def _fleet(tmp_path: Path, text: str) -> Path:
    (tmp_path / "config").write_text(yaml.safe_dump(KUBECONFIG))
    path = tmp_path / "fleet.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "where", "words"),
    [
        pytest.param("", ":1: ", "empty", id="empty"),
        pytest.param("# only a comment\n", ":1: ", "empty", id="only-comments"),
        pytest.param("- context: prod\n", ":1: top level: ", "must be a mapping", id="top-level-list"),
        pytest.param(
            "kubeconfig: [config]\nmutes:\n  - check: kube-api.tcp\n    reason: '   '\n",
            ":4: mutes[0].reason: ",
            "non-empty",
            id="blank-mute-reason",
        ),
        pytest.param(
            "kubeconfig: [config]\nthresholds:\n  latency_fail_ms: 100\n  latency_warn_ms: 200\n",
            ":4: thresholds.latency_warn_ms: ",
            "exceeds",
            id="warn-above-fail",
        ),
        pytest.param(
            "kubeconfig: [config]\nclusters:\n  - context: prod\n  - context: gone\n",
            ":4: clusters[1].context: ",
            "'gone' is in none of the kubeconfig files",
            id="context-in-no-kubeconfig",
        ),
        pytest.param(
            "kubeconfig: [config]\nmutes:\n  - reason: ticket 1\n    check: kube-api.nope\n",
            ":4: mutes[0].check: ",
            "matches no check id",
            id="unknown-mute-check",
        ),
        pytest.param("thresholds: {latency_warn_ms: .nan}\n", ":1: thresholds.latency_warn_ms: ", "positive", id="nan"),
        pytest.param("defaults: {timeouts: {connect: 1e309}}\n", ":1: defaults.timeouts.connect: ", "", id="1e309"),
        pytest.param(
            "clusters:\n  - context: prod\n    timeouts: {exec: .inf}\n",
            ":3: clusters[0].timeouts.exec: ",
            "",
            id="inf",
        ),
    ],
)
def test_fleet_file_errors_name_file_line_and_field(tmp_path: Path, text: str, where: str, words: str) -> None:
    path = _fleet(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        plan.build(Request(fleet=str(path)), Settings(), load_registry(), {})
    line = str(info.value)
    assert "\n" not in line
    assert line.startswith(f"{path}{where}"), line
    assert words in line


@pytest.mark.parametrize("text", ["- context: prod\n", "kubeconfig: [config]\nclusters:\n  - context: gone\n"])
def test_fleet_file_errors_through_the_cli(tmp_path: Path, text: str) -> None:
    path = _fleet(tmp_path, text)
    line = one_line_exit_2(cli("check", "--fleet", str(path)))
    assert line.startswith(f"meshery-preflight: error: {path}:")


@pytest.mark.parametrize("what", ["--kubeconfig", "--fleet"])
def test_alias_bomb_names_the_file(what: str, tmp_path: Path) -> None:
    """A "billion laughs" document: ten levels of ten aliases each."""
    lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 11)]
    bomb = tmp_path / "laughs.yaml"
    bomb.write_text("\n".join([*lines, "clusters: *l10"]) + "\n")
    line = one_line_exit_2(cli("check", what, str(bomb)))
    assert str(bomb) in line and "aliases" in line


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("HTTPS_PROXY", "::::"),
        ("https_proxy", "http://[::1"),
        ("HTTPS_PROXY", "http://proxy.lab.test:abc"),
        ("HTTPS_PROXY", "ftp://proxy.lab.test:21"),
        ("HTTP_PROXY", "http://proxy-user:ProxyPw-77c1@bad host:3128"),
    ],
)
def test_unparsable_proxy_variable_is_a_configuration_error(tmp_path: Path, var: str, value: str) -> None:
    """Never `probe raised ValueError` per cluster: one line naming the variable, before any probe runs."""
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(yaml.safe_dump(KUBECONFIG))
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")} | {"NO_COLOR": "1", var: value}
    proc = subprocess.run(
        [*CLI, "check", "--kubeconfig", str(kubeconfig), "--checks", "kube-api.*"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    line = one_line_exit_2(proc)
    assert line.startswith(f"error: {var} ") or f" {var} " in f" {line}", line
    assert "ProxyPw-77c1" not in proc.stderr + proc.stdout
