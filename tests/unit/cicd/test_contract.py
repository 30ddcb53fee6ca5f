"""The bring-your-own-model contract check (cicd.contract): one clear line per gap."""

from __future__ import annotations

from pathlib import Path

from cicd.config import load_config
from cicd.contract import check

ROOT = Path(__file__).resolve().parents[3]

HALF_A_CLI = """
import argparse

parser = argparse.ArgumentParser(prog="mini")
sub = parser.add_subparsers(dest="command", required=True)
train = sub.add_parser("train")
train.add_argument("--config")
train.add_argument("--output")
serve = sub.add_parser("serve")
serve.add_argument("--model-dir")
parser.parse_args()
"""


def test_this_repository_meets_the_contract() -> None:
    spec = load_config(ROOT / "cicd" / "pipeline.yaml", env={})
    assert check(ROOT, spec.package, spec.import_name, spec.retrain.settings) == ([], [])


def test_an_incomplete_package_gets_one_clear_line_per_gap(tmp_path: Path) -> None:
    (tmp_path / "src" / "mini").mkdir(parents=True)
    (tmp_path / "src" / "mini" / "__init__.py").write_text("")
    (tmp_path / "src" / "mini" / "run.py").write_text(HALF_A_CLI)
    (tmp_path / "src" / "pyproject.toml").write_text('[project]\nname = "mini"\ndynamic = ["version"]\n')
    (tmp_path / "src" / "requirements").mkdir()
    (tmp_path / "src" / "requirements" / "default.txt").write_text("")
    (tmp_path / "tests" / "acceptance").mkdir(parents=True)
    (tmp_path / "tests" / "conftest.py").write_text(
        'def pytest_addoption(parser):\n    parser.addoption("--base-url")\n'
    )
    gaps, notes = check(tmp_path, "src", "mini", "model/settings.yaml")
    assert gaps == [
        'src/pyproject.toml: needs exactly one static `version = "..."` line (releases stamp it)',
        "src/requirements/test.txt: missing; pinned requirements (default: runtime, test, dev)",
        "src/requirements/dev.txt: missing; pinned requirements (default: runtime, test, dev)",
        "`python -m mini.run evaluate`: no such command; release gates the model: `evaluate --config S --model-dir "
        "DIR --output OUT` writes OUT/metrics.json and exits 1 when the gate fails",
        "`python -m mini.run serve`: no --host, --port; the release image's service: `serve`",
        "`python -m mini.run drift`: no such command; `nox -s drift` and `retrain`: `drift --config S --model-dir "
        "DIR --loader predictions --source URL --output OUT`",
        "`python -m mini.run retrain`: no such command; `nox -s retrain`: `retrain --config S --model-dir DIR "
        "--output OUT [--force]` writes OUT/decision.json",
        "tests/unit/: missing; the toolkit runs it (in the build image)",
        "tests/integration/release_image/: missing; the toolkit runs it (given --release-image)",
        "tests/acceptance/: no conftest adds --expected-digest (pytest `parser.addoption`); the toolkit passes it",
    ]
    assert [n.split(":")[0] for n in notes] == ["`python -m mini.run fingerprint`", "model/settings.yaml"]


def test_a_package_that_cannot_be_imported_says_so_in_one_line(tmp_path: Path) -> None:
    gaps, _ = check(tmp_path, "src", "nowhere", "model/settings.yaml")
    assert "src/pyproject.toml: missing; the release builds the package's wheel from it" in gaps
    (failed,) = [g for g in gaps if "--help` fails" in g]
    assert failed.startswith("`python -m nowhere.run --help` fails (exit 1)") and "No module named" in failed
