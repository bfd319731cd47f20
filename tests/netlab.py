"""Network namespaces that tests create to make filtered, refused and unreachable paths for real.

Namespaces are per thread on Linux, so `NetNS.call` runs a function in a thread that joined the
namespace with setns(2): sockets it (and threads it starts) open live there. Public-looking test
addresses (203.0.113.0/24, 198.51.100.0/24) exist only on interfaces inside the namespace.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import threading
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

CLONE_NEWNET = 0x40000000
T = TypeVar("T")


def require_netns() -> None:
    """Skip only outside CI: in CI (root) a missing capability is a failure, not a silent skip."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root")
    if not shutil.which("ip"):
        missing.append("iproute2")
    if not shutil.which("nft"):
        missing.append("nftables")
    if missing:
        msg = f"network-namespace tests need {', '.join(missing)}"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)


def _run(*args: str, stdin: str | None = None) -> None:
    subprocess.run(args, check=True, input=stdin, text=True, capture_output=True, timeout=20)


class NetNS:
    def __init__(self) -> None:
        self.name = "mpf-" + uuid.uuid4().hex[:10]
        self.path = f"/var/run/netns/{self.name}"

    def __enter__(self) -> NetNS:
        _run("ip", "netns", "add", self.name)
        self.ip("link", "set", "lo", "up")
        return self

    def __exit__(self, *exc: object) -> None:
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=20)
        shutil.rmtree(f"/etc/netns/{self.name}", ignore_errors=True)

    def ip(self, *args: str) -> None:
        _run("ip", "-n", self.name, *args)

    def add_address(self, cidr: str) -> None:
        """Addresses go on the namespace's own loopback: no kernel module needed, never seen outside."""
        self.ip("addr", "add", cidr, "dev", "lo")

    def nft(self, ruleset: str) -> None:
        _run("ip", "netns", "exec", self.name, "nft", "-f", "-", stdin=ruleset)

    def drop_tcp(self, address: str, port: int) -> None:
        """A firewall that silently drops SYNs: what a security group without a matching rule does."""
        self.nft(
            "table inet lab {\n chain output {\n  type filter hook output priority 0; policy accept;\n"
            f"  ip daddr {address} tcp dport {port} drop\n }}\n}}\n"
            if "table inet lab" not in self._tables()
            else f"add rule inet lab output ip daddr {address} tcp dport {port} drop\n"
        )

    def _tables(self) -> str:
        out = subprocess.run(
            ["ip", "netns", "exec", self.name, "nft", "list", "tables"], capture_output=True, text=True, timeout=20
        )
        return out.stdout

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        box: dict[str, Any] = {}

        def target() -> None:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(self.path, os.O_RDONLY)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    box["exc"] = OSError(ctypes.get_errno(), "setns failed")
                    return
            finally:
                os.close(fd)
            try:
                box["value"] = fn(*args, **kwargs)
            except BaseException as exc:  # re-raised in the caller's thread
                box["exc"] = exc

        t = threading.Thread(target=target, daemon=True)
        t.start()
        t.join()
        if "exc" in box:
            raise box["exc"]
        return box["value"]

    def exec(
        self, *argv: str, timeout: float = 120, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", self.name, *argv], capture_output=True, text=True, timeout=timeout, env=env
        )
