"""The bounded loader reads what yaml.safe_load reads, through libyaml, and keeps its bounds there."""

from __future__ import annotations

import pytest
import yaml

from preflight.engine import yamlfile

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: a
  cluster: {server: "https://127.0.0.1:6443", certificate-authority-data: QUJD, insecure-skip-tls-verify: false}
users:
- name: u
  user:
    token: &t abc
    exec: {command: plugin, args: ['--x', "y z"], env: null, interactiveMode: Never}
contexts:
- {name: ctx, context: {cluster: a, user: u, namespace: ns}}
- name: "ctx: 2"
  context: {cluster: a, user: u, extensions: [{name: e, extension: *t}]}
current-context: ctx
preferences: {}
numbers: [1, 0x1F, 1.5, .inf, 2020-01-01, yes, ~]
"""


def test_libyaml_does_the_parsing() -> None:
    assert yaml.__with_libyaml__, "PyYAML without libyaml: planning a large fleet is ten times slower"
    assert yaml._yaml.CParser in yamlfile._BoundedLoader.__mro__


def test_same_values_as_safe_load() -> None:
    assert yamlfile.load(KUBECONFIG) == yaml.safe_load(KUBECONFIG)


def test_compose_keeps_lines() -> None:
    node = yamlfile.compose(KUBECONFIG)
    assert isinstance(node, yaml.MappingNode)
    lines = {key.value: key.start_mark.line + 1 for key, _ in node.value}
    assert lines["contexts"] == 11 and lines["current-context"] == 15


DEEP = ["[" * 100_000, "{a: " * 100_000, "a:\n" + "- " * 3000 + "x", "".join(" " * i + "x:\n" for i in range(3000))]


@pytest.mark.parametrize("text", DEEP)
def test_deep_documents_end_in_the_bound(text: str) -> None:
    """Whichever parser sees the depth first (libyaml's look-ahead stops at its own limit), one message."""
    for read in (yamlfile.load, yamlfile.compose):
        with pytest.raises(yaml.YAMLError) as caught:
            read(text)
        assert yamlfile.describe(caught.value, text)[1] == f"nested deeper than {yamlfile.MAX_DEPTH} levels"


def test_special_character_is_located_by_character_not_byte() -> None:
    text = "é: ü\nok: ä\nbad: \x07\n"
    with pytest.raises(yaml.YAMLError) as caught:
        yamlfile.load(text)
    assert yamlfile.describe(caught.value, text) == (3, "unacceptable character #x0007")
