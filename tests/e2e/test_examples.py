"""examples/ (GitHub Actions, GitLab CI) and the README's Scheduled-audits commands: valid YAML, real flags,
and the GitLab job's script run twice against lab clusters, the second time against the first's baseline."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
import yaml

from preflight.cli import main
from preflight.reports import writer
from preflight_lab.fleet import ClusterSpec, LabFleet

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def commands(script: str) -> list[list[str]]:
    """Every meshery-preflight command line in a shell script, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", script)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line.startswith("meshery-preflight "):
            # The command ends where the shell takes over: a redirection, a pipe, && or ;.
            lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
            lexer.whitespace_split, lexer.commenters = True, "#"
            words = list(lexer)
            cut = next((i for i, w in enumerate(words) if w and set(w) <= set("|&;<>")), len(words))
            out.append(words[:cut])
    return out


def github_scripts() -> list[str]:
    doc = yaml.safe_load((EXAMPLES / "github-actions.yml").read_text())
    return [step["run"] for job in doc["jobs"].values() for step in job["steps"] if "run" in step]


def gitlab_scripts() -> list[str]:
    job = yaml.safe_load((EXAMPLES / "gitlab-ci.yml").read_text())["meshery-preflight"]
    return [*job["before_script"], *job["script"], *job["after_script"]]


def readme_scripts() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Scheduled audits", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", section, flags=re.S)


def assert_real(argv: list[str]) -> None:
    """Parsed by the CLI itself: unknown flags, bad choices or stray arguments raise; outputs are real formats."""
    assert argv[0] == "meshery-preflight"
    command = main.commands[argv[1]]
    ctx = command.make_context(argv[1], argv[2:])
    for spec in ctx.params.get("outputs", ()):
        writer.parse_output_spec(spec)


@pytest.mark.parametrize("source", [github_scripts, gitlab_scripts, readme_scripts])
def test_every_command_uses_real_flags(source: object) -> None:
    found = [argv for script in source() for argv in commands(script)]  # type: ignore[operator]
    assert found
    for argv in found:
        assert_real(argv)


def test_the_ci_examples_run_the_readme_flow() -> None:
    for source in (github_scripts, gitlab_scripts):
        found = [argv for script in source() for argv in commands(script)]
        flags = {a.split("=")[0] for argv in found for a in argv}
        assert {"--baseline", "--fail-on", "new"} <= flags
        outputs = {a for argv in found for a in argv if "=" in a and not a.startswith("-")}
        assert {"json=out/report.json", "junit=out/junit.xml", "markdown=out/summary.md"} <= outputs


def test_a_made_up_flag_is_caught() -> None:
    with pytest.raises(click.UsageError):
        assert_real(["meshery-preflight", "check", "--baselin", "x.json"])


def test_github_workflow_shape() -> None:
    doc = yaml.safe_load((EXAMPLES / "github-actions.yml").read_text())
    steps = doc["jobs"]["audit"]["steps"]
    uses = [s.get("uses", "") for s in steps]
    assert any(u.startswith("actions/cache/restore@") for u in uses)
    assert any(u.startswith("actions/cache/save@") for u in uses)
    assert any("junit" in u for u in uses)
    assert any("GITHUB_STEP_SUMMARY" in s.get("run", "") for s in steps)
    # YAML 1.1 reads the bare key `on` as True.
    assert "schedule" in (doc.get("on") or doc.get(True))


def test_gitlab_job_shape() -> None:
    job = yaml.safe_load((EXAMPLES / "gitlab-ci.yml").read_text())["meshery-preflight"]
    assert job["artifacts"]["reports"]["junit"] == "out/junit.xml"
    assert job["cache"]["paths"] == ["baseline/"] and job["cache"]["when"] == "always"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabFleet]:
    specs = [ClusterSpec(name="ok", scenario="healthy"), ClusterSpec(name="expired", scenario="expired-token")]
    with LabFleet(specs, tmp_path_factory.mktemp("examples-lab")) as fleet:
        yield fleet


def _mute_snippet(example: str) -> list[dict[str, str]]:
    """The `mutes:` an example's header shows a team how to write, as YAML."""
    lines = (EXAMPLES / example).read_text().splitlines()
    at = lines.index("#   mutes:")
    block = []
    for line in lines[at:]:
        if not line.startswith("#   "):
            break
        block.append(line[4:])
    mutes: list[dict[str, str]] = yaml.safe_load("\n".join(block))["mutes"]
    return mutes


def test_both_examples_show_how_to_accept_a_known_problem() -> None:
    for example in ("gitlab-ci.yml", "github-actions.yml"):
        [mute] = _mute_snippet(example)
        assert set(mute) == {"check", "cluster", "reason"} and mute["reason"]
        assert_real(["meshery-preflight", "explain", mute["check"]])


def test_github_keeps_only_a_passing_run_as_the_checkpoint() -> None:
    doc = yaml.safe_load((EXAMPLES / "github-actions.yml").read_text())
    steps = doc["jobs"]["audit"]["steps"]
    keep = [s for s in steps if "baseline/report.json" in s.get("run", "") and "cp out/report.json" in s["run"]]
    save = [s for s in steps if s.get("uses", "").startswith("actions/cache/save@")]
    assert keep and save
    for step in (*keep, *save):
        assert step["if"].startswith("success()"), step  # a regression (exit 1) leaves the checkpoint alone


def test_the_gitlab_job_keeps_the_last_good_baseline_until_a_problem_is_fixed_or_accepted(
    lab: LabFleet, tmp_path: Path
) -> None:
    """Run by run, as a schedule would: a regression fails every run until it is accepted (muted with a
    reason, as the example's header shows), not just the first one after it."""
    job = yaml.safe_load((EXAMPLES / "gitlab-ci.yml").read_text())["meshery-preflight"]
    bindir = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if not k.upper().endswith("_PROXY") and k != "KUBECONFIG"}
    env["PATH"] = f"{bindir}:{env.get('PATH', '')}"
    [mute] = _mute_snippet("gitlab-ci.yml")
    accepted = {**mute, "check": "*", "cluster": "expired"}  # every result of that cluster, for the reason

    def fleet(*mutes: dict[str, str]) -> None:
        doc = {
            "version": 1,
            "kubeconfig": [str(lab.kubeconfig_path)],
            "clusters": [{"context": "ok"}, {"context": "expired"}],
            **({"mutes": list(mutes)} if mutes else {}),
        }
        (tmp_path / "fleet.yaml").write_text(yaml.safe_dump(doc))

    def run() -> int:
        """One pipeline: the script, then the after_script, with the cache (baseline/) kept between runs."""
        proc = subprocess.run(
            ["bash", "-eo", "pipefail", "-c", job["script"][0]],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        for step in job["after_script"]:
            assert subprocess.run(["bash", "-c", step], cwd=tmp_path, env=env, timeout=60).returncode == 0
        return proc.returncode

    def checkpoint() -> str | None:
        path = tmp_path / "baseline" / "report.json"
        return json.loads(path.read_text())["started_at"] if path.exists() else None

    subprocess.run(["bash", "-c", *job["before_script"][1:]], cwd=tmp_path, env=env, check=True)
    fleet()
    assert run() == 1 and checkpoint() is None  # the expired token fails; nothing passed yet, no checkpoint
    assert run() == 1 and checkpoint() is None  # and keeps failing: a problem is never accepted by waiting

    fleet(accepted)
    assert run() == 0  # accepted: muted with its reason
    good = checkpoint()
    assert good is not None
    assert "muted" in (tmp_path / "out" / "summary.md").read_text().lower()
    assert run() == 0 and checkpoint() not in (None, good)  # a passing run moves the checkpoint on

    good = checkpoint()
    fleet()  # the mute is dropped (or the problem comes back): a regression against the checkpoint
    assert run() == 1 and checkpoint() == good
    assert run() == 1 and checkpoint() == good  # still failing on the next run: not green after one alert
    doc = json.loads((tmp_path / "out" / "report.json").read_text())
    assert doc["baseline"]["changes"]["new"] > 0
