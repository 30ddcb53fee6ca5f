"""Malformed ``pipeline.yaml`` variants, generated with hypothesis, for the drills and a unit test.

Each variant takes the shipped spec and breaks it one way: a key deleted or renamed, a value
replaced by a value of any type, or the text cut short or spliced with junk. Loading it must
either work (the variant happens to be valid) or raise :class:`cicd.errors.ConfigError` naming
the file; any other exception is a traceback a user would see, and is reported.
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cicd.config import load_config
from cicd.errors import ConfigError

ANY_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path in the parsed spec (mappings and lists), parents before children."""
    out: list[tuple[Any, ...]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            out.append((*prefix, key))
            out += paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out.append((*prefix, i))
            out += paths(value, (*prefix, i))
    return out


def mutate(spec: dict[str, Any], path: tuple[Any, ...], how: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(spec)
    parent: Any = out
    for key in path[:-1]:
        parent = parent[key]
    last = path[-1]
    if how == "delete":
        del parent[last]
    elif how == "rename" and isinstance(parent, dict):
        parent[f"{last}x"] = parent.pop(last)
    else:
        parent[last] = value
    return out


def variants(spec_text: str) -> st.SearchStrategy[str]:
    spec = yaml.safe_load(spec_text)
    keys = paths(spec)
    structural = st.builds(
        lambda path, how, value: yaml.safe_dump(mutate(spec, path, how, value), sort_keys=False),
        st.sampled_from(keys),
        st.sampled_from(["delete", "rename", "replace", "replace"]),
        ANY_VALUE,
    )
    cut = st.integers(0, len(spec_text)).map(lambda n: spec_text[:n])
    spliced = st.tuples(st.integers(0, len(spec_text)), st.text(max_size=12)).map(
        lambda t: spec_text[: t[0]] + t[1] + spec_text[t[0] :]
    )
    return st.one_of(structural, structural, cut, spliced)


def classify(text: str, folder: Path) -> str:
    """``"ok"``, ``"error"`` (a ConfigError naming the file) or the traceback's one-line summary."""
    path = folder / "pipeline.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        load_config(path, env={})
    except ConfigError as err:
        return "error" if str(path) in str(err) else f"ConfigError without the file name: {err}"
    except Exception as err:  # the point: anything else is a traceback the user would see
        return f"{type(err).__name__}: {err}"
    return "ok"


def check_variants(spec: Path, examples: int) -> tuple[list[str], int, int]:
    """Generate ``examples`` variants; return (tracebacks, clear errors, still-valid variants)."""
    outcomes: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:

        @settings(
            max_examples=examples,
            database=None,
            derandomize=True,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(variants(spec.read_text()))
        def run(text: str) -> None:
            outcomes.append(classify(text, Path(tmp)))

        run()
    bad = [o for o in outcomes if o not in ("ok", "error")]
    return bad, outcomes.count("error"), outcomes.count("ok")
