"""The doctor's decisions that need no git or engine: the registry's answer, the report."""

from __future__ import annotations

import dataclasses
import ssl
import urllib.error
from email.message import Message
from pathlib import Path

import pytest

from cicd.config import load_config
from cicd.doctor import Check, _answers, _registry_check, report

ROOT = Path(__file__).resolve().parents[3]


def _refuses(url: str) -> object:
    raise urllib.error.HTTPError(url, 401, "Unauthorized", Message(), None)


def _tls_then_http(url: str) -> object:
    if url.startswith("https://"):
        raise ssl.SSLError("wrong version number")  # a plain-HTTP registry asked over TLS
    return 200


def _down(url: str) -> object:
    raise ConnectionRefusedError(111, "Connection refused")


@pytest.mark.parametrize(
    ("opener", "scheme"), [(_refuses, "https"), (_tls_then_http, "http"), (_down, None), (lambda url: 200, "https")]
)
def test_a_registry_answers_with_any_http_status_on_either_scheme(opener: object, scheme: str | None) -> None:
    assert _answers("registry.example:5000", opener) == scheme  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("env", "opener", "ok", "says"),
    [
        ({}, _down, True, "none: releases stay on this engine"),
        ({"TRAINYARD_REGISTRY": "127.0.0.1:9"}, _down, False, "127.0.0.1:9 does not answer"),
        ({"TRAINYARD_REGISTRY": "r.example"}, _refuses, True, "r.example answers"),
        (
            {"TRAINYARD_REGISTRY": "r.example", "TRAINYARD_REGISTRY_USERNAME": "ci"},
            _refuses,
            False,
            "TRAINYARD_REGISTRY_USERNAME is set but TRAINYARD_REGISTRY_PASSWORD is not",
        ),
        (
            {
                "TRAINYARD_REGISTRY": "r.example",
                "TRAINYARD_REGISTRY_USERNAME": "ci",
                "TRAINYARD_REGISTRY_PASSWORD": "pw-canary",
            },
            _refuses,
            True,
            "r.example answers, with credentials",
        ),
    ],
)
def test_the_registry_check(env: dict[str, str], opener: object, ok: bool, says: str) -> None:
    # the spec as this repository ships it; a project's own may name a registry and hosts
    spec = dataclasses.replace(load_config(ROOT / "cicd/pipeline.yaml", env=env), environments={})
    if "TRAINYARD_REGISTRY" not in env:
        spec = dataclasses.replace(spec, registry=None)
    check = _registry_check(spec, env, opener)  # type: ignore[arg-type]
    assert check.ok is ok and says in check.seen, check
    assert (check.fix is None) is ok
    assert "pw-canary" not in check.seen + (check.fix or "")  # never the password


def test_the_report_gives_each_to_do_its_command_and_counts_only_to_dos() -> None:
    text = report(
        [
            Check("git repository", True, "/p, at abc"),
            Check("origin", False, "no remote named origin", "git remote add origin URL"),
            Check("CI secrets", None, "not visible from here"),
        ]
    )
    lines = text.splitlines()
    assert lines[0].startswith("ok    git repository") and lines[1].startswith("todo  origin")
    assert lines[2].strip() == "→ git remote add origin URL"
    assert lines[3].startswith("note  CI secrets") and lines[-1] == "1 to do"
    assert report([Check("origin", True, "x")]).splitlines()[-1] == "nothing left to do"
