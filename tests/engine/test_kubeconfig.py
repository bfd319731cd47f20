"""Kubeconfig discovery and merging (kubectl semantics) and the targets built from contexts."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from preflight.engine.errors import ConfigError
from preflight.engine.fingerprint import FingerprintKey, random_key
from preflight.engine.fingerprint import load as load_key
from preflight.engine.kubeconfig import discover_paths, load_file, merge
from preflight.engine.targets import Credential, from_context, in_cluster_target, select_contexts

TOKEN = "eyJhbGciOiJSUzI1NiJ9.c2VjcmV0LXBheWxvYWQ.c2lnbmF0dXJlLWJ5dGVz"
CA_PEM = b"-----BEGIN CERTIFICATE-----\nMIIBfakeCAfakeCAfakeCA\n-----END CERTIFICATE-----\n"
CERT_PEM = b"-----BEGIN CERTIFICATE-----\nMIIBfakeCLIENTfakeCLIENT\n-----END CERTIFICATE-----\n"
KEY_PEM = b"-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIfakeKEYfakeKEY\n-----END EC PRIVATE KEY-----\n"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def kubeconfig(
    clusters: dict[str, dict[str, Any]] | None = None,
    users: dict[str, dict[str, Any]] | None = None,
    contexts: dict[str, dict[str, Any]] | None = None,
    current: str | None = None,
) -> dict[str, Any]:
    doc: dict[str, Any] = {"apiVersion": "v1", "kind": "Config"}
    doc["clusters"] = [{"name": n, "cluster": b} for n, b in (clusters or {}).items()]
    doc["users"] = [{"name": n, "user": b} for n, b in (users or {}).items()]
    doc["contexts"] = [{"name": n, "context": b} for n, b in (contexts or {}).items()]
    if current:
        doc["current-context"] = current
    return doc


def write(path: Path, doc: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc), encoding="utf-8")
    return path


def single(
    tmp_path: Path,
    cluster: dict[str, Any] | None = None,
    user: dict[str, Any] | None = None,
    name: str = "kc",
) -> Path:
    """One file, one context 'ctx' -> cluster 'c' + user 'u'."""
    return write(
        tmp_path / f"{name}.yaml",
        kubeconfig(
            {"c": cluster if cluster is not None else {"server": "https://203.0.113.10:6443"}},
            {"u": user if user is not None else {"token": TOKEN}},
            {"ctx": {"cluster": "c", "user": "u"}},
            "ctx",
        ),
    )


def target_of(path: Path, env: dict[str, str] | None = None, name: str = "ctx") -> Any:
    return from_context(merge([path]), name, env or {})


# --- merge ---------------------------------------------------------------------------------------


def test_merge_first_file_wins_and_records_shadowed(tmp_path: Path) -> None:
    a = write(
        tmp_path / "a.yaml",
        kubeconfig(
            {"c1": {"server": "https://203.0.113.1:6443"}},
            {"u1": {"token": "first-token-value"}},
            {"ctx1": {"cluster": "c1", "user": "u1"}},
            "ctx1",
        ),
    )
    b = write(
        tmp_path / "b.yaml",
        kubeconfig(
            {"c1": {"server": "https://198.51.100.1:6443"}, "c2": {"server": "https://198.51.100.2:6443"}},
            {"u1": {"token": "first-token-value"}},
            {"ctx1": {"cluster": "c2", "user": "u1"}, "ctx2": {"cluster": "c2", "user": "u1"}},
            "ctx2",
        ),
    )
    m = merge([a, b])
    assert m.files == [a, b]
    assert m.current_context == "ctx1"
    assert m.clusters["c1"].body["server"] == "https://203.0.113.1:6443"
    assert m.clusters["c1"].source == a
    assert m.clusters["c2"].source == b
    assert m.contexts["ctx1"].body["cluster"] == "c1"
    assert list(m.contexts) == ["ctx1", "ctx2"]
    assert sorted(m.shadowed) == sorted(
        [
            ("clusters", "c1", b, a, True),
            ("users", "u1", b, a, False),  # identical duplicate: recorded, but does not differ
            ("contexts", "ctx1", b, a, True),
        ]
    )


def test_merge_current_context_from_first_file_that_sets_one(tmp_path: Path) -> None:
    a = write(tmp_path / "a.yaml", kubeconfig({"c": {"server": "https://203.0.113.1"}}))
    b = write(tmp_path / "b.yaml", kubeconfig(contexts={"x": {"cluster": "c", "user": "u"}}, current="x"))
    c = write(tmp_path / "c.yaml", kubeconfig(current="y"))
    assert merge([a, b, c]).current_context == "x"


def test_merge_empty_file_is_an_empty_config(tmp_path: Path) -> None:
    empty = write(tmp_path / "empty.yaml", "")
    m = merge([empty])
    assert m.contexts == {} and m.current_context is None and m.files == [empty]


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    bad = write(
        tmp_path / "bad.yaml",
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: https://x\n",
    )
    with pytest.raises(ConfigError) as info:
        merge([bad])
    msg = str(info.value)
    assert msg.startswith(f"{bad}:")
    line = int(msg[len(str(bad)) + 1 :].split(":", 1)[0])
    assert 4 <= line <= 6
    assert "malformed" in msg


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("- just\n- a list\n", "top level must be a mapping"),
        ("clusters: {c: {server: https://x}}\n", "'clusters' must be a list"),
        ("users: just-a-string\n", "'users' must be a list"),
        ("contexts:\n- context: {cluster: c}\n", "contexts[0] has no 'name'"),
        ("clusters:\n- name: c\n  cluster: https://x\n", "field 'cluster' must be a mapping"),
        ("users:\n- not-a-mapping\n", "users[0] has no 'name'"),
    ],
)
def test_wrong_types_are_config_errors(tmp_path: Path, text: str, needle: str) -> None:
    path = write(tmp_path / "kc.yaml", text)
    with pytest.raises(ConfigError) as info:
        merge([path])
    assert str(info.value).startswith(str(path))
    assert needle in str(info.value)


def test_unreadable_and_binary_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read kubeconfig"):
        load_file(tmp_path / "absent.yaml")
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00\x81garbage\x00")
    with pytest.raises(ConfigError) as info:
        load_file(binary)
    assert str(binary) in str(info.value)


# --- discover_paths ------------------------------------------------------------------------------


def test_explicit_paths_win_over_environment(tmp_path: Path) -> None:
    a = single(tmp_path, name="a")
    b = single(tmp_path, name="b")
    got = discover_paths([str(a)], {"KUBECONFIG": str(b), "KUBECONFIG_FOLDER": str(tmp_path)})
    assert got == [a]


def test_explicit_missing_path_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="nope.yaml"):
        discover_paths([str(missing)], {"KUBECONFIG": str(single(tmp_path))})


def test_kubeconfig_env_is_a_pathsep_list_and_missing_entries_are_ignored(tmp_path: Path) -> None:
    a = single(tmp_path, name="a")
    b = single(tmp_path, name="b")
    listed = os.pathsep.join([str(b), str(tmp_path / "missing.yaml"), "", str(a)])
    got = discover_paths([], {"KUBECONFIG": listed, "KUBECONFIG_FOLDER": str(tmp_path / "ignored")})
    assert got == [b, a]


def test_kubeconfig_env_with_no_existing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="none of these files exist"):
        discover_paths([], {"KUBECONFIG": str(tmp_path / "missing.yaml")})


def test_kubeconfig_env_naming_a_directory_says_so(tmp_path: Path) -> None:
    """KUBECONFIG lists files; a folder of them is KUBECONFIG_FOLDER: the error says that, not "none exist"."""
    folder = tmp_path / "kube"
    single(folder, name="x")
    with pytest.raises(ConfigError) as caught:
        discover_paths([], {"KUBECONFIG": str(folder)})
    message = str(caught.value)
    assert f"{folder} is a directory" in message and f"KUBECONFIG_FOLDER={folder}" in message
    assert "none of these files exist" not in message


def test_folder_scan_finds_kubeconfigs_and_ignores_other_yaml(tmp_path: Path) -> None:
    folder = tmp_path / "kube"
    cfg = single(folder, name="x")
    cfg = cfg.rename(folder / "config")
    prod = single(folder, name="prod")  # prod.yaml
    staging = write(folder / "staging.yml", kubeconfig(contexts={"s": {"cluster": "c", "user": "u"}}))
    legacy = write(folder / "legacy.kubeconfig", kubeconfig({"c": {"server": "https://203.0.113.1"}}))
    write(folder / "notes.txt", kubeconfig(contexts={"n": {}}))  # wrong suffix
    write(folder / "values.yaml", {"replicaCount": 2, "image": {"tag": "v1"}})  # some other tool's YAML
    write(folder / "playbook.yaml", [{"hosts": "all", "tasks": []}])  # top level is a list
    write(folder / "talosconfig.yaml", {"context": "t", "contexts": {"t": {"endpoints": ["10.0.0.1"]}}})
    (folder / "cache.conf").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe")  # binary, not YAML text
    (folder / "dir.yaml").mkdir()
    got = discover_paths([], {"KUBECONFIG_FOLDER": str(folder)})
    assert got == sorted([cfg, prod, staging, legacy])


def test_folder_default_is_home_dot_kube(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    cfg = single(tmp_path / ".kube", name="x").rename(tmp_path / ".kube" / "config")
    assert discover_paths([], {}) == [cfg]


def test_folder_missing_or_without_kubeconfigs_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="folder not found"):
        discover_paths([], {"KUBECONFIG_FOLDER": str(tmp_path / "absent")})
    write(tmp_path / "values.yaml", {"a": 1})
    with pytest.raises(ConfigError, match="no kubeconfig files found"):
        discover_paths([], {"KUBECONFIG_FOLDER": str(tmp_path)})


# --- from_context: cluster side ------------------------------------------------------------------


def test_complete_context(tmp_path: Path) -> None:
    cluster = {"server": "https://203.0.113.10:6443", "certificate-authority-data": b64(CA_PEM)}
    path = single(tmp_path, cluster)
    t = target_of(path)
    assert t.problems == []
    assert (t.name, t.cluster_name, t.user_name, t.source) == ("ctx", "c", "u", path)
    assert (t.host, t.port, t.endpoint) == ("203.0.113.10", 6443, "203.0.113.10:6443")
    assert t.ca_pem == CA_PEM
    assert t.credential.kind == "token" and t.credential.token == TOKEN
    assert t.shadowed == []


def test_missing_cluster_and_user_are_problems(tmp_path: Path) -> None:
    path = write(
        tmp_path / "kc.yaml",
        kubeconfig(contexts={"ctx": {"cluster": "ghost", "user": "nobody"}, "bare": {}}),
    )
    t = target_of(path)
    assert any("'ghost'" in p and "no kubeconfig file defines" in p for p in t.problems)
    assert any("'nobody'" in p for p in t.problems)
    assert t.host is None and t.credential.kind == "none"
    bare = target_of(path, name="bare")
    assert "context names no cluster" in bare.problems
    assert "context names no user" in bare.problems


@pytest.mark.parametrize(
    ("server", "needle"),
    [
        ("https://203.0.113.10:99999", "is invalid"),
        ("https://203.0.113.10:port", "is invalid"),
        ("ftp://203.0.113.10", "not an http(s) URL"),
        ("https://", "not an http(s) URL"),
        ("203.0.113.10:6443", "not an http(s) URL"),
        ("https://203.0.113.10:0", "port 0 is not a port"),
        ("https://203.0.113.10 :6443", "contains a space"),
        (" https://203.0.113.10:6443", "contains a space"),
        ("https://[::1", "is invalid"),
        ("https://[fe80::zz]:6443", "is invalid"),
        ("https://host_with!bang:6443", "is not a host name"),
    ],
)
def test_invalid_server_urls(tmp_path: Path, server: str, needle: str) -> None:
    t = target_of(single(tmp_path, {"server": server}))
    assert any(needle in p and p.startswith("cluster 'c': server ") for p in t.problems), t.problems
    assert t.host is None and t.server == ""


def test_url_password_is_a_secret_and_never_in_a_problem(tmp_path: Path) -> None:
    t = target_of(single(tmp_path, {"server": "https://admin:pw-in-server-url@203.0.113.10:0"}))
    assert "pw-in-server-url" not in " ".join(t.problems)
    assert "admin:<redacted>@" in " ".join(t.problems)
    ok = target_of(
        single(
            tmp_path, {"server": "https://a:server-pass-1@203.0.113.10", "proxy-url": "http://u:proxy-pass-1@p:3128"}
        )
    )
    assert {"server-pass-1", "proxy-pass-1"} <= set(ok.credential.secrets())


def test_no_server_url(tmp_path: Path) -> None:
    t = target_of(single(tmp_path, {"insecure-skip-tls-verify": True}))
    assert t.problems == ["cluster 'c' has no server URL"]
    assert t.insecure is True


def test_plain_http_server_is_a_problem_but_parsed(tmp_path: Path) -> None:
    t = target_of(single(tmp_path, {"server": "http://203.0.113.10:8080"}))
    assert (t.host, t.port) == ("203.0.113.10", 8080)
    assert any("plain http" in p for p in t.problems)


@pytest.mark.parametrize(
    ("server", "host", "port"),
    [
        ("https://api.lab.test", "api.lab.test", 443),
        ("https://API.Lab.Test:8443/", "api.lab.test", 8443),
        ("https://[2001:db8::1]:6443", "2001:db8::1", 6443),
        ("http://203.0.113.1", "203.0.113.1", 80),
    ],
)
def test_server_host_and_port(tmp_path: Path, server: str, host: str, port: int) -> None:
    t = target_of(single(tmp_path, {"server": server}))
    assert (t.host, t.port) == (host, port)


def test_relative_ca_is_resolved_against_the_defining_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The cluster lives in one file, the context in another; the CA path is relative to the cluster's file.
    write(tmp_path / "clusters" / "certs" / "ca.crt", CA_PEM.decode())
    clusters = write(
        tmp_path / "clusters" / "clusters.yaml",
        kubeconfig({"c": {"server": "https://203.0.113.10", "certificate-authority": "certs/ca.crt"}}),
    )
    contexts = write(
        tmp_path / "contexts" / "ctx.yaml",
        kubeconfig(users={"u": {"token": TOKEN}}, contexts={"ctx": {"cluster": "c", "user": "u"}}),
    )
    monkeypatch.chdir(tmp_path / "contexts")  # neither the cwd nor the context's file may matter
    t = from_context(merge([contexts, clusters]), "ctx", {})
    assert t.problems == []
    assert t.ca_pem == CA_PEM


def test_missing_or_bad_ca_is_a_problem(tmp_path: Path) -> None:
    t = target_of(single(tmp_path, {"server": "https://203.0.113.1", "certificate-authority": "nope/ca.crt"}))
    assert any("certificate-authority" in p and "nope/ca.crt" in p for p in t.problems)
    bad = target_of(single(tmp_path, {"server": "https://203.0.113.1", "certificate-authority-data": "!!"}))
    assert any("not valid base64" in p for p in bad.problems)


def test_wrapped_base64_data_is_accepted_like_kubectl(tmp_path: Path) -> None:
    encoded = b64(CA_PEM)
    wrapped = "\n".join(encoded[i : i + 20] for i in range(0, len(encoded), 20))
    text = (
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://203.0.113.1\n"
        "    certificate-authority-data: |\n"
        + "".join(f"      {line}\n" for line in wrapped.splitlines())
        + "users:\n- name: u\n  user: {token: abc}\n"
        + "contexts:\n- name: ctx\n  context: {cluster: c, user: u}\n"
    )
    t = target_of(write(tmp_path / "kc.yaml", text))
    assert t.problems == []
    assert t.ca_pem == CA_PEM


# --- from_context: credentials --------------------------------------------------------------------


def test_token(tmp_path: Path) -> None:
    c = target_of(single(tmp_path, user={"token": TOKEN})).credential
    assert (c.kind, c.token) == ("token", TOKEN)
    assert c.secrets() == [TOKEN, f"Bearer {TOKEN}"]


def test_token_file_relative_to_the_users_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "cfg" / "secrets" / "token", TOKEN + "\n")
    path = single(tmp_path / "cfg", user={"tokenFile": "secrets/token"})
    monkeypatch.chdir(tmp_path)
    t = target_of(path)
    assert t.problems == []
    assert (t.credential.kind, t.credential.token) == ("token-file", TOKEN)


def test_missing_token_file_is_a_problem(tmp_path: Path) -> None:
    t = target_of(single(tmp_path, user={"tokenFile": "absent-token"}))
    assert t.credential.kind == "token-file" and t.credential.token is None
    assert any("tokenFile" in p and "absent-token" in p for p in t.problems)


def test_client_certificate_data(tmp_path: Path) -> None:
    user = {"client-certificate-data": b64(CERT_PEM), "client-key-data": b64(KEY_PEM)}
    t = target_of(single(tmp_path, user=user))
    assert t.problems == []
    assert t.credential.kind == "client-cert"
    assert (t.credential.client_cert_pem, t.credential.client_key_pem) == (CERT_PEM, KEY_PEM)
    assert t.credential.secrets() == [CERT_PEM.decode(), KEY_PEM.decode()]


def test_client_certificate_files_relative(tmp_path: Path) -> None:
    write(tmp_path / "pki" / "client.crt", CERT_PEM.decode())
    write(tmp_path / "pki" / "client.key", KEY_PEM.decode())
    user = {"client-certificate": "pki/client.crt", "client-key": "pki/client.key"}
    t = target_of(single(tmp_path, user=user))
    assert t.problems == []
    assert t.credential.client_key_pem == KEY_PEM


def test_client_certificate_without_key_is_a_problem(tmp_path: Path) -> None:
    t = target_of(single(tmp_path, user={"client-certificate-data": b64(CERT_PEM)}))
    assert t.credential.kind == "client-cert"
    assert any("without its key" in p for p in t.problems)


def test_exec_plugin(tmp_path: Path) -> None:
    spec = {
        "apiVersion": "client.authentication.k8s.io/v1beta1",
        "command": "aws",
        "args": ["eks", "get-token", "--cluster-name", "prod"],
        "env": [{"name": "AWS_PROFILE", "value": "prod"}],
    }
    c = target_of(single(tmp_path, user={"exec": spec})).credential
    assert c.kind == "exec"
    assert c.exec_spec == spec
    assert c.token is None


def test_oidc_and_other_auth_providers(tmp_path: Path) -> None:
    oidc = {"auth-provider": {"name": "oidc", "config": {"id-token": TOKEN, "idp-issuer-url": "https://idp"}}}
    c = target_of(single(tmp_path, user=oidc, name="oidc")).credential
    assert (c.kind, c.provider, c.token) == ("oidc", "oidc", TOKEN)
    gcp = {"auth-provider": {"name": "gcp", "config": {"access-token": "ya29.access-token-value"}}}
    c = target_of(single(tmp_path, user=gcp, name="gcp")).credential
    assert (c.kind, c.provider, c.token) == ("auth-provider", "gcp", "ya29.access-token-value")
    refresh = {"auth-provider": {"name": "oidc", "config": {"id-token": TOKEN, "refresh-token": "refresh-secret-1"}}}
    assert "refresh-secret-1" in target_of(single(tmp_path, user=refresh, name="r")).credential.secrets()


def test_exec_env_values_are_secrets(tmp_path: Path) -> None:
    user = {"exec": {"command": "aws", "env": [{"name": "AWS_SECRET_ACCESS_KEY", "value": "wJalrXUtnFEMI-secret"}]}}
    assert "wJalrXUtnFEMI-secret" in target_of(single(tmp_path, user=user, name="e")).credential.secrets()


def test_basic_and_none(tmp_path: Path) -> None:
    basic = {"username": "admin", "password": "hunter2-password"}
    c = target_of(single(tmp_path, user=basic, name="b")).credential
    assert (c.kind, c.token) == ("basic", None)
    assert "hunter2-password" in c.secrets()
    assert target_of(single(tmp_path, user={}, name="n")).credential.kind == "none"


# --- from_context: proxies ------------------------------------------------------------------------


def test_proxy_url_in_kubeconfig_wins(tmp_path: Path) -> None:
    path = single(tmp_path, {"server": "https://api.lab.test", "proxy-url": "socks5://127.0.0.1:1080"})
    env = {"HTTPS_PROXY": "http://127.0.0.1:3128", "NO_PROXY": "api.lab.test"}
    assert target_of(path, env).proxy_url == "socks5://127.0.0.1:1080"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"HTTPS_PROXY": "http://127.0.0.1:3128"}, "http://127.0.0.1:3128"),
        ({"https_proxy": "http://127.0.0.1:3128"}, "http://127.0.0.1:3128"),
        ({"HTTP_PROXY": "http://127.0.0.1:3128"}, None),  # an https server does not use HTTP_PROXY
        ({"HTTPS_PROXY": "http://127.0.0.1:3128", "NO_PROXY": "api.lab.test"}, None),
        ({"HTTPS_PROXY": "http://127.0.0.1:3128", "NO_PROXY": ".lab.test"}, None),
        ({"HTTPS_PROXY": "http://127.0.0.1:3128", "no_proxy": "lab.test"}, None),
        ({"HTTPS_PROXY": "http://127.0.0.1:3128", "NO_PROXY": "*"}, None),
        ({"HTTPS_PROXY": "http://127.0.0.1:3128", "NO_PROXY": "other.test"}, "http://127.0.0.1:3128"),
    ],
)
def test_environment_proxy_for_a_name(tmp_path: Path, env: dict[str, str], expected: str | None) -> None:
    assert target_of(single(tmp_path, {"server": "https://api.lab.test:6443"}), env).proxy_url == expected


@pytest.mark.parametrize(
    ("no_proxy", "expected"),
    [
        ("10.0.0.0/8", None),  # CIDR entries, as kubectl (Go) honours them
        ("localhost,10.0.0.0/8", None),
        ("10.1.2.3", None),
        ("192.168.0.0/16", "http://127.0.0.1:3128"),
    ],
)
def test_no_proxy_for_an_ip_server(tmp_path: Path, no_proxy: str, expected: str | None) -> None:
    env = {"HTTPS_PROXY": "http://127.0.0.1:3128", "NO_PROXY": no_proxy}
    assert target_of(single(tmp_path, {"server": "https://10.1.2.3:6443"}), env).proxy_url == expected


# --- shadowing, selection --------------------------------------------------------------------------


def test_target_lists_only_its_own_differing_shadowed_entries(tmp_path: Path) -> None:
    a = write(
        tmp_path / "a.yaml",
        kubeconfig(
            {"c": {"server": "https://203.0.113.1"}, "other": {"server": "https://203.0.113.2"}},
            {"u": {"token": TOKEN}},
            {"ctx": {"cluster": "c", "user": "u"}},
        ),
    )
    b = write(
        tmp_path / "b.yaml",
        kubeconfig(
            {"c": {"server": "https://198.51.100.1"}, "other": {"server": "https://198.51.100.2"}},
            {"u": {"token": TOKEN}},  # same body: not reported
        ),
    )
    t = from_context(merge([a, b]), "ctx", {})
    assert t.shadowed == [f"cluster 'c' in {b}"]
    assert t.server == "https://203.0.113.1"


def test_shadowed_entries_in_file_order_per_target(tmp_path: Path) -> None:
    """Three files: each target reads only its own shadowed entries (looked up by name), in the order met."""
    first = write(
        tmp_path / "1.yaml",
        kubeconfig(
            {"c1": {"server": "https://203.0.113.1"}, "c2": {"server": "https://203.0.113.2"}},
            {"u1": {"token": TOKEN}, "u2": {"token": TOKEN}},
            {"x1": {"cluster": "c1", "user": "u1"}, "x2": {"cluster": "c2", "user": "u2"}},
        ),
    )
    second = write(
        tmp_path / "2.yaml",
        kubeconfig({"c2": {"server": "https://198.51.100.2"}}, {"u1": {"token": "t2"}}, {"x1": {"cluster": "c2"}}),
    )
    third = write(tmp_path / "3.yaml", kubeconfig({"c1": {"server": "https://198.51.100.1"}}))
    merged = merge([first, second, third])
    assert from_context(merged, "x1", {}).shadowed == [
        f"user 'u1' in {second}",
        f"context 'x1' in {second}",
        f"cluster 'c1' in {third}",
    ]
    assert from_context(merged, "x2", {}).shadowed == [f"cluster 'c2' in {second}"]


def test_select_contexts(tmp_path: Path) -> None:
    path = write(
        tmp_path / "kc.yaml",
        kubeconfig(contexts={n: {"cluster": "c"} for n in ("prod-eu", "prod-us", "staging", "dev")}),
    )
    m = merge([path])
    assert select_contexts(m, []) == ["prod-eu", "prod-us", "staging", "dev"]
    assert select_contexts(m, ["prod-*"]) == ["prod-eu", "prod-us"]
    assert select_contexts(m, ["dev", "prod-?s", "prod-*"]) == ["dev", "prod-us", "prod-eu"]
    assert select_contexts(m, ["staging", "dev", "staging", "prod-[e]u"]) == ["staging", "dev", "prod-eu"]
    with pytest.raises(ConfigError) as info:
        select_contexts(m, ["prod-*", "qa"])
    assert "'qa'" in str(info.value) and "staging" in str(info.value)


# --- in-cluster -----------------------------------------------------------------------------------


def sa_dir(tmp_path: Path, ca: bool = True) -> Path:
    d = tmp_path / "serviceaccount"
    write(d / "token", TOKEN + "\n")
    if ca:
        write(d / "ca.crt", CA_PEM.decode())
    return d


def test_in_cluster_target(tmp_path: Path) -> None:
    d = sa_dir(tmp_path)
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    t = in_cluster_target(env, d)
    assert t.in_cluster and t.name == "in-cluster"
    assert (t.server, t.host, t.port) == ("https://10.96.0.1:443", "10.96.0.1", 443)
    assert (t.credential.kind, t.credential.token) == ("token-file", TOKEN)
    assert t.ca_pem == CA_PEM
    assert t.problems == []


def test_in_cluster_ipv6_name_and_proxy(tmp_path: Path) -> None:
    env = {
        "KUBERNETES_SERVICE_HOST": "fd00::1",
        "KUBERNETES_SERVICE_PORT": "6443",
        "PREFLIGHT_CLUSTER_NAME": "prod-eu",
        "HTTPS_PROXY": "http://127.0.0.1:3128",
    }
    t = in_cluster_target(env, sa_dir(tmp_path))
    assert (t.name, t.server, t.host) == ("prod-eu", "https://[fd00::1]:6443", "fd00::1")
    assert t.proxy_url == "http://127.0.0.1:3128"
    assert in_cluster_target({**env, "NO_PROXY": "fd00::1"}, sa_dir(tmp_path)).proxy_url is None


def test_in_cluster_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="KUBERNETES_SERVICE_HOST"):
        in_cluster_target({}, sa_dir(tmp_path))
    with pytest.raises(ConfigError, match="token"):
        in_cluster_target({"KUBERNETES_SERVICE_HOST": "10.96.0.1"}, tmp_path / "empty")
    t = in_cluster_target({"KUBERNETES_SERVICE_HOST": "10.96.0.1"}, sa_dir(tmp_path / "noca", ca=False))
    assert any("ca.crt" in p for p in t.problems)


# --- Credential -------------------------------------------------------------------------------------


KEY = FingerprintKey(b"k" * 32, "test")


def test_fingerprint_is_equal_for_equal_tokens_and_never_contains_them() -> None:
    a, b = Credential("token", token=TOKEN), Credential("token-file", token=TOKEN)
    other = Credential("token", token=TOKEN + "x")
    fa = a.fingerprint(KEY)
    assert fa is not None and fa == b.fingerprint(KEY)
    assert fa != other.fingerprint(KEY)
    for part in [TOKEN, *TOKEN.split(".")]:
        assert part not in fa
    assert Credential("none").fingerprint(KEY) is None


def test_fingerprint_is_keyed_never_a_plain_hash() -> None:
    cred = Credential("token", token=TOKEN)
    fp = cred.fingerprint(KEY)
    assert fp is not None and fp != cred.fingerprint(FingerprintKey(b"j" * 32))
    for plain in (TOKEN.encode(), b"token:" + TOKEN.encode()):
        for digest in (hashlib.sha256(plain).hexdigest(), hashlib.sha1(plain).hexdigest()):
            assert digest[:12] not in fp
    assert KEY.id == FingerprintKey(b"k" * 32).id != random_key().id  # the id names the key, not the run


def test_fingerprint_for_certs_and_exec() -> None:
    c1 = Credential("client-cert", client_cert_pem=CERT_PEM, client_key_pem=KEY_PEM)
    c2 = Credential("client-cert", client_cert_pem=CERT_PEM + b"\n", client_key_pem=b"other")
    assert c1.fingerprint(KEY) == c2.fingerprint(KEY)  # identified by the certificate
    e1 = Credential("exec", exec_spec={"command": "aws", "args": ["eks", "get-token"], "env": None})
    e2 = Credential("exec", exec_spec={"command": "aws", "args": ["eks", "get-token"]})
    e3 = Credential("exec", exec_spec={"command": "aws", "args": ["eks", "get-token", "--cluster-name", "x"]})
    assert e1.fingerprint(KEY) == e2.fingerprint(KEY) != e3.fingerprint(KEY)


def test_fingerprint_key_file(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_bytes(b"0123456789abcdef0123456789abcdef\n")
    assert load_key(str(path)).id == FingerprintKey(b"0123456789abcdef0123456789abcdef").id
    path.write_bytes(b"short\n")
    with pytest.raises(ConfigError, match="needs at least 16"):
        load_key(str(path))
    with pytest.raises(ConfigError, match="--fingerprint-key-file"):
        load_key(str(tmp_path / "missing"))


def test_folder_scan_still_reports_a_malformed_yaml_file(tmp_path: Path) -> None:
    single(tmp_path, name="good")
    broken = write(tmp_path / "broken.yaml", "kind: Config\nclusters: [\n  - name: c\n  oops: }\n")
    with pytest.raises(ConfigError) as info:
        merge(discover_paths([], {"KUBECONFIG_FOLDER": str(tmp_path)}))
    assert str(info.value).startswith(f"{broken}:")


def test_every_derived_form_of_a_proxy_password_is_a_secret(tmp_path: Path) -> None:
    """The Basic value the tool builds and the encoded and decoded password all get registered,
    for the proxy that is used and for an environment proxy this cluster bypasses alike."""
    import base64

    cluster = {"server": "https://api.lab.test", "proxy-url": "http://u%40corp:p%2Fss-w0rd-1@127.0.0.1:3128"}
    env = {"https_proxy": "http://env-user:env-pass-0042@127.0.0.1:3128", "NO_PROXY": "api.lab.test"}
    secrets = set(target_of(single(tmp_path, cluster), env).credential.secrets())
    basic = base64.b64encode(b"u@corp:p/ss-w0rd-1").decode()
    assert {"p%2Fss-w0rd-1", "p/ss-w0rd-1", basic, f"Basic {basic}"} <= secrets
    assert not any(s.startswith("u@corp:") for s in secrets)  # the user name stays readable
    env_basic = base64.b64encode(b"env-user:env-pass-0042").decode()
    assert {"env-pass-0042", f"Basic {env_basic}"} <= secrets


# --- duplicate names within one file: Go's client rejects the file ----------------------------------


def test_duplicate_name_in_one_file_fails_that_files_contexts(tmp_path: Path) -> None:
    """client-go refuses a file that names a cluster, user or context twice; another file still loads, and a
    name the rejected file shares with it resolves there, as client-go would resolve it."""
    broken = write(
        tmp_path / "broken.yaml",
        "apiVersion: v1\nkind: Config\nclusters:\n"
        "- name: c\n  cluster: {server: 'https://203.0.113.1:6443'}\n"
        "- name: c\n  cluster: {server: 'https://203.0.113.2:6443'}\n"
        "users:\n- name: u\n  user: {token: abcdefgh12345678}\n"
        "contexts:\n- name: only-here\n  context: {cluster: c, user: u}\n"
        "- name: shared\n  context: {cluster: c, user: u}\n",
    )
    good = write(
        tmp_path / "good.yaml",
        kubeconfig(
            {"c": {"server": "https://198.51.100.1:6443"}},
            {"u": {"token": TOKEN}},
            {"shared": {"cluster": "c", "user": "u"}, "fine": {"cluster": "c", "user": "u"}},
        ),
    )
    merged = merge([broken, good])
    assert merged.shadowed == []  # a rejected file's entries shadow nothing
    only = from_context(merged, "only-here", {})
    assert only.problems == [
        f"{broken}:6: cluster name 'c' appears twice in this file: Go's client (kubectl, Meshery Server) "
        "rejects the whole file"
    ]
    assert only.rejected_file == str(broken)
    for name in ("shared", "fine"):
        t = from_context(merged, name, {})
        assert (t.problems, t.server, t.source) == ([], "https://198.51.100.1:6443", good)


@pytest.mark.parametrize("section", ["users", "contexts"])
def test_duplicate_user_or_context_name_rejects_the_file(tmp_path: Path, section: str) -> None:
    doc = kubeconfig({"c": {"server": "https://203.0.113.1:6443"}}, {"u": {"token": TOKEN}}, {"x": {"cluster": "c"}})
    doc[section].append(dict(doc[section][0]))
    path = write(tmp_path / "dup.yaml", doc)
    t = from_context(merge([path]), "x", {})
    assert len(t.problems) == 1 and f"{section[:-1]} name " in t.problems[0] and str(path) in t.problems[0]


@pytest.mark.parametrize(
    ("server", "proxied"),
    [
        ("https://localhost:6443", False),
        ("https://LOCALHOST:6443", True),  # Go compares the host as written with "localhost"
        ("https://user:pw-Value-1@LocalHost:6443", True),
        ("https://127.0.0.1:6443", False),
        ("https://[::1]:6443", False),
        ("https://Api.Lab.Test:6443", True),
    ],
)
def test_environment_proxy_sees_the_host_as_written(tmp_path: Path, server: str, proxied: bool) -> None:
    t = target_of(single(tmp_path, {"server": server}), {"HTTPS_PROXY": "http://127.0.0.1:3128"})
    assert (t.proxy_url is not None) is proxied
