"""`-o FORMAT=PATH`: checked before any probe runs, written in place where replacing would be wrong,
and a write that fails costs that output only (one line, exit 2)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from lxml import etree

from preflight_lab.fleet import ClusterSpec, LabFleet

CLI = [sys.executable, "-m", "preflight.cli"]
# As root, permission bits do not apply: drop the override so "unwritable" means what it says.
UNPRIVILEGED = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"] if os.geteuid() == 0 else []


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory):
    with LabFleet([ClusterSpec(name="one")], tmp_path_factory.mktemp("outputs-lab")) as fleet:
        yield fleet


def run(
    lab: LabFleet, *outputs: str, prefix: list[str] | None = None, **kw: object
) -> subprocess.CompletedProcess[str]:
    args = [*(prefix or []), *CLI, "check", "--kubeconfig", str(lab.kubeconfig_path), "--checks", "kube-api.tcp"]
    for o in outputs:
        args += ["-o", o]
    env = {**os.environ, "NO_COLOR": "1"}
    streams = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **kw}
    return subprocess.run(args, text=True, timeout=60, env=env, **streams)  # type: ignore[call-overload]


def _requests(lab: LabFleet) -> int:
    return len(lab.clusters["one"].server.requests())


def _one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in text, text
    return lines[0]


def test_missing_directory_is_refused_before_any_probe(lab: LabFleet, tmp_path: Path) -> None:
    before = _requests(lab)
    target = tmp_path / "no-such-dir" / "r.json"
    proc = run(lab, f"junit={tmp_path / 'j.xml'}", f"json={target}")
    assert proc.returncode == 2
    line = _one_line(proc.stderr)
    assert f"json={target}" in line and "does not exist" in line
    assert not target.parent.exists(), "directories are never created silently"
    assert not (tmp_path / "j.xml").exists()
    assert _requests(lab) == before, "a probe ran before the outputs were checked"


def test_directory_as_output_is_refused(lab: LabFleet, tmp_path: Path) -> None:
    proc = run(lab, f"json={tmp_path}")
    assert proc.returncode == 2
    assert "is a directory" in _one_line(proc.stderr)


def test_unwritable_places_are_refused(lab: LabFleet, tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "old.json").write_text("{}")
    locked.chmod(0o500)
    readonly = tmp_path / "readonly.xml"
    readonly.write_text("")
    readonly.chmod(0o444)
    try:
        for spec, why in ((f"json={locked / 'new.json'}", "permission denied"), (f"junit={readonly}", "not writable")):
            proc = run(lab, spec, prefix=UNPRIVILEGED)
            assert proc.returncode == 2, proc.stderr
            line = _one_line(proc.stderr)
            assert spec in line and why in line
    finally:
        locked.chmod(0o700)


def test_file_writable_in_unwritable_directory_is_written_in_place(lab: LabFleet, tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    report = locked / "r.json"
    report.write_text("old")
    locked.chmod(0o500)
    try:
        proc = run(lab, f"json={report}", prefix=UNPRIVILEGED)
    finally:
        locked.chmod(0o700)
    assert proc.returncode in (0, 1), proc.stderr
    assert json.loads(report.read_text())["clusters"][0]["name"] == "one"


def test_failed_write_names_the_output_and_the_others_are_written(lab: LabFleet, tmp_path: Path) -> None:
    proc = run(lab, "json=/dev/full", f"junit={tmp_path / 'j.xml'}", "console=-")
    assert proc.returncode == 2
    line = _one_line(proc.stderr)
    assert "json=/dev/full" in line and "No space left on device" in line
    etree.parse(str(tmp_path / "j.xml"))
    assert "one" in proc.stdout
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode), "/dev/full was replaced by a file"


def test_refused_at_write_time(lab: LabFleet, tmp_path: Path) -> None:
    """A place that passes the check but refuses the file when it is written (/proc takes no new files,
    even from root): the same one-line, exit-2 path, and the other outputs are written."""
    proc = run(lab, "json=/proc/preflight-report.json", f"junit={tmp_path / 'j.xml'}")
    assert proc.returncode == 2, proc.stderr
    assert "json=/proc/preflight-report.json" in _one_line(proc.stderr)
    assert (tmp_path / "j.xml").exists()


def test_symlink_is_followed_and_stays(lab: LabFleet, tmp_path: Path) -> None:
    target = tmp_path / "real.json"
    target.write_text("old")
    target.chmod(0o640)
    link = tmp_path / "link.json"
    link.symlink_to(target)
    dangling = tmp_path / "dangling.xml"
    dangling.symlink_to(tmp_path / "made-by-run.xml")
    proc = run(lab, f"json={link}", f"junit={dangling}")
    assert proc.returncode in (0, 1), proc.stderr
    assert link.is_symlink() and dangling.is_symlink()
    assert json.loads(target.read_text())["clusters"][0]["name"] == "one"
    etree.parse(str(tmp_path / "made-by-run.xml"))
    assert stat.S_IMODE(target.stat().st_mode) == 0o640, "an existing file keeps its mode"


def test_fifo_is_written_in_place(lab: LabFleet, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    proc = run(lab, f"json={fifo}")
    reader.join(10)
    assert proc.returncode in (0, 1), proc.stderr
    assert stat.S_ISFIFO(fifo.stat().st_mode), "the FIFO was replaced by a file"
    assert json.loads(got[0])["clusters"][0]["name"] == "one"


def test_dev_stdout_and_stderr(lab: LabFleet, tmp_path: Path) -> None:
    proc = run(lab, "json=/dev/stdout", "console=/dev/stderr")
    assert proc.returncode in (0, 1), proc.stderr
    assert json.loads(proc.stdout)["clusters"][0]["name"] == "one"
    assert "one" in proc.stderr
    # Redirected to a file that already holds text: the report follows it instead of replacing the file.
    out = tmp_path / "out.txt"
    out.write_text("before\n")
    with out.open("a") as handle:
        proc = run(lab, "junit=/dev/stdout", stdout=handle, stderr=subprocess.PIPE)
    text = out.read_text()
    assert proc.returncode in (0, 1), proc.stderr
    assert text.startswith("before\n")
    etree.fromstring(text[len("before\n") :].encode())


@pytest.mark.parametrize("name", ["/dev/stdout", "/dev/fd/1", "/proc/self/fd/1", "-"])
def test_two_formats_on_stdout_by_any_name_are_refused(lab: LabFleet, name: str) -> None:
    """`-o json=/dev/stdout -o console` would interleave two formats on one stream: neither parses."""
    before = _requests(lab)
    proc = run(lab, f"json={name}", "console")
    assert proc.returncode == 2 and "only one output format can go to stdout" in _one_line(proc.stderr)
    assert f"json={name}" in proc.stderr and proc.stdout == ""
    assert _requests(lab) == before, "refused before any probe ran"


def test_the_file_stdout_was_redirected_to_counts_as_stdout(lab: LabFleet, tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    with out.open("w") as handle:
        proc = run(lab, "console", f"json={out}", stdout=handle, stderr=subprocess.PIPE)
    assert proc.returncode == 2 and "only one output format can go to stdout" in _one_line(proc.stderr)
    # /dev/null is everyone's: two outputs there are no interleaving anyone reads.
    proc = run(lab, "console", "json=/dev/null", stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.returncode == 0, proc.stderr


def test_dash_is_stdout(lab: LabFleet) -> None:
    proc = run(lab, "json=-")
    assert json.loads(proc.stdout)["clusters"][0]["name"] == "one"
    proc = run(lab, "json=-", "console")
    assert proc.returncode == 2 and "only one output format can go to stdout" in _one_line(proc.stderr)


def test_stdout_whose_reader_left_ends_quietly(lab: LabFleet, tmp_path: Path) -> None:
    """`| head -1`: the reader took what it wanted and left. No `cannot write: Broken pipe`, no exit 2
    (as `list-checks | head -1`): the run's own verdict, and the JSON file beside it is still written."""
    args = [*CLI, "check", "--kubeconfig", str(lab.kubeconfig_path), "--checks", "kube-api.tcp"]
    proc = subprocess.Popen(
        [*args, "-o", "console", "-o", f"json={tmp_path / 'r.json'}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert proc.stdout is not None
    proc.stdout.close()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert err == ""
    assert json.loads((tmp_path / "r.json").read_text())["clusters"][0]["name"] == "one"
