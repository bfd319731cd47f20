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
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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


@dataclass(frozen=True)
class ExecResult:
    token: str | None
    client_cert_pem: str | None
    client_key_pem: str | None
    expiration: str | None


def hint_for(command: str) -> str:
    base = os.path.basename(command)
    return _KNOWN_HINTS.get(base, f"make sure `{base}` works when run by hand")


def run_plugin(spec: Mapping[str, Any], timeout: float, cwd: str | None = None) -> ExecResult:
    command = str(spec.get("command") or "")
    if not command:
        raise ExecError("exec plugin has no command")
    args = [str(a) for a in spec.get("args") or []]
    exe = command if os.path.sep in command else shutil.which(command)
    if not exe:
        install = spec.get("installHint")
        extra = f" ({' '.join(str(install).split())})" if install else ""
        raise ExecError(f"exec plugin {command!r} not found on PATH{extra}")
    env = dict(os.environ)
    for item in spec.get("env") or []:
        env[str(item.get("name"))] = str(item.get("value", ""))
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
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise ExecError(
            f"exec plugin {os.path.basename(command)!r} did not answer within {timeout:g}s "
            f"(hung, or waiting for interactive login): {hint_for(command)}"
        ) from None
    finally:
        with _RUNNING_LOCK:
            _RUNNING.discard(proc)
    if proc.returncode != 0:
        last = (err.decode(errors="replace").strip().splitlines() or ["no message"])[-1][:300]
        raise ExecError(
            f"exec plugin {os.path.basename(command)!r} exited {proc.returncode}: {last}; {hint_for(command)}"
        )
    try:
        doc = json.loads(out)
        status = doc["status"]
    except (ValueError, KeyError, TypeError):
        raise ExecError(
            f"exec plugin {os.path.basename(command)!r} printed no ExecCredential JSON with a status"
        ) from None
    result = ExecResult(
        token=status.get("token"),
        client_cert_pem=status.get("clientCertificateData"),
        client_key_pem=status.get("clientKeyData"),
        expiration=status.get("expirationTimestamp"),
    )
    if not result.token and not (result.client_cert_pem and result.client_key_pem):
        raise ExecError(f"exec plugin {os.path.basename(command)!r} returned neither a token nor a client certificate")
    return result


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired, ValueError, OSError):
        proc.communicate(timeout=5)
