"""Malformed pipeline.yaml variants (hypothesis): a clear ConfigError naming the file, never a traceback."""

from __future__ import annotations

from pathlib import Path

from benchmarks.specs import check_variants, classify

ROOT = Path(__file__).resolve().parents[3]


def test_generated_malformed_specs_give_clear_errors_only() -> None:
    tracebacks, errors, valid = check_variants(ROOT / "cicd/pipeline.yaml", 200)
    assert tracebacks == []
    assert errors > 100 and errors + valid == 200  # most variants are broken, and all were checked


def test_classify_reports_an_unexpected_exception(tmp_path: Path, monkeypatch) -> None:
    import benchmarks.specs as specs

    def boom(path: Path, env: dict[str, str]) -> None:
        raise KeyError("x")

    monkeypatch.setattr(specs, "load_config", boom)
    assert classify("project: x\n", tmp_path) == "KeyError: 'x'"
