"""The redactor: secrets, PEM blocks and bearer tokens never survive into a Result."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from preflight.engine.redact import REDACTED, Redactor, scrub_credentials, url_password

TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2EifQ.c2lnbmF0dXJl"
KEY_PEM = (
    "-----BEGIN EC PRIVATE KEY-----\n"
    "MHcCAQEEIBkq2Yk7RnYbZfakeKEYmaterialLINEONEoAoGCCqGSM49\n"
    "AwEHoUQDQgAEfakeKEYmaterialLINETWOxkq2Yk7RnYbZ0123456789\n"
    "-----END EC PRIVATE KEY-----\n"
)


def test_known_token_is_removed_from_text() -> None:
    r = Redactor([TOKEN])
    out = r.text(f"401 from server: token {TOKEN} was rejected")
    assert TOKEN not in out
    assert out == f"401 from server: token {REDACTED} was rejected"


def test_known_token_is_removed_from_nested_evidence() -> None:
    r = Redactor([TOKEN])
    evidence = {
        "request": {"headers": [("X-Token", TOKEN)], "note": f"sent {TOKEN}"},
        "attempts": 3,
        "ok": False,
        "missing": None,
        "tags": {"a", f"t={TOKEN}"},
        "raw": TOKEN.encode(),
    }
    out = r.value(evidence)
    assert TOKEN not in repr(out)
    assert out["request"]["headers"] == [["X-Token", REDACTED]]
    assert out["request"]["note"] == f"sent {REDACTED}"
    assert (out["attempts"], out["ok"], out["missing"]) == (3, False, None)
    assert sorted(out["tags"]) == ["a", f"t={REDACTED}"]
    assert out["raw"] == f"<{len(TOKEN)} bytes>"


def test_token_used_as_a_mapping_key_is_redacted() -> None:
    r = Redactor([TOKEN])
    out = r.value({"seen": {TOKEN: "valid"}})
    assert TOKEN not in repr(out)
    assert out == {"seen": {REDACTED: "valid"}}


def test_multiline_pem_block_is_removed_even_when_unknown() -> None:
    r = Redactor()
    text = f"client key follows:\n{KEY_PEM}and then the rest"
    out = r.text(text)
    assert "PRIVATE KEY" not in out and "LINEONE" not in out and "LINETWO" not in out
    assert out == f"client key follows:\n{REDACTED}\nand then the rest"


def test_truncated_pem_block_is_removed_to_the_end() -> None:
    out = Redactor().text("oops: " + KEY_PEM[:80])
    assert out == f"oops: {REDACTED}"


def test_lines_of_a_known_pem_secret_are_redacted_on_their_own() -> None:
    r = Redactor([KEY_PEM])
    line = KEY_PEM.splitlines()[1]
    out = r.value({"error": f"asn1: bad data near {line}"})
    assert line not in out["error"] and REDACTED in out["error"]


def test_bearer_tokens_are_removed_from_headers() -> None:
    r = Redactor()
    for header in (
        f"Authorization: Bearer {TOKEN}",
        f"authorization: bearer {TOKEN}",
        f"AUTHORIZATION:  BEARER\t{TOKEN}",
    ):
        out = r.text(header)
        assert TOKEN not in out
        assert out.endswith(REDACTED)
        assert out.lower().startswith("authorization:")
    assert r.value({"curl": [f"-H 'Authorization: Bearer {TOKEN}'"]}) == {
        "curl": [f"-H 'Authorization: Bearer {REDACTED}'"]
    }


def test_short_strings_are_not_redacted() -> None:
    r = Redactor(["abc", "admin", "1234567", "   ", ""])
    text = "user admin, id abc, pin 1234567, Bearer short"
    assert r.text(text) == text  # too short to be a credential: redacting would mangle innocent text


def test_secrets_are_stripped_and_the_longest_wins() -> None:
    r = Redactor([f"  {TOKEN}\n", TOKEN[:20]])
    assert r.text(TOKEN) == REDACTED
    assert r.text(f"prefix {TOKEN[:20]} suffix") == f"prefix {REDACTED} suffix"


def test_innocent_text_is_unchanged() -> None:
    r = Redactor([TOKEN, KEY_PEM])
    text = "connected to 203.0.113.10:6443 in 12 ms (TLS 1.3)"
    assert r.text(text) == text
    assert r.value({"a": [1, 2.5, text]}) == {"a": [1, 2.5, text]}


@pytest.mark.parametrize(
    ("text", "kept", "gone"),
    [
        ("https://alice:hunter2hunter2@api.example:6443/x", "https://alice:<redacted>@api.example:6443/x", "hunter2"),
        ("socks5://bob:pw@proxy:1080", "socks5://bob:<redacted>@proxy:1080", ":pw@"),
        ("see https://api.example:6443/path@v1", "https://api.example:6443/path@v1", None),
    ],
)
def test_url_passwords_are_redacted_user_names_kept(text: str, kept: str, gone: str | None) -> None:
    out = Redactor().text(text)
    assert kept in out
    if gone:
        assert gone not in out


def test_url_password_extracts_the_secret() -> None:
    assert url_password("https://u:p4ss@h:1") == "p4ss"
    assert url_password("https://u@h:1") is None and url_password("https://h:6443") is None


def test_scrub_credentials_removes_credential_shapes() -> None:
    line = (
        "token=tok-value-1 password: 'pw-value-2' eyJhbGciOi.eyJzdWIiOi.c2ln Bearer abcdefgh12345 "
        "AKIAABCDEFGHIJKLMNOP wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY known-secret-3 http://u:pw-4@h"
    )
    out = scrub_credentials(line, ["known-secret-3"])
    for gone in ("tok-value-1", "pw-value-2", "eyJ", "abcdefgh12345", "AKIA", "wJalr", "known-secret-3", "pw-4"):
        assert gone not in out, gone
    assert out.startswith("token=<redacted> password: '<redacted>'")


def _fleet_secrets(n: int) -> list[str]:
    return [f"tok{i:05d}-{'k' * (i % 7)}{i * 7919:x}secretvalue" for i in range(n)]


def test_a_fleet_of_secrets_is_matched_in_one_pass_and_each_is_removed() -> None:
    secrets = _fleet_secrets(500)  # past the rebuild size: most are in the automaton, the last few are recent
    r = Redactor(secrets[:300])
    r.add(secrets[300:])
    for s in secrets:
        out = r.text(f"401: {s} rejected; Bearer-less echo {s}")
        assert s not in out and out == f"401: {REDACTED} rejected; Bearer-less echo {REDACTED}"
    assert r.text("nothing secret here, 10.0.0.1:6443") == "nothing secret here, 10.0.0.1:6443"


def test_overlapping_secrets_leave_no_fragment() -> None:
    secrets = _fleet_secrets(100)
    a, b = "0123456789abcdefXYZ", "cdefXYZ-and-more-tail"
    r = Redactor([*secrets, a, b])
    out = r.text(f"x {a[:12]}{b} y")
    assert out == f"x {REDACTED} y"
    assert r.text(f"[{a}{secrets[5]}]") == f"[{REDACTED}]"


@settings(max_examples=200, deadline=None)
@given(
    secrets=st.lists(st.text(alphabet="abcdefghijKLMNOP0123456789-_", min_size=8, max_size=30), max_size=80),
    filler=st.lists(st.text(alphabet="xyz .:/", max_size=10), min_size=1, max_size=10),
    split=st.integers(min_value=0, max_value=80),
)
def test_no_registered_secret_survives(secrets: list[str], filler: list[str], split: int) -> None:
    r = Redactor(secrets[:split])
    r.add(secrets[split:])
    text = "".join(f + s for f, s in zip(filler * (len(secrets) // len(filler) + 1), secrets, strict=False)) + filler[0]
    out = r.text(text)
    for s in secrets:
        assert s not in out


def test_an_echoed_authorization_header_is_removed_whatever_its_scheme() -> None:
    """A peer that quotes the request back: the header's value goes even when nobody registered it."""
    out = Redactor().text("got: Proxy-Authorization: Basic bWVzaGVyeTpzM2NyZXQ=\nAuthorization: Negotiate YIIGhg")
    assert "bWVzaGVyeTpzM2NyZXQ" not in out and "YIIGhg" not in out
    assert out == f"got: Proxy-Authorization: Basic {REDACTED}\nAuthorization: Negotiate {REDACTED}"
    assert Redactor().text("basic authentication was removed") == "basic authentication was removed"
    assert Redactor().text("authorization: denied by policy") == "authorization: denied by policy"


def test_a_peer_page_is_summarised_never_quoted() -> None:
    """A load balancer's or proxy's page: its title or first line, bounded; never the echoed request below."""
    from preflight.engine.kube import body_summary

    page = "<html><head><title>502 Bad Gateway</title></head><body>Your request:\nCookie: s=abcdef</body></html>"
    assert body_summary(page) == "502 Bad Gateway"
    assert body_summary("<html><body>Authorization: Basic dXNlcjpw</body></html>") == "an HTML page (55 characters)"
    assert body_summary("\nforbidden by policy\nX-Echo: secret-header-value") == "forbidden by policy"
    assert len(body_summary("x" * 500)) == 120


def test_secrets_added_one_by_one_mid_run_are_all_scrubbed_and_levels_stay_few() -> None:
    """A fleet's Broker tokens arrive one cluster at a time: each is scrubbed from then on, including the older
    ones once their level merged, and the levels stay logarithmic (each addition does not rebuild everything)."""
    red = Redactor([f"credential-of-cluster-{i:05d}-xyz" for i in range(3000)])
    tokens = [f"broker-token-{i:05d}-abcdefgh" for i in range(700)]
    for token in tokens:
        red.add([token])
    assert red.levels <= math.ceil(math.log2(3700 / 16)) + 1
    for text in [f"token {t} leaked" for t in tokens] + ["credential-of-cluster-02999-xyz"]:
        assert "broker-token" not in red.text(text) and "credential-of" not in red.text(text)
    assert red.text("nothing secret here") == "nothing secret here"
