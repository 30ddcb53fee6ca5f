"""No traceback for a user's mistake, from any entry point of the sample package (the rule and
the machinery: ``tests/integration/entry_points.py``); and the README's monitoring commands."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.conftest import ROOT
from tests.integration.entry_points import BAD_ARG, Case, case, case_id, check_mistake, check_table, entry_points, run

CASES = [
    case("sample_ml.run", "bad argument", "train", "--no-such-flag", says=BAD_ARG),
    case("sample_ml.run", "missing file", "train", "--config", "/nonexistent.yaml", says=r"/nonexistent.yaml"),
    case("sample_ml.run", "missing file", "train", "--source", "/nonexistent.csv", says=r"does not exist"),
    case("sample_ml.run", "missing component", "serve", "--model-dir", "{tmp}/none", says=r"bundle|model"),
    case(
        "sample_ml.run",
        "missing component",
        "predict",
        "--loader=sql",
        "--source=sqlite:////nonexistent/db.sqlite",
        "--output={tmp}/p.csv",
        "--model-dir={tmp}/none",
        says=r"bundle|database|cannot",
    ),
    case("sample_ml.monitoring.simulate", "bad argument", "--output", "x.csv", "--rows", "many", says=r"invalid int"),
    case("sample_ml.monitoring.simulate", "missing file", "--output", "{tmp}/x.csv", says=r"no data at.*--data"),
    case("sample_ml.monitoring.quality", "bad argument", "--no-such-flag", says=BAD_ARG),
    case("sample_ml.monitoring.quality", "missing file", "--trials", "1", says=r"no data at.*--data"),
]


def test_the_table_covers_every_entry_point() -> None:
    check_table(CASES, entry_points(("sample_ml", ROOT / "src"), scripts_of=ROOT / "src/pyproject.toml"))


@pytest.mark.parametrize("c", CASES, ids=[case_id(c) for c in CASES])
def test_a_mistake_gets_one_line_and_its_exit_code(c: Case, tmp_path: Path) -> None:
    check_mistake(c, tmp_path)


def test_the_readme_monitoring_commands_work_from_the_repository_root(tmp_path: Path) -> None:
    """README, Retraining: the default data is found from the repository root, wherever the package is."""
    home = tmp_path / "home"
    home.mkdir()
    out = tmp_path / "new.csv"
    proc = run("sample_ml.monitoring.simulate", "--output", str(out), cwd=ROOT, home=home)
    assert proc.returncode == 0, proc.stderr
    assert len(out.read_text().splitlines()) == 301
    proc = run("sample_ml.monitoring.quality", "--trials", "2", "--rows", "30", cwd=ROOT, home=home)
    assert proc.returncode == 0 and "false alarms" in proc.stdout, proc.stderr
    proc = run("sample_ml.monitoring.simulate", "--help", cwd=ROOT, home=home)
    assert "With\n``--shift 0 --effect 0`` the batch is like the training data." in proc.stdout  # not cut short
