"""Run kubeconfig exec credential plugins under our own deadline.

The kubernetes client runs plugins with no timeout, so a hung `aws`, `gke-gcloud-auth-plugin` or
`kubelogin` would stall its cluster forever. We run the plugin ourselves, kill its whole process
group at the deadline, and hand the client the credential it printed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import IO, Any

from preflight.engine.redact import scrub_credentials

_KNOWN_HINTS = {
    "aws": "run `aws sso login` or refresh the AWS profile named in the kubeconfig's exec env",
    "aws-iam-authenticator": "refresh the AWS credentials aws-iam-authenticator uses",
    "gke-gcloud-auth-plugin": "run `gcloud auth login` (or refresh Application Default Credentials)",
    "kubelogin": "run `kubelogin convert-kubeconfig` / `az login` for the Azure identity",
}


# Plugins still running, so an interrupted run can kill them instead of leaving orphans behind.
_RUNNING: set[subprocess.Popen[bytes]] = set()
_RUNNING_LOCK = threading.Lock()
# Set by kill_running: a cluster still in flight after an interrupt must not start another plugin.
_CLOSED = threading.Event()


def kill_running() -> int:
    """Kill every plugin process group still running and refuse new ones; returns how many ran."""
    with _RUNNING_LOCK:
        _CLOSED.set()
        procs = list(_RUNNING)
    for proc in procs:
        # Only signal: the thread that started the plugin is still inside communicate() with it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    return len(procs)


class ExecError(Exception):
    """The plugin could not produce a credential; the message says what to do."""


class ExecTimeout(ExecError):
    """The plugin did not answer in time: nothing was decided about the credential (status `error`)."""


@dataclass(frozen=True)
class ExecResult:
    token: str | None
    client_cert_pem: str | None
    client_key_pem: str | None
    expiration: str | None


STDERR_LINES = 3
STDERR_LINE_CHARS = 200


def hint_for(command: str) -> str:
    base = os.path.basename(command)
    return _KNOWN_HINTS.get(base, f"make sure `{base}` works when run by hand")


def locate(spec: Mapping[str, Any], cwd: str | None = None, path: str | None = None) -> str | None:
    """The executable kubectl would run: a command with a slash is a path (relative to the kubeconfig's
    directory), anything else is looked up on PATH. None when there is no such executable."""
    command = str(spec.get("command") or "")
    if not command:
        return None
    if os.path.sep in command:
        exe = command if os.path.isabs(command) or cwd is None else os.path.join(cwd, command)
        return exe if os.path.isfile(exe) and os.access(exe, os.X_OK) else None
    return shutil.which(command, path=path)


def not_found_message(spec: Mapping[str, Any]) -> str:
    command = str(spec.get("command") or "")
    where = "at that path" if os.path.sep in command else "on PATH"
    install = spec.get("installHint")
    extra = f" ({' '.join(str(install).split())})" if install else ""
    return f"exec plugin {command!r} not found {where}{extra}"


def stderr_excerpt(data: bytes, secrets: Iterable[str] = ()) -> str:
    """The last few lines a failing plugin printed, without the run's secrets or anything shaped like a
    credential: plugins print tokens and keys in their debug output."""
    lines = [ln.strip() for ln in data.decode(errors="replace").splitlines() if ln.strip()]
    if not lines:
        return "no message"
    kept = [scrub_credentials(ln, secrets)[:STDERR_LINE_CHARS] for ln in lines[-STDERR_LINES:]]
    return " | ".join(kept)


def run_plugin(spec: Mapping[str, Any], timeout: float, cwd: str | None = None) -> ExecResult:
    command = str(spec.get("command") or "")
    if not command:
        raise ExecError("exec plugin has no command")
    args = [str(a) for a in spec.get("args") or []]
    exe = locate(spec, cwd)
    if not exe:
        raise ExecError(not_found_message(spec))
    env = dict(os.environ)
    secrets: list[str] = []
    for item in spec.get("env") or []:
        env[str(item.get("name"))] = str(item.get("value", ""))
        secrets.append(str(item.get("value", "")))
    api_version = str(spec.get("apiVersion") or "client.authentication.k8s.io/v1")
    env["KUBERNETES_EXEC_INFO"] = json.dumps(
        {"apiVersion": api_version, "kind": "ExecCredential", "spec": {"interactive": False}}
    )
    try:
        proc = subprocess.Popen(
            [exe, *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
    except OSError as exc:
        raise ExecError(f"exec plugin {command!r} could not start: {exc.strerror or exc}") from None
    with _RUNNING_LOCK:
        _RUNNING.add(proc)
        closed = _CLOSED.is_set()
    if closed:
        _kill_group(proc)
        with _RUNNING_LOCK:
            _RUNNING.discard(proc)
        raise ExecError("the run was interrupted before the exec plugin finished")
    try:
        out, err = _collect(proc, timeout)
    except subprocess.TimeoutExpired:
        raise ExecTimeout(
            f"exec plugin {os.path.basename(command)!r} did not answer within {timeout:g}s "
            f"(hung, or waiting for interactive login): {hint_for(command)}"
        ) from None
    finally:
        with _RUNNING_LOCK:
            _RUNNING.discard(proc)
    if proc.returncode != 0:
        raise ExecError(
            f"exec plugin {os.path.basename(command)!r} exited {proc.returncode}: "
            f"{stderr_excerpt(err, secrets)}; {hint_for(command)}"
        )
    try:
        doc = json.loads(out)
        status = doc["status"]
        result = ExecResult(
            token=_text(status.get("token")),
            client_cert_pem=_text(status.get("clientCertificateData")),
            client_key_pem=_text(status.get("clientKeyData")),
            expiration=_text(status.get("expirationTimestamp")),
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ExecError(
            f"exec plugin {os.path.basename(command)!r} printed no ExecCredential JSON with a status"
        ) from None
    if not result.token and not (result.client_cert_pem and result.client_key_pem):
        raise ExecError(f"exec plugin {os.path.basename(command)!r} returned neither a token nor a client certificate")
    return result


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise TypeError("not a string")


def _collect(proc: subprocess.Popen[bytes], timeout: float) -> tuple[bytes, bytes]:
    """Wait for the plugin itself, not for its pipes: a child it left running (a token cache, a browser
    helper) may hold stdout open forever. Once the plugin exits its group is killed, which closes them."""
    chunks: dict[str, list[bytes]] = {"out": [], "err": []}
    readers = [
        threading.Thread(target=_drain, args=(stream, chunks[key]), daemon=True)
        for key, stream in (("out", proc.stdout), ("err", proc.stderr))
    ]
    for r in readers:
        r.start()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise
    _signal_group(proc)
    for r in readers:
        r.join(5)
    return b"".join(chunks["out"]), b"".join(chunks["err"])


def _drain(stream: IO[bytes] | None, into: list[bytes]) -> None:
    if stream is None:
        return
    with contextlib.suppress(OSError, ValueError):
        while chunk := os.read(stream.fileno(), 65536):
            into.append(chunk)
    with contextlib.suppress(OSError):
        stream.close()


def _signal_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)
