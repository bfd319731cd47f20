"""Choosing a renderer from ``--output FORMAT[=PATH]`` and writing its output safely.

A regular file (or a new path) is replaced atomically, so a CI job that reads a report while (or after)
a run is interrupted sees either the previous file or the complete new one, never a truncated one. Other
targets are written in place: a symlink's target (the link stays), a FIFO, a character device
(`/dev/null`, `/dev/full`), and `/dev/stdout`, `/dev/stderr`, `/dev/fd/N` (the process's own open file).
Directories are never created: a missing one is the caller's typo, found before any probe runs.

Reports are written as they are rendered (:func:`stream`, then :func:`write_report` with the chunks): a
fleet's 40 MB JSON is never one string, and a FIFO's reader gets the start while the rest is made.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import re
import secrets
import stat
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from preflight.engine.model import RunReport

from . import console, html, json_report, junit
from .options import RenderOptions

FORMATS: tuple[str, ...] = ("console", "json", "junit", "html", "prometheus", "markdown")


def _check_format(fmt: str) -> str:
    name = fmt.strip().lower()
    if name not in FORMATS:
        raise ValueError(
            f"unknown output format {fmt!r}: expected FORMAT or FORMAT=PATH with FORMAT one of {', '.join(FORMATS)}"
        )
    return name


def parse_output_spec(spec: str) -> tuple[str, str | None]:
    """Split ``FORMAT`` or ``FORMAT=PATH``; only the first ``=`` separates, so paths may contain one."""
    fmt, sep, path = spec.partition("=")
    name = _check_format(fmt)
    if not sep:
        return name, None
    if not path.strip():
        raise ValueError(f"output {spec!r} has an empty path: use {name} or {name}=PATH")
    return name, path


def render(
    fmt: str, report: RunReport, *, color: bool = False, options: RenderOptions | None = None, path: str | None = None
) -> str:
    """``options`` carry what the run is judged by (``--fail-on``) and the console's view (``-v``, width);
    ``path`` is where the output goes, if a file: the metrics read their previous version there."""
    return "".join(stream(fmt, report, color=color, options=options, path=path))


def stream(
    fmt: str, report: RunReport, *, color: bool = False, options: RenderOptions | None = None, path: str | None = None
) -> Iterator[str]:
    """What :func:`render` returns, in pieces as the renderer makes them (about a cluster each), so a
    fleet's report is never held whole. An unknown format raises now, and the previous metrics file is
    read now, before :func:`write_report` truncates or replaces it."""
    name = _check_format(fmt)
    opts = options or RenderOptions()
    if color != opts.color:
        opts = dataclasses.replace(opts, color=color)
    if name == "prometheus":
        from . import prometheus

        return prometheus.chunks(report, previous=_previous(path))
    if name == "markdown":
        from . import markdown

        return iter((markdown.render(report),))
    if name == "json":
        return json_report.chunks(report)
    if name == "junit":
        return junit.chunks(report, fail_on=opts.fail_on)
    if name == "html":
        return html.chunks(report, fail_on=opts.fail_on, interrupted_code=opts.interrupted_code)
    return console.chunks(report, options=opts)


def _previous(path: str | None) -> str | None:
    """What the metrics keep from the file they replace: only a regular file is read. A FIFO, or
    ``/dev/stdout`` on a pipe, would wait forever for a writer or for data that never comes."""
    if path is None or path == "-" or _own_fd(path) is not None:
        return None
    from . import prometheus

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, encoding="utf-8") as handle:
        try:
            return prometheus.last_success_lines(handle) if stat.S_ISREG(os.fstat(fd).st_mode) else None
        except (OSError, UnicodeDecodeError):
            return None


class OutputError(Exception):
    """An output that cannot be written; the message names it and says why, on one line."""


# The process's own descriptors: written through the descriptor, sharing its offset, so
# `-o json=/dev/stdout > file` appends after the console report instead of overwriting it.
_FD_PATH = re.compile(r"^/(?:dev/fd|proc/self/fd)/(\d+)$")
_STD_PATHS = {"/dev/stdin": 0, "/dev/stdout": 1, "/dev/stderr": 2}


def _own_fd(path: str) -> int | None:
    if path in _STD_PATHS:
        return _STD_PATHS[path]
    m = _FD_PATH.match(path)
    return int(m.group(1)) if m else None


def goes_to_stdout(path: str | None) -> bool:
    """Whether an output lands on stdout: none or ``-``, the process's descriptor 1 by any of its names
    (/dev/stdout, /dev/fd/1, /proc/self/fd/1), or the very file stdout was redirected to. /dev/null is
    everyone's: two outputs there interleave nothing anyone reads."""
    if path is None or path == "-":
        return True
    if _own_fd(path) == 1:
        return True
    try:
        target, out = os.stat(path), os.fstat(1)
    except (OSError, ValueError):
        return False
    same = (target.st_dev, target.st_ino) == (out.st_dev, out.st_ino)
    return same and not os.path.samefile(path, os.devnull)


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)


def check_target(path: str) -> None:
    """Raise :class:`OutputError` unless ``path`` can take a report; never creates or opens anything
    that could block (a FIFO is only looked at)."""
    fd = _own_fd(path)
    if fd is not None:
        try:
            flags = _fd_flags(fd)
        except OSError:
            raise OutputError(f"{path}: descriptor {fd} is not open") from None
        if flags & os.O_ACCMODE == os.O_RDONLY:
            raise OutputError(f"{path}: descriptor {fd} is not open for writing")
        return
    real = os.path.realpath(path)
    try:
        st = os.stat(real)
    except FileNotFoundError:
        parent = os.path.dirname(real) or "."
        if not os.path.isdir(parent):
            raise OutputError(f"{path}: directory {parent} does not exist (it is not created for you)") from None
        if not os.access(parent, os.W_OK | os.X_OK):
            raise OutputError(f"{path}: cannot create a file in {parent}: permission denied") from None
        return
    except OSError as exc:
        raise OutputError(f"{path}: {_why(exc)}") from None
    if stat.S_ISDIR(st.st_mode):
        raise OutputError(f"{path}: is a directory; give a file name")
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISFIFO(st.st_mode) or stat.S_ISCHR(st.st_mode)):
        raise OutputError(f"{path}: not a regular file, FIFO or character device")
    if not os.access(real, os.W_OK):
        raise OutputError(f"{path}: not writable: permission denied")


def check_outputs(outputs: Sequence[tuple[str, str | None]]) -> None:
    """:func:`check_target` for every ``FORMAT=PATH``; the OutputError names the output as it was given."""
    for fmt, path in outputs:
        if path is not None and path != "-":
            try:
                check_target(path)
            except OutputError as exc:
                raise OutputError(f"-o {fmt}={exc}") from None


def _fd_flags(fd: int) -> int:
    import fcntl

    return fcntl.fcntl(fd, fcntl.F_GETFL)


# Chunks are gathered into blocks of about this size before each write: few system calls, little memory.
BLOCK_BYTES = 256 * 1024


def _blocks(text: str | Iterable[str]) -> Iterator[bytes]:
    """UTF-8 ``text`` (a string, or chunks of one as :func:`stream` yields them) in blocks to write."""
    if isinstance(text, str):
        text = (text,)
    pending: list[bytes] = []
    size = 0
    for chunk in text:
        data = chunk.encode("utf-8")
        pending.append(data)
        size += len(data)
        if size >= BLOCK_BYTES:
            yield b"".join(pending)
            pending, size = [], 0
    if pending:
        yield b"".join(pending)


def write_report(path: str, text: str | Iterable[str]) -> None:
    """Write UTF-8 ``text`` (a string, or chunks of one, written as they come) to ``path`` as
    :func:`check_target` describes; OSError on failure."""
    fd = _own_fd(path)
    if fd is not None:
        _write_all(fd, text)
        return
    real = os.path.realpath(path)
    try:
        st: os.stat_result | None = os.stat(real)
    except FileNotFoundError:
        st = None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(errno.EISDIR, "is a directory")
    if st is None or stat.S_ISREG(st.st_mode):
        if st is not None and not os.access(os.path.dirname(real) or ".", os.W_OK | os.X_OK):
            _write_in_place(real, text, truncate=True)  # the file is writable, its directory is not
        else:
            write_atomic(real, text, keep=st)
        return
    _write_in_place(real, text, truncate=False)


def _write_in_place(path: str, text: str | Iterable[str], *, truncate: bool) -> None:
    fd = os.open(path, os.O_WRONLY | (os.O_TRUNC if truncate else 0))
    try:
        _write_all(fd, text)
    finally:
        os.close(fd)


def _write_all(fd: int, text: str | Iterable[str]) -> None:
    for block in _blocks(text):
        view = memoryview(block)
        while view:
            view = view[os.write(fd, view) :]


def write_atomic(path: str | os.PathLike[str], text: str | Iterable[str], keep: os.stat_result | None = None) -> None:
    """Write UTF-8 ``text`` (a string or its chunks) via a sibling temp file and ``os.replace``.

    The temp file is opened with ``os.open`` rather than ``tempfile`` so it gets the usual umask-derived
    permissions instead of 0600, and the finished report stays readable by CI artifact uploaders; a file
    that already existed (``keep``) keeps its mode and, where allowed, its owner.
    """
    target = Path(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(tmp, flags, 0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, "wb") as handle:
            for block in _blocks(text):
                handle.write(block)
            handle.flush()
            os.fsync(handle.fileno())
        if keep is not None:
            os.chmod(tmp, stat.S_IMODE(keep.st_mode))
            with contextlib.suppress(OSError):
                os.chown(tmp, keep.st_uid, keep.st_gid)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
