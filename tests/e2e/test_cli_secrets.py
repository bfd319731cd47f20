"""A distinct secret planted in each place a kubeconfig or a plugin can carry one; none reaches the console,
the JSON, the JUnit, the HTML, the markdown, the Prometheus text, stdout or stderr, in any form the tool
derives from it (a proxy that echoes the request quotes the Basic value the tool built). User names stay:
they say who, not how."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from preflight_lab.fleet import ClusterSpec, LabFleet
from preflight_lab.proxy import LabProxy

CLI = [sys.executable, "-m", "preflight.cli"]

SECRETS = {
    "server-url": "SrvUrlPass-4d1f",
    "proxy-url": "PrxUrlPass-9c2e",
    "env-proxy": "EnvProxyPass-77ab",
    "stderr-jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJwbGFudGVkIn0.c2lnbmF0dXJlcGxhbnRlZA",
    "stderr-bearer": "BearerPlanted0123456789",
    "stderr-aws": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYPLANTEDKEY",
    "stderr-password": "PwdValuePlanted-31",
    "stderr-token": "TokValuePlanted-58",
    "stderr-env": "EnvSecretPlanted-0042",
}
# The users of the URLs that carry a password: the Basic value the tool builds from each is a secret too.
PROXY_USERS = {"proxy-url": "proxy-user", "env-proxy": "env-user"}


def _forms(place: str, secret: str) -> dict[str, str]:
    forms = {place: secret}
    if place in PROXY_USERS:
        pair = f"{PROXY_USERS[place]}:{secret}"
        forms |= {f"{place} (user:password)": pair, f"{place} (base64)": base64.b64encode(pair.encode()).decode()}
    return forms


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory):
    with LabFleet([ClusterSpec(name="good")], tmp_path_factory.mktemp("secrets-lab")) as fleet:
        yield fleet


def test_planted_secrets_reach_no_output(lab: LabFleet, tmp_path: Path) -> None:
    good_cluster = lab.clusters["good"]
    # Every proxy here echoes the request, Proxy-Authorization included, in its 407 page.
    with LabProxy(
        credentials=("nobody", "accepted"), echo=True, hosts={good_cluster.dns_name: good_cluster.address}
    ) as proxy:
        _planted_secrets_reach_no_output(lab, tmp_path, proxy)


def _planted_secrets_reach_no_output(lab: LabFleet, tmp_path: Path, proxy: LabProxy) -> None:
    doc = lab.kubeconfig()
    good = doc["clusters"][0]["cluster"]
    url = lab.clusters["good"].url.removeprefix("https://")
    proxy_at = proxy.url.removeprefix("http://")
    plugin = tmp_path / "noisy-plugin.py"
    plugin.write_text(
        "import sys\n"
        f"print('debug: got {SECRETS['stderr-jwt']} from the cache', file=sys.stderr)\n"
        f"print('debug: Authorization: Bearer {SECRETS['stderr-bearer']}', file=sys.stderr)\n"
        f"print('debug: aws_secret_access_key {SECRETS['stderr-aws']}', file=sys.stderr)\n"
        f"print('debug: password={SECRETS['stderr-password']} token: {SECRETS['stderr-token']}', file=sys.stderr)\n"
        f"print('debug: env says {SECRETS['stderr-env']}', file=sys.stderr)\n"
        "print('error: login required', file=sys.stderr)\n"
        "sys.exit(3)\n"
    )
    variants = {
        "url-password": ({**good, "server": f"https://svc-user:{SECRETS['server-url']}@{url}"}, None),
        "proxy-password": ({**good, "proxy-url": f"http://proxy-user:{SECRETS['proxy-url']}@{proxy_at}"}, None),
        # Not in NO_PROXY: reached through HTTPS_PROXY, whose URL carries a password.
        "env-proxied": ({**good, "server": f"https://{lab.clusters['good'].dns_name}:{url.rsplit(':', 1)[1]}"}, None),
        "noisy-plugin": (
            good,
            {
                "exec": {
                    "apiVersion": "client.authentication.k8s.io/v1",
                    "command": sys.executable,
                    "args": [str(plugin)],
                    "env": [{"name": "PLUGIN_SECRET", "value": SECRETS["stderr-env"]}],
                }
            },
        ),
    }
    for name, (cluster, user) in variants.items():
        doc["clusters"].append({"name": name, "cluster": cluster})
        doc["users"].append({"name": name, "user": user or doc["users"][0]["user"]})
        doc["contexts"].append({"name": name, "context": {"cluster": name, "user": name}})
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(yaml.safe_dump(doc))
    env = {k: v for k, v in os.environ.items() if not k.upper().endswith("_PROXY")}
    env |= {
        "NO_COLOR": "1",
        "HTTPS_PROXY": f"http://env-user:{SECRETS['env-proxy']}@{proxy_at}",
        "NO_PROXY": url.rsplit(":", 1)[0],
    }
    proc = subprocess.run(
        [
            *CLI,
            "check",
            "--kubeconfig",
            str(kubeconfig),
            "--connect-timeout",
            "1",
            "--checks",
            "kube*",
            "-o",
            "console",
            "-o",
            f"json={tmp_path / 'r.json'}",
            "-o",
            f"junit={tmp_path / 'j.xml'}",
            "-o",
            f"html={tmp_path / 'r.html'}",
            "-o",
            f"markdown={tmp_path / 'r.md'}",
            "-o",
            f"prometheus={tmp_path / 'r.prom'}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 1, proc.stderr
    outputs = {
        "stdout (console)": proc.stdout,
        "stderr": proc.stderr,
        "json": (tmp_path / "r.json").read_text(),
        "junit": (tmp_path / "j.xml").read_text(),
        "html": (tmp_path / "r.html").read_text(),
        "markdown": (tmp_path / "r.md").read_text(),
        "prometheus": (tmp_path / "r.prom").read_text(),
    }
    for where, text in outputs.items():
        for place, secret in SECRETS.items():
            for form, value in _forms(place, secret).items():
                assert value not in text, f"the secret planted in {form} leaked into {where}"
    report = json.loads(outputs["json"])
    by_name = {c["name"]: c for c in report["clusters"]}
    # User names are kept, passwords are not: the reader still sees which account is configured.
    assert "svc-user:<redacted>@" in by_name["url-password"]["server"]
    assert "svc-user:<redacted>@" in outputs["stdout (console)"]
    assert "proxy-user:<redacted>@" in outputs["json"] and "env-user:<redacted>@" in outputs["json"]
    auth = next(r for r in by_name["noisy-plugin"]["results"] if r["check_id"] == "kube-api.auth")
    assert auth["status"] == "fail"
    # At most a few of the plugin's lines, the last of them intact.
    assert "error: login required" in auth["message"] and "exited 3" in auth["message"]
    assert "from the cache" not in auth["message"]
    # Both proxied clusters met the echoing proxy: its 407 is summarised by its status line.
    for name in ("proxy-password", "env-proxied"):
        tls = next(r for r in by_name[name]["results"] if r["check_id"] == "kube-api.tls")
        assert tls["status"] == "fail" and "407 Proxy Authentication Required" in tls["message"], tls["message"]
    assert len(proxy.connects) >= 2
