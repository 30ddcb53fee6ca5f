"""Retraining for real: a clone with a bare origin, the project's own CLI, then a release of the
retrained model through the normal develop flow (real engine, real registry)."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from cicd.images import Engine
from tests.integration.conftest import Registry, cicd, git, make_project, new_batch

pytestmark = pytest.mark.slow(seconds=200)  # left out by --fast; the estimate orders the workers

DATE = "2026-01-02"


def refs(repo: Path) -> str:
    return git(repo, "for-each-ref", "--format=%(refname) %(objectname)")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, dummy_csv: Path) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("retrain")
    work, origin = make_project(tmp)
    git(work, "checkout", "--quiet", "main")
    data = {}
    for name, shift, effect in (("undrifted", 0.0, 0.0), ("unlearnable", 1.0, 0.0), ("drifted", 1.0, 60.0)):
        data[name] = tmp / f"{name}.csv"
        new = new_batch(
            dummy_csv, 300, seed=3, feature="bmi", shift=shift, effect=effect, shuffle_target=name == "unlearnable"
        )
        new.to_csv(data[name], index=False)
    return {"work": work, "origin": origin, "data": data, "tmp": tmp}


def retrain(project: dict[str, Any], *args: str, check: bool = True) -> Any:
    """``retrain`` in the project's checkout; its JSON result (or the failed process)."""
    result = cicd(project["work"], "--json", "retrain", *args, check=check)
    return json.loads(result.stdout)["result"] if check else result


@pytest.fixture(scope="module")
def retrained(project: dict[str, Any]) -> dict[str, Any]:
    """The drifted batch retrained once, on main: the result and the pushed model card."""
    head = git(project["work"], "rev-parse", "main")
    out = retrain(project, "--source", str(project["data"]["drifted"]), "--date", DATE)
    card = json.loads(git(project["work"], "show", f"retrain/{DATE}:model/card.json"))
    return {"out": out, "card": card, "head": head}


def _unchanged(project: dict[str, Any], before: tuple[str, str]) -> None:
    work, origin = project["work"], project["origin"]
    assert (refs(work), refs(origin)) == before
    assert git(work, "status", "--porcelain") == ""
    assert git(work, "rev-parse", "--abbrev-ref", "HEAD") == "main"


@pytest.mark.parametrize(("data", "outcome"), [("undrifted", "no-drift"), ("unlearnable", "rejected")])
def test_no_drift_or_a_losing_challenger_changes_nothing(project: dict[str, Any], data: str, outcome: str) -> None:
    before = (refs(project["work"]), refs(project["origin"]))
    out = retrain(project, "--source", str(project["data"][data]), "--date", DATE)
    assert out["outcome"] == outcome and out["branch"] is None
    _unchanged(project, before)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--source", "missing.csv"], "does not exist"),
        (["--source", "{bad}"], r"missing column\(s\) \['bmi'\]"),
        (["--source", "{empty}"], "is empty"),
    ],
)
def test_bad_input_is_refused_and_nothing_changes(project: dict[str, Any], args: list[str], message: str) -> None:
    tmp = project["tmp"]
    pd.read_csv(project["data"]["drifted"]).drop(columns=["bmi"]).to_csv(tmp / "bad.csv", index=False)
    (tmp / "empty.csv").write_text(",".join(pd.read_csv(project["data"]["drifted"]).columns) + "\n")
    args = [a.format(bad=tmp / "bad.csv", empty=tmp / "empty.csv") for a in args]
    before = (refs(project["work"]), refs(project["origin"]))
    result = cicd(project["work"], "retrain", *args, "--date", DATE, check=False)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "error:" in result.stderr
    assert re.search(message, result.stdout + result.stderr)
    _unchanged(project, before)


def test_a_dirty_tree_is_refused(project: dict[str, Any]) -> None:
    work = project["work"]
    (work / "model/settings.yaml").write_text((work / "model/settings.yaml").read_text() + "\n# local edit\n")
    try:
        result = cicd(work, "retrain", "--source", str(project["data"]["drifted"]), check=False)
        assert result.returncode == 2 and "model/settings.yaml" in result.stderr
    finally:
        git(work, "checkout", "--", "model/settings.yaml")


def test_drifted_data_gives_a_pushed_retrain_branch_with_a_better_model_card(
    project: dict[str, Any], retrained: dict[str, Any]
) -> None:
    work, origin = project["work"], project["origin"]
    head, out = retrained["head"], retrained["out"]
    assert out["outcome"] == "accepted" and out["branch"] == f"retrain/{DATE}"
    # Pushed to origin; the checkout is untouched.
    assert git(origin, "rev-parse", f"refs/heads/retrain/{DATE}") == out["commit"]
    assert git(work, "rev-parse", "HEAD") == head and git(work, "status", "--porcelain") == ""
    assert git(work, "rev-parse", f"retrain/{DATE}^") == head
    changed = git(work, "diff", "--name-only", head, f"retrain/{DATE}").split()
    assert sorted(changed) == ["model/card.json", "model/card.md", "model/data/training.csv", "model/settings.yaml"]
    assert git(work, "log", "-1", "--format=%s", f"retrain/{DATE}").startswith("feat(model): retrain on new data")
    card = json.loads(git(work, "show", f"retrain/{DATE}:model/card.json"))
    ev = card["evaluation"]
    assert ev["challenger"]["rmse"] < ev["champion"]["rmse"] * 0.95
    assert card["drift"]["drifted_features"] == ["bmi"] and card["acceptance"]["passed"]

    again = retrain(project, "--source", str(project["data"]["drifted"]), "--date", DATE)
    assert again["branch"].startswith(f"retrain/{DATE}-")  # never overwrites the first


def test_the_retrained_model_is_released_through_develop_as_the_card_says(
    project: dict[str, Any], retrained: dict[str, Any], engine: Engine, base_image: str, registry: Registry
) -> None:
    work = project["work"]
    git(work, "checkout", "--quiet", "develop")
    try:
        git(work, "merge", "--quiet", "--no-ff", "-m", "Merge retrain into develop", f"retrain/{DATE}")
        env = {"TRAINYARD_BASE_IMAGE": base_image, "TRAINYARD_REGISTRY": registry.address}
        record = json.loads(cicd(work, "--json", "release", env=env).stdout)["result"]
    finally:
        git(work, "checkout", "--quiet", "main")  # where every other test of this module expects to be
    assert record["model_card_fingerprint"] == retrained["card"]["data"]["fingerprint"]
    assert record["metrics"]["model"] == pytest.approx(retrained["card"]["evaluation"]["challenger"])
    assert "-rc." in record["version"] and record["branch"] == "develop"


def test_a_database_password_goes_nowhere(project: dict[str, Any], tmp_path: Path) -> None:
    """Canary passwords in every form a URL can carry them (the URL's password, a query parameter,
    an ODBC string inside ``odbc_connect``) never reach any output, file, commit or pushed branch."""
    import sqlalchemy as sa

    work, origin = project["work"], project["origin"]
    db = tmp_path / "new.sqlite"
    engine = sa.create_engine(f"sqlite:///{db}")
    pd.read_csv(project["data"]["drifted"]).to_sql("diabetes", engine, index=False)
    engine.dispose()
    canary = f"canary{uuid.uuid4().hex}"  # made here: no file of the project holds it
    odbc = f"DRIVER%3D%7BODBC%7D%3BUID%3Dbob%3BPWD%3D%7B{canary}-odbc%7D"
    url = f"sqlite:///file:{db}?mode=ro&uri=true&password={canary}-query&odbc_connect={odbc}"
    accepted = cicd(work, "--json", "retrain", "--loader", "sql", "--source", url, "--date", "2026-01-05")
    assert json.loads(accepted.stdout)["result"]["outcome"] == "accepted"
    refused = cicd(work, "retrain", "--loader", "sql", "--source", f"sqlite://bob:{canary}-userinfo@/x.db", check=False)
    assert refused.returncode != 0
    seen = [accepted.stdout, accepted.stderr, refused.stdout, refused.stderr]
    seen += [p.read_text(errors="replace") for p in work.rglob("*") if p.is_file() and ".git" not in p.parts]
    seen.append(git(origin, "log", "-p", "--all"))  # every commit pushed, with its files
    seen.append(git(origin, "for-each-ref", "--format=%(refname) %(contents)"))  # tags and their messages
    leaked = [text[max(0, text.find(canary) - 80) :][:160] for text in seen if canary in text]
    assert not leaked, leaked
