"""The environment proxy is chosen by Go's rules (golang.org/x/net/http/httpproxy), which Meshery Server's
client-go follows: a table of cases written from those rules, each saying whether Go proxies the request."""

from __future__ import annotations

import pytest

from preflight.engine import proxyenv

PROXY = "http://127.0.0.1:3128"

# (NO_PROXY, host, port, whether Go sends the request through HTTPS_PROXY)
NO_PROXY_CASES = [
    # Never proxied, whatever NO_PROXY says: the name localhost, exactly, and loopback addresses.
    ("", "api.example.test", 443, True),
    ("", "localhost", 6443, False),
    ("", "127.0.0.1", 6443, False),
    ("", "127.200.3.4", 443, False),
    ("", "::1", 443, False),
    ("", "::ffff:127.0.0.1", 443, False),
    ("", "LOCALHOST", 443, True),  # compared before lower-casing: only the exact name
    ("", "localhost.", 443, True),
    ("", "localhost.example.test", 443, True),
    ("", "10.0.0.1", 443, True),
    # `*` turns the proxy off, wherever it stands in the list.
    ("*", "api.example.test", 443, False),
    ("*", "10.0.0.1", 443, False),
    ("foo.test,*", "api.example.test", 443, False),
    # CIDRs match IP hosts only, and need not name their network address.
    ("10.0.0.0/8", "10.1.2.3", 443, False),
    ("10.0.0.0/8", "11.1.2.3", 443, True),
    ("10.0.0.0/8", "ten.example.test", 443, True),
    ("10.1.2.3/8", "10.200.0.1", 443, False),
    ("fd00::/8", "fd00::5", 443, False),
    ("fd00::/8", "fe80::1", 443, True),
    ("10.0.0.0/255.0.0.0", "10.1.1.1", 443, True),  # a netmask is not a CIDR to Go
    # An IP matches that IP, on any port unless the entry gives one.
    ("10.1.2.3", "10.1.2.3", 443, False),
    ("10.1.2.3", "10.1.2.4", 443, True),
    ("10.1.2.3:6443", "10.1.2.3", 6443, False),
    ("10.1.2.3:6443", "10.1.2.3", 443, True),
    ("fd00::1", "fd00::1", 443, False),
    ("[fd00::1]:6443", "fd00::1", 6443, False),
    ("[fd00::1]:6443", "fd00::1", 443, True),
    ("fe80::1%eth0", "fe80::1", 443, True),  # a zone makes it no address
    # A domain matches itself and its subdomains; a leading dot (or *.) only its subdomains.
    ("foo.test", "foo.test", 443, False),
    ("foo.test", "api.foo.test", 443, False),
    ("foo.test", "barfoo.test", 443, True),
    (".foo.test", "foo.test", 443, True),
    (".foo.test", "api.foo.test", 443, False),
    ("*.foo.test", "foo.test", 443, True),
    ("*.foo.test", "a.b.foo.test", 443, False),
    # A port in a domain entry limits it to that port.
    ("foo.test:6443", "foo.test", 6443, False),
    ("foo.test:6443", "foo.test", 443, True),
    ("foo.test:6443", "api.foo.test", 6443, False),
    # Case-insensitive on both sides; blanks and empty entries ignored; an entry with no host ignored.
    (" FOO.test , bar.test", "Api.Foo.TEST", 443, False),
    ("bar.test,, ,foo.test", "foo.test", 443, False),
    (":6443", "foo.test", 6443, True),
    # A domain entry is compared as text with an IP host too.
    ("0.0.1", "10.0.0.1", 443, False),
]


@pytest.mark.parametrize(("no_proxy", "host", "port", "proxied"), NO_PROXY_CASES)
def test_no_proxy_follows_go(no_proxy: str, host: str, port: int, proxied: bool) -> None:
    url, _ = proxyenv.from_environment({"HTTPS_PROXY": PROXY, "NO_PROXY": no_proxy}).proxy_for("https", host, port)
    assert (url is not None) is proxied


# (environment, scheme, the proxy Go uses, the variable it came from or the NO_PROXY variable that bypassed it)
ENV_CASES = [
    ({"HTTPS_PROXY": "http://a.test:1", "https_proxy": "http://b.test:2"}, "https", "http://a.test:1", "HTTPS_PROXY"),
    ({"HTTPS_PROXY": "", "https_proxy": "http://b.test:2"}, "https", "http://b.test:2", "https_proxy"),
    ({"https_proxy": "b.test:3128"}, "https", "http://b.test:3128", "https_proxy"),
    ({"Https_Proxy": "http://b.test:2"}, "https", None, None),  # only the upper- and lower-case names
    ({"HTTP_PROXY": "http://a.test:1"}, "https", None, None),  # an https URL never uses HTTP_PROXY
    ({"HTTP_PROXY": "http://a.test:1", "HTTPS_PROXY": "http://b.test:2"}, "http", "http://a.test:1", "HTTP_PROXY"),
    ({"HTTPS_PROXY": PROXY, "NO_PROXY": "", "no_proxy": "api.test"}, "https", None, "no_proxy"),
    ({"HTTPS_PROXY": PROXY, "NO_PROXY": "other.test", "no_proxy": "api.test"}, "https", PROXY, "HTTPS_PROXY"),
    ({"HTTPS_PROXY": PROXY, "NO_PROXY": "api.test"}, "https", None, "NO_PROXY"),
    ({"HTTPS_PROXY": PROXY, "REQUEST_METHOD": "GET"}, "https", PROXY, "HTTPS_PROXY"),  # CGI spares HTTPS_PROXY
    ({"HTTPS_PROXY": "socks5://127.0.0.1:1080"}, "https", "socks5://127.0.0.1:1080", "HTTPS_PROXY"),
]


@pytest.mark.parametrize(("env", "scheme", "url", "source"), ENV_CASES)
def test_environment_is_read_as_go_reads_it(env: dict[str, str], scheme: str, url: str | None, source: str) -> None:
    assert proxyenv.from_environment(env).proxy_for(scheme, "api.test", None) == (url, source)


def test_loopback_bypass_names_no_variable() -> None:
    """Go's own rule, not NO_PROXY: nothing for the user to take out of a variable."""
    cfg = proxyenv.from_environment({"HTTPS_PROXY": PROXY, "NO_PROXY": "127.0.0.1"})
    assert cfg.proxy_for("https", "127.0.0.1", 6443) == (None, None)
    assert cfg.bypass("127.0.0.1", 6443) == proxyenv.LOOPBACK


def test_http_proxy_in_a_cgi_environment_is_refused() -> None:
    cfg = proxyenv.from_environment({"HTTP_PROXY": PROXY, "REQUEST_METHOD": "POST"})
    with pytest.raises(proxyenv.CgiRefusal, match="REQUEST_METHOD .* HTTP_PROXY"):
        cfg.proxy_for("http", "api.test", 80)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("foo.test:80", ("foo.test", "80")),
        ("[fd00::1]:80", ("fd00::1", "80")),
        ("foo.test:", ("foo.test", "")),
        ("foo.test", None),
        ("fd00::1", None),
        ("[fd00::1]", None),
        ("[fd00::1]x:80", None),
        ("a]:80", None),
    ],
)
def test_split_host_port_as_go(text: str, expected: tuple[str, str] | None) -> None:
    assert proxyenv.split_host_port(text) == expected
