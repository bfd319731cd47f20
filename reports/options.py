"""What a renderer may be told besides the RunReport: how the run is judged and where the text goes.

Renderers still see only results; the CLI decides these (``--fail-on``, ``-v``, the terminal) and passes
them down, so every format states the same verdict as the exit code.
"""

from __future__ import annotations

from dataclasses import dataclass

from preflight.engine.model import FAIL_ON, RunReport, Status, counts_against, run_fails

from ._common import plural

EXIT_OK, EXIT_FINDINGS, EXIT_INTERRUPTED = 0, 1, 130
_NOUNS: dict[Status, str] = {Status.FAIL: "failure", Status.ERROR: "error", Status.WARN: "warning"}


@dataclass(frozen=True)
class RenderOptions:
    color: bool = False
    verbose: bool = False
    fail_on: str = "fail"
    # Columns of the terminal the console goes to; None for files and pipes (no wrapping).
    width: int | None = None
    # What an aborted run exits with: 128 + the signal that stopped it (130 SIGINT, 143 SIGTERM).
    interrupted_code: int = EXIT_INTERRUPTED

    def __post_init__(self) -> None:
        if self.fail_on not in (*FAIL_ON, "new"):
            raise ValueError(f"fail_on must be one of {', '.join(FAIL_ON)}, new, not {self.fail_on!r}")

    def counts_against(self, status: Status) -> bool:
        """Whether a result of this status makes the run exit 1 (with ``new``, only a change does: see verdict)."""
        return counts_against(status, self.fail_on)


@dataclass(frozen=True)
class Verdict:
    code: int
    reason: str

    def __str__(self) -> str:
        return f"exit {self.code}: {self.reason}"


def _tally(report: RunReport, statuses: tuple[Status, ...]) -> str:
    counts = {s: 0 for s in statuses}
    for r in report.all_results:
        if r.status in counts:
            counts[r.status] += 1
    return ", ".join(plural(n, _NOUNS[s]) for s, n in counts.items() if n)


def verdict(report: RunReport, fail_on: str = "fail", interrupted_code: int = EXIT_INTERRUPTED) -> Verdict:
    """The exit code a run implies (model.run_fails, as the CLI decides it), with the reason in words;
    ``interrupted_code`` is what the CLI exits with when the run was aborted."""
    if report.aborted:
        return Verdict(interrupted_code, f"the run was aborted ({report.aborted}); results are incomplete")
    code = EXIT_FINDINGS if run_fails(report, fail_on) else EXIT_OK
    if fail_on == "new":
        worse = sum(1 for r in report.all_results if r.change == "new")
        reason = f"{plural(worse, 'result')} got worse" if worse else "nothing got worse"
        return Verdict(code, f"{reason} since --baseline (--fail-on new)")
    problems = (Status.FAIL, Status.ERROR, Status.WARN)
    against = tuple(s for s in problems if counts_against(s, fail_on))
    below = tuple(s for s in problems if s not in against)
    if code == EXIT_FINDINGS:
        return Verdict(code, f"{_tally(report, against)} at or above --fail-on {fail_on}")
    rest = _tally(report, below)
    tail = f" ({rest} below it)" if rest else ""
    return Verdict(code, f"nothing at or above --fail-on {fail_on}{tail}")
