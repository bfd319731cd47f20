"""Kubernetes label and field selectors, as the lab API server applies them to list calls."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["field_selector_matches", "label_selector_matches"]


_SET_TERM = re.compile(r"^\s*(!?)([\w./-]+)\s*(?:(==|=|!=)\s*([\w./-]*)|\s+(in|notin)\s*\(([^)]*)\))?\s*$")


def _split_terms(selector: str) -> list[str]:
    terms, depth, cur = [], 0, ""
    for ch in selector:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            terms.append(cur)
            cur = ""
        else:
            cur += ch
    terms.append(cur)
    return [t for t in terms if t.strip()]


def label_selector_matches(selector: str, labels: Mapping[str, str]) -> bool:
    """Kubernetes label selector semantics (=, ==, !=, in, notin, exists, !exists)."""
    for term in _split_terms(selector):
        m = _SET_TERM.match(term)
        if m is None:
            raise ValueError(f"unable to parse requirement: {term!r}")
        negate, key, op, value, set_op, set_values = m.groups()
        present = key in labels
        if op is None and set_op is None:
            if present == bool(negate):
                return False
        elif op in ("=", "=="):
            if labels.get(key) != value:
                return False
        elif op == "!=":
            if labels.get(key) == value:
                return False
        else:
            values = {v.strip() for v in set_values.split(",")}
            inside = present and labels[key] in values
            if inside != (set_op == "in"):
                return False
    return True


def field_selector_matches(selector: str, obj: Mapping[str, Any]) -> bool:
    """Equality field selectors on dotted paths (``metadata.name=x``, ``spec.nodeName!=y``)."""
    for term in _split_terms(selector):
        m = re.match(r"^\s*([\w.]+)\s*(==|=|!=)\s*(.*?)\s*$", term)
        if m is None:
            raise ValueError(f"invalid field selector: {term!r}")
        path, op, want = m.groups()
        cur: Any = obj
        for part in path.split("."):
            cur = cur.get(part) if isinstance(cur, Mapping) else None
        have = "" if cur is None else str(cur).lower() if isinstance(cur, bool) else str(cur)
        if (have == want) != (op != "!="):
            return False
    return True
