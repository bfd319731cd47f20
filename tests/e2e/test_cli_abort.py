"""SIGINT and SIGTERM from the first moment of `check` to the last: every report still written, marked
aborted, every cluster in it, unfinished checks counted as errors, plugin process groups killed,
exit 128+signal; a second signal exits at once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest
from lxml import etree

from preflight.reports import json_report
from preflight_lab.fleet import ClusterSpec, LabFleet
from tests.processes import running, wait_for

TESTS = Path(__file__).resolve().parent.parent

CLI = [sys.executable, "-m", "preflight.cli"]
CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*CLI, "check", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
    )


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory):
    specs = [ClusterSpec(name="quick"), ClusterSpec(name="stuck", scenario="hung-exec")]
    with LabFleet(specs, tmp_path_factory.mktemp("abort-lab")) as fleet:
        yield fleet


def _run_until_stuck(lab: LabFleet, *outputs: str) -> subprocess.Popen[str]:
    """A run whose quick cluster finished and whose other cluster waits on its hung exec plugin: one
    cluster at a time, so the plugin starts only after the quick cluster was done."""
    args = ["--kubeconfig", str(lab.kubeconfig_path), "--exec-timeout", "60", "--checks", "kube*", "--parallel", "1"]
    for o in outputs:
        args += ["-o", o]
    proc = _start(*args)
    script = str(lab.clusters["stuck"].exec_script)
    # This run's own plugin (its child): a plugin some other run left would signal a CLI still starting up.
    wait_for(lambda: bool(running(script, parent=proc.pid)), "the hung plugin to start")
    return proc


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_run_writes_every_report(lab: LabFleet, tmp_path: Path, sig: signal.Signals) -> None:
    outputs = [f"json={tmp_path / 'r.json'}", f"junit={tmp_path / 'j.xml'}"]
    proc = _run_until_stuck(lab, *outputs, f"console={tmp_path / 'c.txt'}", f"html={tmp_path / 'r.html'}")
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == CODES[sig], err
    # The reports state the code the process exits with (143 after SIGTERM, not SIGINT's 130).
    assert f"exit {CODES[sig]}: the run was aborted" in (tmp_path / "c.txt").read_text()
    assert f'class="verdict-{CODES[sig]}">exit {CODES[sig]}:' in (tmp_path / "r.html").read_text()
    assert "interrupted" in err and "Traceback" not in err and "Aborted!" not in err
    assert len(err.strip().splitlines()) == 1, err
    doc = json.loads((tmp_path / "r.json").read_text())
    jsonschema.validate(doc, json_report.load_schema())
    assert doc["aborted"].startswith("interrupted: 1 of 2")
    by_name = {c["name"]: c for c in doc["clusters"]}
    assert set(by_name) == {"quick", "stuck"}
    assert by_name["quick"]["results"] and all(
        not r["message"].startswith("not finished") for r in by_name["quick"]["results"]
    )
    unfinished = [r for r in by_name["stuck"]["results"] if r["message"].startswith("not finished: interrupted after")]
    assert unfinished and all(r["status"] == "error" for r in unfinished)
    assert doc["summary"]["error"] >= len(unfinished)
    xml = etree.parse(str(tmp_path / "j.xml"))
    xsd = etree.XMLSchema(etree.parse(str(TESTS / "data" / "junit.xsd")))
    assert xsd.validate(xml), xsd.error_log
    assert xml.xpath("//property[@name='aborted']/@value")[0].startswith("interrupted")
    assert int(xml.getroot().get("errors")) >= len(unfinished)
    stuck_suite = xml.xpath("//testsuite[contains(@name, 'stuck')]")[0]
    assert int(stuck_suite.get("tests")) > 0 and stuck_suite.xpath(".//error")
    # The hung plugin's process group was killed on the way out, not left as an orphan.
    assert not running(str(lab.clusters["stuck"].exec_script)), "the hung exec plugin is still running"


def _waits_on_fifo(pid: int, timeout: float) -> bool:
    """Whether a thread of ``pid`` sits in the kernel's FIFO open, waiting for a reader (/proc wchan)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for wchan in Path(f"/proc/{pid}/task").glob("*/wchan"):
            try:
                if wchan.read_text() in ("wait_for_partner", "fifo_open"):
                    return True
            except OSError:
                continue
        time.sleep(0.05)
    return False


def test_second_signal_exits_at_once(lab: LabFleet, tmp_path: Path) -> None:
    """A report bound for a FIFO nobody reads blocks the first exit; the second signal does not wait."""
    fifo = tmp_path / "nobody-reads"
    os.mkfifo(fifo)
    proc = _run_until_stuck(lab, f"json={fifo}")
    proc.send_signal(signal.SIGTERM)
    # Only once the first signal is handled (the report's open() waits for the FIFO's reader) may the second
    # come: two signals pending at once are delivered in signal-number order, SIGINT first.
    assert _waits_on_fifo(proc.pid, timeout=60), "the first signal should leave it waiting on the FIFO's reader"
    assert proc.poll() is None
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 143, err  # the first signal's code
    assert "interrupted again" in err and "Traceback" not in err
    assert not running(str(lab.clusters["stuck"].exec_script))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt_during_startup(tmp_path: Path, sig: signal.Signals) -> None:
    """Start-up (here: reading a kubeconfig from a FIFO nobody writes) is covered too: one line, 128+signal,
    the reports written and marked aborted, not click's `Aborted!` and exit 1."""
    fifo = tmp_path / "kubeconfig"
    os.mkfifo(fifo)
    proc = _start("--kubeconfig", str(fifo), "-o", f"json={tmp_path / 'r.json'}")
    # Opening a FIFO for reading blocks until a writer comes; the open shows in /proc once it returns,
    # so wait for the process to be asleep in the open instead.
    wait_for(lambda: _in_fifo_open(proc.pid), "the CLI to block on the kubeconfig FIFO")
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == CODES[sig], err
    assert "Aborted!" not in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and "start-up" in err, err
    doc = json.loads((tmp_path / "r.json").read_text())
    jsonschema.validate(doc, json_report.load_schema())
    assert "during start-up" in doc["aborted"] and doc["clusters"] == []


# openat on x86_64 and aarch64: a process asleep in it for a while is waiting on the FIFO's writer.
_OPENAT = {"257", "56"}


def _in_fifo_open(pid: int) -> bool:
    """Asleep opening the FIFO: wchan names the kernel function where the kernel shows it; else the
    blocked system call is openat, seen twice a moment apart."""
    try:
        if Path(f"/proc/{pid}/wchan").read_text() in ("fifo_open", "pipe_wait", "wait_for_partner"):
            return True
        first = Path(f"/proc/{pid}/syscall").read_text().split()[:1]
        time.sleep(0.3)
        second = Path(f"/proc/{pid}/syscall").read_text().split()[:1]
    except OSError:
        return False
    return bool(first) and first == second and first[0] in _OPENAT
