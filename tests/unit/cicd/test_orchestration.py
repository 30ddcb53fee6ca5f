"""The orchestration decisions, with fakes at the git and Docker boundaries (no git, no engine):
the merge gate, deploy and its recovery when the record cannot be pushed, the container swap and
its rollback path, promotion between any environments, rollback, and ``ci`` running a row.

The same paths run for real, through Docker and git, in ``tests/integration/test_environments.py``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlparse

import pytest

from cicd import __main__ as cli
from cicd import environments, flow, results
from cicd.config import PredictionLogSettings
from cicd.context import Context
from cicd.deploy.docker_target import DockerTarget
from cicd.errors import (
    CICDError,
    ConfigError,
    DeployError,
    HealthCheckError,
    NothingTestedError,
    PromotionError,
    PushError,
    RecordTrustError,
    RegistryError,
)
from cicd.http import free_port
from cicd.proc import Completed
from cicd.records import AcceptanceRecord, CheckRecord, DeployRecord, ReleaseRecord, timestamp
from tests.unit.cicd.fakes import REPOSITORY, FakeEngine, config, context, fake_engine, fake_repo

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def release(ctx: Context, version: str, digest: str, minutes: int = 0) -> ReleaseRecord:
    repo = fake_repo(ctx)
    record = ReleaseRecord(
        version=version,
        pep440=version,
        commit=repo.head(),
        tree=repo.tree(),
        branch="develop",
        image=f"sha256:{digest}",
        reference=f"{REPOSITORY}@sha256:{digest}",
        digest=f"sha256:{digest}",
        created=timestamp(T0 + timedelta(minutes=minutes)),
        tag=f"v{version}",
    )
    repo.tags_[record.tag] = repo_tag(record.tag, record.commit, record.to_message())
    return record


def repo_tag(name: str, commit: str, message: str) -> Any:
    from cicd.gitops import TagInfo

    return TagInfo(name, commit, message)


class Health:
    """The fake probe: a service answers unless its image is broken (in the role given)."""

    def __init__(self, engine: FakeEngine) -> None:
        self.engine, self.broken, self.calls = engine, set[tuple[str, str]](), 0

    def __call__(self, url: str, timeout: float, is_alive: Callable[[], bool] | None) -> bool:
        self.calls += 1
        port = urlparse(url).port
        for c in self.engine.containers.items.values():
            if c.port == port and c.running:
                role = c.labels.get("io.trainyard.role", "")
                return (c.image, role) not in self.broken and (c.image, "*") not in self.broken
        return False


@pytest.fixture
def health(monkeypatch: pytest.MonkeyPatch) -> Callable[[Context], Health]:
    """Every target gets the fake engine and the fake probe; promotion's smoke check asks the probe."""
    made: dict[int, Health] = {}

    def for_ctx(ctx: Context) -> Health:
        return made.setdefault(id(ctx), Health(fake_engine(ctx)))

    def target(ctx: Context, env: Any) -> DockerTarget:
        return DockerTarget(ctx.config, env, ctx.engine, probe=for_ctx(ctx))

    monkeypatch.setattr(environments, "get_target", target)
    monkeypatch.setattr(environments, "_smoke", lambda env: True)
    return for_ctx


def serving(ctx: Context, environment: str) -> list[str]:
    return [
        c.labels["io.trainyard.digest"]
        for c in fake_engine(ctx).containers.items.values()
        if c.running and c.labels.get("io.trainyard.environment") == environment
    ]


# --- the merge gate -------------------------------------------------------------------------
def check(ctx: Context, stage: str, commit: str, minutes: int = 0, selection: str = "", skipped: int = 0) -> str:
    """A check record of ``stage`` passing on ``commit``, as the stage writes it; its tag. With a
    ``selection`` (``-k x``), or every one of its 5 tests skipped, it is a partial pass."""
    when = T0 + timedelta(minutes=minutes)
    record = CheckRecord(
        stage=stage, commit=commit, subject="sha256:" + "9" * 64, time=timestamp(when),
        tests=5, skipped=skipped, selection=selection, complete=not selection and skipped < 5,
        tag=CheckRecord.tag_name(stage, commit, when),
    )  # fmt: skip
    fake_repo(ctx).tags_[record.tag] = repo_tag(record.tag, commit, record.to_message())
    return record.tag


# --- stage results keyed by content (cicd.results) ----------------------------------------------
def test_unit_reuses_a_verified_pass_of_the_same_inputs_and_nothing_else(monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = context()
    monkeypatch.setattr(flow, "_build_image_ref", lambda _: ("trainyard/x-build:" + "a" * 12, "sha256:" + "1" * 64))
    runs = fake_engine(ctx).containers.runs
    first = flow.unit(ctx, [])
    assert first["ran"] and first["key"].startswith("sha256:") and len(runs) == 1
    again = flow.unit(ctx, [])
    assert again["reused"] and again["key"] == first["key"] and len(runs) == 1  # nothing ran
    assert flow.unit(ctx, ["-k", "other"])["ran"] and len(runs) == 2  # other arguments: another key

    ctx.env[results.NO_CACHE] = "1"
    assert flow.unit(ctx, [])["ran"] and len(runs) == 3  # reuse turned off
    del ctx.env[results.NO_CACHE]

    fake_engine(ctx).containers.exit_code = 1  # a failure is never recorded, so never reused
    with pytest.raises(CICDError):
        flow.unit(ctx, ["-k", "failing"])
    with pytest.raises(CICDError):
        flow.unit(ctx, ["-k", "failing"])
    assert len(runs) == 5

    fake_engine(ctx).containers.exit_code = 0
    fake_repo(ctx).forged = {t for t in fake_repo(ctx).tags_ if t.startswith("checked/unit/")}
    with pytest.raises(RecordTrustError):  # a stored pass that does not verify stops the stage
        flow.unit(ctx, [])
    assert len(runs) == 5


def test_lint_reuses_its_pass_but_asks_the_vulnerability_database_every_time(monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = context()
    monkeypatch.setattr(flow, "_build_image_ref", lambda _: ("trainyard/x-build:" + "a" * 12, "sha256:" + "1" * 64))
    runs = fake_engine(ctx).containers.runs
    assert flow.lint(ctx)["ran"] and [r[3] for r in runs] == ["cicd.lint_tools", "cicd.audit"]
    again = flow.lint(ctx)
    assert again["reused"] and again["audit"] == "not checked"  # said, never a pass
    assert [r[3] for r in runs] == ["cicd.lint_tools", "cicd.audit", "cicd.audit"]


def test_a_content_key_covers_every_input_and_nothing_else(tmp_path: Any) -> None:
    base = results.key("unit", {"image": "sha256:1", "command": ["pytest", "-q"]})
    assert base == results.key("unit", {"command": ["pytest", "-q"], "image": "sha256:1"})  # order: no matter
    assert len({base, results.key("lint", {"image": "sha256:1", "command": ["pytest", "-q"]}),
                results.key("unit", {"image": "sha256:2", "command": ["pytest", "-q"]}),
                results.key("unit", {"image": "sha256:1", "command": ["pytest", "-x"]})}) == 4  # fmt: skip
    (tmp_path / "a.py").write_text("one\n")
    (tmp_path / "b.py").write_text("two\n")
    digest = results.files_digest(tmp_path, ["b.py", "a.py"])
    assert digest == results.files_digest(tmp_path, ["a.py", "b.py"])
    (tmp_path / "b.py").write_text("two, changed\n")
    assert results.files_digest(tmp_path, ["a.py", "b.py"]) != digest


def test_a_stored_output_is_used_only_when_its_files_hash_to_what_the_record_says(tmp_path: Any) -> None:
    out, store, key = tmp_path / "out", tmp_path / "store", "sha256:" + "4" * 64
    (out / "model").mkdir(parents=True)
    (out / "model" / "model.joblib").write_bytes(b"trained")
    (out / "metrics.json").write_text("{}")
    digest = results.keep("train", key, out, store)
    assert digest == results.folder_digest(out)
    assert results.restore("train", key, digest, tmp_path / "a", store)
    assert (tmp_path / "a" / "model" / "model.joblib").read_bytes() == b"trained"
    assert not results.restore("train", "sha256:" + "5" * 64, digest, tmp_path / "b", store)  # nothing stored
    stored = store / "train" / ("4" * 64) / digest.removeprefix("sha256:") / "model" / "model.joblib"
    stored.write_bytes(b"tampered")
    assert not results.restore("train", key, digest, tmp_path / "c", store)  # refused: does not verify
    assert not (tmp_path / "c").exists()
    (stored.parent / "extra.pkl").write_bytes(b"trained")
    stored.write_bytes(b"trained")
    assert not results.restore("train", key, digest, tmp_path / "d", store)  # an added file is caught too


def test_two_bundles_of_the_same_inputs_are_both_kept(tmp_path: Any) -> None:
    """Two clones sharing one store train the same inputs into bundles that differ (each names its
    commit): the second is stored beside the first, so the first one's record still restores."""
    store, key = tmp_path / "store", "sha256:" + "4" * 64
    digests = []
    for commit in ("a" * 40, "b" * 40):
        out = tmp_path / commit[:1]
        out.mkdir()
        (out / "bundle.json").write_text(f'{{"git_commit": "{commit}"}}')
        digests.append(results.keep("train", key, out, store))
    assert digests[0] != digests[1]
    for n, digest in enumerate(digests):
        assert results.restore("train", key, digest, tmp_path / f"restored{n}", store)
    assert results.keep("train", key, tmp_path / "a", store) == digests[0]  # stored already: kept as it is


def test_a_feature_branch_merges_into_develop_only_with_a_passing_unit_check() -> None:
    ctx = context(branch="feature/x")
    repo = fake_repo(ctx)
    repo.heads["feature/x"] = "f" * 40
    with pytest.raises(CICDError, match=r"no passing `unit` record \(a signed check record\); run `nox -s build unit`"):
        flow.merge(ctx)
    check(ctx, "unit", "e" * 40)  # another commit's
    with pytest.raises(CICDError, match="no passing `unit` record"):
        flow.merge(ctx)
    forged = check(ctx, "unit", "f" * 40)
    repo.forged.add(forged)  # one that does not verify stops the gate
    with pytest.raises(RecordTrustError, match=forged):
        flow.merge(ctx)
    repo.forged.clear()
    merged = flow.merge(ctx)
    assert merged["target"] == "develop" and repo.log == ["merge feature/x -> develop"]


def test_a_partial_pass_does_not_merge() -> None:
    """A pass of a selection (``unit -- -k x``) or of a run whose every test skipped vouches for
    part of the stage only: the gate says so and names what to run."""
    ctx = context(branch="feature/x")
    repo = fake_repo(ctx)
    repo.heads["feature/x"] = "f" * 40
    check(ctx, "unit", "f" * 40, selection="-k config")
    with pytest.raises(CICDError, match=r"only a partial `unit` pass \(-k config\), which cannot merge"):
        flow.merge(ctx)
    check(ctx, "unit", "f" * 40, minutes=1, skipped=5)
    with pytest.raises(CICDError, match=r"only a partial `unit` pass"):
        flow.merge(ctx)
    check(ctx, "unit", "f" * 40, minutes=2)
    assert flow.merge(ctx)["merged"] is True


def test_a_test_stage_in_which_no_test_ran_is_no_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = context()
    monkeypatch.setattr(flow, "_build_image_ref", lambda _: ("trainyard/x-build:" + "a" * 12, "sha256:" + "1" * 64))
    fake_engine(ctx).containers.junit = '<testsuites><testsuite tests="4" skipped="4"/></testsuites>'
    with pytest.raises(NothingTestedError, match="tested nothing: 4 collected, every one skipped"):
        flow.unit(ctx, [])
    assert not [t for t in fake_repo(ctx).tags_ if t.startswith("checked/")]  # nothing vouched for
    fake_engine(ctx).containers.junit = '<testsuites><testsuite tests="4" skipped="1"/></testsuites>'
    passed = flow.unit(ctx, [])
    assert passed["complete"] is True
    selected = flow.unit(ctx, ["-k", "config"])
    assert selected["complete"] is False


def test_develop_merges_into_the_release_branch_that_exists_only_after_integration() -> None:
    ctx = context(branch="develop")
    check(ctx, "unit", "d" * 40)  # not enough for develop
    with pytest.raises(CICDError, match="no passing `integration` record"):
        flow.merge(ctx)
    check(ctx, "integration", "d" * 40, minutes=1)
    assert flow.merge(ctx)["target"] == "main"  # master is listed first, but only main exists
    with pytest.raises(CICDError, match="is a release branch"):
        flow.merge(context(branch="main"))


def test_a_dry_merge_writes_nothing() -> None:
    ctx = context(branch="develop", dry_run=True)
    check(ctx, "integration", "d" * 40)
    assert flow.merge(ctx)["merged"] is False
    assert fake_repo(ctx).log == [] and ctx.writes.journal == ["[dry-run] merge develop into main"]


# --- deploy, and what happens when its record cannot be pushed ------------------------------
def test_deploy_runs_this_commits_release_by_digest_and_records_it(health: Any) -> None:
    ctx = context()
    health(ctx)
    rel = release(ctx, "0.1.0", "a" * 64)
    record = environments.deploy(ctx, "staging")
    repo = fake_repo(ctx)
    assert fake_engine(ctx).registry.pulled == [rel.reference]
    assert serving(ctx, "staging") == [rel.digest]
    assert record.tag in repo.remote_tags and repo.tags_["Staging"].commit == repo.head()
    push = next(line for line in repo.log if line.startswith("push"))
    assert "+refs/tags/Staging" in push and "--force-with-lease=refs/tags/Staging:" in push


def test_an_environment_with_a_prediction_log_gets_its_own_named_volume(health: Any) -> None:
    ctx = context(
        config(
            staging={"prediction_log": PredictionLogSettings(sample=0.25, max_rows=500)},
            production={"prediction_log": None},
        )
    )
    health(ctx)
    release(ctx, "0.1.0", "a" * 64)
    environments.deploy(ctx, "staging")
    started = fake_engine(ctx).containers
    port = ctx.config.environment("staging").port  # part of the name, as of the containers' identity
    assert started.volumes == {f"trainyard-{ctx.config.project}-staging-{port}-predictions": "/var/lib/predictions"}
    assert started.env["SERVICE_PREDICTION_LOG"] == "sqlite:////var/lib/predictions/predictions.sqlite"
    assert (
        started.env["SERVICE_PREDICTION_LOG_SAMPLE"] == "0.25"
        and started.env["SERVICE_PREDICTION_LOG_MAX_ROWS"] == "500"
    )
    environments.deploy(ctx, "production", check_branch=False, release=_as_deployable("b" * 64))
    assert started.volumes == {} and "SERVICE_PREDICTION_LOG" not in started.env  # off unless asked


@pytest.mark.parametrize(
    ("staging", "says"),
    [
        (
            {"prediction_log": None},
            "environment staging keeps no prediction log: set environments.staging.prediction_log",
        ),
        ({"prediction_log": PredictionLogSettings(), "target": "kubernetes"}, "target of staging keeps no log volume"),
        ({"prediction_log": PredictionLogSettings()}, "nothing is deployed to staging"),
    ],
    ids=["not-enabled", "kubernetes", "not-deployed"],
)
def test_reading_a_prediction_log_that_is_not_there_says_what_to_do(staging: dict[str, Any], says: str) -> None:
    from cicd.errors import PredictionLogError
    from cicd.predictions import export

    ctx = context(config(staging=staging))
    with pytest.raises(PredictionLogError, match=says):
        export(ctx, "staging")
    with pytest.raises(ConfigError, match="unknown environment 'nowhere'"):
        export(ctx, "nowhere")


def test_the_drift_reference_must_be_the_model_the_environment_serves(tmp_path: Any) -> None:
    from cicd.errors import PredictionLogError
    from cicd.predictions import Exported, check_same_model

    served = {"model_name": "gbr", "hyperparameters": {"n": 1}, "data": {"fingerprint": "sha256:" + "a" * 64},
              "git_commit": "c" * 40}  # fmt: skip
    (tmp_path / "metadata.json").write_text(json.dumps(served | {"git_commit": "d" * 40, "trained_at": "now"}))
    exported = Exported("production", tmp_path / "log.sqlite", served)
    check_same_model(exported, tmp_path, "Production")  # another commit, the same model: fine
    (tmp_path / "metadata.json").write_text(json.dumps(served | {"data": {"fingerprint": "sha256:" + "b" * 64}}))
    with pytest.raises(
        PredictionLogError, match=r"\(data differ: it runs gbr .* Run this from `git checkout Production`"
    ):
        check_same_model(exported, tmp_path, "Production")


def test_source_names_an_environment_only_when_it_is_one(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    ctx = context()
    args = argparse.Namespace(source="staging", loader=None, table=None)
    assert cli._environment_source(ctx, args) == "staging" and args.source is None
    for source in ("data/new.csv", "sqlite:///x.sqlite", None):
        kept = argparse.Namespace(source=source, loader=None, table=None)
        assert cli._environment_source(ctx, kept) is None and kept.source == source
    with pytest.raises(ConfigError, match="do not apply to an environment's prediction log"):
        cli._environment_source(ctx, argparse.Namespace(source="staging", loader="sql", table=None))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "staging").write_text("a file named like the environment\n")
    with pytest.raises(ConfigError, match=r"both an environment and a path here; say \./staging"):
        cli._environment_source(ctx, argparse.Namespace(source="staging", loader=None, table=None))


def test_a_refused_push_restores_the_tags_and_the_previous_release(health: Any) -> None:
    ctx = context()
    health(ctx)
    first = release(ctx, "0.1.0", "a" * 64)
    environments.deploy(ctx, "staging")
    repo = fake_repo(ctx)
    staging_before = repo.tags_["Staging"]
    release(ctx, "0.2.0", "b" * 64, minutes=5)
    repo.refuse_push = True
    with pytest.raises(PushError):
        environments.deploy(ctx, "staging")
    assert repo.tags_["Staging"] == staging_before
    assert len([t for t in repo.tags_ if t.startswith("deploy/staging/")]) == 1
    assert serving(ctx, "staging") == [first.digest]


def test_dry_deploy_changes_nothing(health: Any) -> None:
    ctx = context(dry_run=True)
    health(ctx)
    release(ctx, "0.1.0", "a" * 64)
    tags_before = dict(fake_repo(ctx).tags_)
    environments.deploy(ctx, "staging")
    assert fake_repo(ctx).tags_ == tags_before and fake_engine(ctx).containers.items == {}
    assert all(w.startswith("[dry-run] ") for w in ctx.writes.journal) and len(ctx.writes.journal) >= 4


# --- the swap -------------------------------------------------------------------------------
def test_a_candidate_that_never_gets_healthy_never_touches_the_one_serving(health: Any) -> None:
    ctx = context()
    probe = health(ctx)
    release(ctx, "0.1.0", "a" * 64)
    environments.deploy(ctx, "staging")
    old = set(fake_engine(ctx).containers.items)
    release(ctx, "0.2.0", "b" * 64, minutes=5)
    probe.broken.add(("sha256:" + "b" * 64, "*"))
    fake_engine(ctx).containers.log.clear()
    with pytest.raises(HealthCheckError, match="nothing else was changed") as caught:
        environments.deploy(ctx, "staging")
    assert caught.value.log_tail  # the candidate's log is in the error
    assert set(fake_engine(ctx).containers.items) == old and serving(ctx, "staging") == ["sha256:" + "a" * 64]
    assert not any(line.startswith("stop") for line in fake_engine(ctx).containers.log)  # never stopped


def test_a_release_that_fails_after_the_swap_is_removed_and_the_old_one_restarted(health: Any) -> None:
    ctx = context()
    probe = health(ctx)
    release(ctx, "0.1.0", "a" * 64)
    environments.deploy(ctx, "staging")
    (old,) = fake_engine(ctx).containers.items
    release(ctx, "0.2.0", "b" * 64, minutes=5)
    probe.broken.add(("sha256:" + "b" * 64, "serving"))  # healthy as a candidate, not on the real port
    log = fake_engine(ctx).containers.log
    log.clear()
    with pytest.raises(HealthCheckError, match="the previous release is serving again"):
        environments.deploy(ctx, "staging")
    steps = [line.split()[0] for line in log]
    assert steps == ["start", "remove", "stop", "start", "remove", "restart"], log
    assert f"stop {old} (kept)" in log and f"restart {old}" in log
    assert serving(ctx, "staging") == ["sha256:" + "a" * 64]


def test_a_good_swap_retires_every_other_container(health: Any) -> None:
    ctx = context(config(staging={"memory": "512m", "pids": 64}))
    health(ctx)
    release(ctx, "0.1.0", "a" * 64)
    environments.deploy(ctx, "staging")
    release(ctx, "0.2.0", "b" * 64, minutes=5)
    environments.deploy(ctx, "staging")
    assert serving(ctx, "staging") == ["sha256:" + "b" * 64] and len(fake_engine(ctx).containers.items) == 1
    assert set(fake_engine(ctx).containers.limits.values()) == {("512m", 64)}  # the spec's limits, every start


def _two_deploys_behind_a_proxy(health: Any) -> Context:
    """Staging behind a proxy: 0.1.0 deployed (blue), then 0.2.0 (green; blue stopped and kept)."""
    ctx = context(config(staging={"proxy": True, "service_ports": (free_port(), free_port())}))
    health(ctx)
    release(ctx, "0.1.0", "a" * 64)
    environments.deploy(ctx, "staging")
    release(ctx, "0.2.0", "b" * 64, minutes=5)
    environments.deploy(ctx, "staging")
    return ctx


def test_behind_a_proxy_a_deploy_switches_colours_and_a_rollback_starts_the_kept_one(health: Any) -> None:
    ctx = _two_deploys_behind_a_proxy(health)
    containers, registry = fake_engine(ctx).containers, fake_engine(ctx).registry
    steps = [line.split()[0] + (" " + line.split()[-1] if line.startswith(("proxy", "switch")) else "")
             for line in containers.log]  # fmt: skip
    # blue starts and the proxy starts on it; green starts, the proxy switches, blue stops (kept)
    assert steps == ["start", "proxy blue", "start", "switch green", "stop"], containers.log
    pulled = list(registry.pulled)
    containers.log.clear()
    environments.rollback(ctx, "staging")
    assert registry.pulled == pulled  # the kept blue container is started again: nothing pulled
    assert [line.split()[0] for line in containers.log] == ["restart", "switch", "stop"], containers.log
    running = [c for c in containers.items.values() if c.running and c.labels.get("io.trainyard.role") == "serving"]
    assert [c.labels["io.trainyard.digest"] for c in running] == ["sha256:" + "a" * 64]


def test_behind_a_proxy_a_kept_colour_is_trusted_by_its_image_not_its_labels(health: Any) -> None:
    """A stopped container with the kept colour's labels but another image (left by anyone who can
    reach the engine, a CI job sharing it): the rollback pulls and starts the release itself."""
    ctx = _two_deploys_behind_a_proxy(health)
    containers, registry = fake_engine(ctx).containers, fake_engine(ctx).registry
    (blue,) = [c for c in containers.items.values() if c.labels.get("io.trainyard.colour") == "blue"]
    blue.image = "sha256:" + "f" * 64  # the labels still say release a
    pulled = list(registry.pulled)
    containers.log.clear()
    environments.rollback(ctx, "staging")
    assert registry.pulled[len(pulled) :] == [f"{REPOSITORY}@sha256:{'a' * 64}"]  # the release itself, by digest
    assert [line.split()[0] for line in containers.log] == ["remove", "start", "switch", "stop"], containers.log
    assert blue.id not in containers.items
    running = [c for c in containers.items.values() if c.running and c.labels.get("io.trainyard.role") == "serving"]
    assert [c.image for c in running] == ["sha256:" + "a" * 64]


def test_behind_a_proxy_a_kept_colour_with_other_settings_is_not_started_again(health: Any) -> None:
    """A kept colour runs the digest, but was started with other settings: a new container starts
    from the image it has (nothing pulled), with the settings the spec now says."""
    ctx = _two_deploys_behind_a_proxy(health)
    containers, registry = fake_engine(ctx).containers, fake_engine(ctx).registry
    (blue,) = [c for c in containers.items.values() if c.labels.get("io.trainyard.colour") == "blue"]
    staging = ctx.config.environment("staging")
    moved = replace(staging, settings={"env": {"MODEL_DIR": "/elsewhere"}})
    ctx.config = replace(ctx.config, environments={**ctx.config.environments, "staging": moved})
    pulled = list(registry.pulled)
    containers.log.clear()
    environments.rollback(ctx, "staging")
    assert registry.pulled == pulled
    assert [line.split()[0] for line in containers.log] == ["remove", "start", "switch", "stop"], containers.log
    assert containers.log[1].split()[2] == blue.image and containers.env["MODEL_DIR"] == "/elsewhere"
    assert blue.id not in containers.items


def test_behind_a_proxy_a_colour_that_never_gets_healthy_never_gets_the_traffic(health: Any) -> None:
    ctx = context(config(staging={"proxy": True, "service_ports": (free_port(), free_port()), "health_timeout": 1}))
    health(ctx)
    containers = fake_engine(ctx).containers
    release(ctx, "0.1.0", "a" * 64)
    environments.deploy(ctx, "staging")
    release(ctx, "0.2.0", "b" * 64, minutes=5)
    containers.unhealthy.add("sha256:" + "b" * 64)
    containers.log.clear()
    with pytest.raises(HealthCheckError, match="never answered"):
        environments.deploy(ctx, "staging")
    assert [line.split()[0] for line in containers.log] == ["start", "remove"], containers.log  # no switch
    proxy = next(c for c in containers.items.values() if c.labels.get("io.trainyard.role") == "proxy")
    assert "colour=blue" in containers.confs[proxy.id]


# --- promotion between any environments, and rollback ---------------------------------------
def staged(ctx: Context, env: str, digest: str, *, accepted: bool | None, minutes: int = 0) -> DeployRecord:
    """A recorded deployment to ``env`` of the head commit, its moving tag, and an acceptance verdict."""
    repo = fake_repo(ctx)
    when = T0 + timedelta(minutes=minutes)
    record = DeployRecord(
        environment=env,
        version="1.0.0",
        digest=f"sha256:{digest}",
        reference=f"{REPOSITORY}@sha256:{digest}",
        image=f"sha256:{digest}",
        commit=repo.head(),
        time=timestamp(when),
        who="test",
        tag=DeployRecord.tag_name(env, when),
    )
    repo.tags_[record.tag] = repo_tag(record.tag, record.commit, record.to_message())
    tag = ctx.config.environment(env).tag
    if tag:
        repo.tags_[tag] = repo_tag(tag, record.commit, "moving")
    if accepted is not None:
        later = when + timedelta(seconds=30)
        judge(ctx, record, accepted, later)
    return record


def judge(ctx: Context, record: DeployRecord, passed: bool, when: datetime, selection: str = "") -> None:
    """An acceptance verdict on a recorded deployment (a whole run of 7 tests, unless ``selection``)."""
    verdict = AcceptanceRecord(
        environment=record.environment,
        deploy_tag=record.tag,
        digest=record.digest,
        commit=record.commit,
        passed=passed,
        time=timestamp(when),
        tag=AcceptanceRecord.tag_name(record.environment, when),
        tests=1 if selection else 7,
        failures=0 if passed else 1,
        selection=selection,
        complete=not selection,
    )
    fake_repo(ctx).tags_[verdict.tag] = repo_tag(verdict.tag, record.commit, verdict.to_message())


FOUR = {"qa": {"tag": "QA", "promote_from": "staging"}, "production": {"promote_from": "qa"}}


def test_promotion_takes_the_accepted_release_of_the_environment_the_spec_names(health: Any) -> None:
    ctx = context(config(**FOUR))
    health(ctx)
    staged(ctx, "staging", "a" * 64, accepted=True)
    with pytest.raises(PromotionError, match="there is no QA tag"):  # production comes from qa, not staging
        environments.promote(ctx, "production")
    promoted = environments.promote(ctx, "qa")
    assert promoted is not None and promoted.kind == "promote" and promoted.environment == "qa"
    assert serving(ctx, "qa") == ["sha256:" + "a" * 64] and fake_repo(ctx).tags_["QA"].commit == fake_repo(ctx).head()
    push = next(line for line in fake_repo(ctx).log if line.startswith("push"))
    assert "--force-with-lease=refs/tags/Staging:" in push  # the source tag is leased: if it moved, nothing lands
    with pytest.raises(PromotionError, match=r"acceptance of 1\.0\.0 on qa has not run"):
        environments.promote(ctx, "production")
    with pytest.raises(PromotionError, match="staging is not promoted to"):
        environments.promote(ctx, "staging")


@pytest.mark.parametrize(
    ("verdicts", "message"),
    [([], "has not run"), ([False], "failed"), ([True, False], "failed")],  # the newest verdict counts
)
def test_promotion_refuses_without_a_passing_newest_acceptance(health: Any, verdicts: list[bool], message: str) -> None:
    ctx = context()
    health(ctx)
    record = staged(ctx, "staging", "a" * 64, accepted=None)
    for n, passed in enumerate(verdicts):
        when = T0 + timedelta(minutes=n + 1)
        judge(ctx, record, passed, when)
    with pytest.raises(PromotionError, match=rf"acceptance of 1\.0\.0 on staging {message}"):
        environments.promote(ctx, "production")
    assert fake_engine(ctx).containers.items == {}


def test_a_partial_acceptance_run_cannot_make_a_release_promotable(health: Any) -> None:
    ctx = context()
    health(ctx)
    record = staged(ctx, "staging", "a" * 64, accepted=True)
    judge(ctx, record, True, T0 + timedelta(minutes=5), selection="-k health")  # newer, passed, partial
    with pytest.raises(PromotionError, match=r"was a partial run \(-k health\)"):
        environments.promote(ctx, "production")
    judge(ctx, record, True, T0 + timedelta(minutes=6))
    assert environments.promote(ctx, "production") is not None


@pytest.mark.parametrize("forged", ["deploy", "accepted", "Staging", "old"])
def test_a_record_that_does_not_verify_stops_promotion_and_nothing_changes(health: Any, forged: str) -> None:
    """Which record fails verification does not matter (the staged deployment, its verdict, the
    source's tag, an old unrelated one): promotion decides on nothing and changes nothing."""
    ctx = context()
    health(ctx)
    old = staged(ctx, "staging", "b" * 64, accepted=True, minutes=-60)
    record = staged(ctx, "staging", "a" * 64, accepted=True)
    repo = fake_repo(ctx)
    verdict = next(
        t.name
        for t in repo.tags_.values()
        if (a := AcceptanceRecord.from_message(t.name, t.message)) is not None and a.deploy_tag == record.tag
    )
    repo.forged.add({"deploy": record.tag, "accepted": verdict, "Staging": "Staging", "old": old.tag}[forged])
    tags = dict(repo.tags_)
    with pytest.raises(RecordTrustError, match=r"unsigned, signed by a key not in \.trainyard/allowed_signers"):
        environments.promote(ctx, "production")
    assert fake_engine(ctx).containers.items == {} and repo.tags_ == tags
    assert not any(line.startswith("push") for line in repo.log)


def test_an_old_source_tag_pushed_again_promotes_nothing(health: Any) -> None:
    """The replay: v1 then v2 deployed to staging and accepted; the old, genuinely signed Staging
    tag object (naming v1's commit) is pushed back. Promotion must not pick v1 (a downgrade)."""
    ctx = context()
    health(ctx)
    repo = fake_repo(ctx)
    v1 = staged(ctx, "staging", "b" * 64, accepted=True, minutes=-60)
    old_tag = repo.tags_["Staging"]
    repo._head = "d" * 40  # the next commit, released and deployed
    staged(ctx, "staging", "a" * 64, accepted=True)
    repo.tags_["Staging"] = old_tag  # put back
    with pytest.raises(PromotionError, match=rf"the Staging tag names {v1.commit[:12]} .* newest deployment is"):
        environments.promote(ctx, "production")
    assert fake_engine(ctx).containers.items == {} and not any(line.startswith("push") for line in repo.log)


def test_rollback_leaves_out_a_record_that_does_not_verify(health: Any) -> None:
    """Mid-incident, one stray unsigned tag must not block the way back (promotion still refuses)."""
    ctx = context()
    health(ctx)
    for n, digest in enumerate(("a" * 64, "b" * 64)):
        release(ctx, f"0.{n + 1}.0", digest, minutes=n)
        environments.deploy(ctx, "staging")
    repo = fake_repo(ctx)
    junk = CheckRecord("unit", "e" * 40, "x", timestamp(T0), tag=CheckRecord.tag_name("unit", "e" * 40, T0))
    repo.tags_[junk.tag] = repo_tag(junk.tag, "e" * 40, junk.to_message())
    repo.forged.add(junk.tag)
    rolled = environments.rollback(ctx, "staging")
    assert rolled.kind == "rollback" and serving(ctx, "staging") == ["sha256:" + "a" * 64]


def test_a_record_naming_another_registry_is_never_pulled(health: Any) -> None:
    ctx = context()
    health(ctx)
    record = staged(ctx, "staging", "a" * 64, accepted=True)
    forged = replace(record, reference=REPOSITORY.replace("registry.test:5000", "evil.example") + "@" + record.digest)
    fake_repo(ctx).tags_[record.tag] = repo_tag(record.tag, record.commit, forged.to_message())
    with pytest.raises(RegistryError, match=re.escape(f"may only name {REPOSITORY}@sha256:<digest>")):
        environments.promote(ctx, "production")
    assert fake_engine(ctx).containers.items == {} and not fake_engine(ctx).registry.pulled


def test_promoting_what_already_runs_does_nothing(health: Any) -> None:
    ctx = context()
    health(ctx)
    staged(ctx, "staging", "a" * 64, accepted=True)
    assert environments.promote(ctx, "production") is not None
    tags = dict(fake_repo(ctx).tags_)
    assert environments.promote(ctx, "production") is None and fake_repo(ctx).tags_ == tags


def test_a_promotion_that_fails_its_smoke_check_is_rolled_back(health: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = context()
    health(ctx)
    staged(ctx, "production", "0" * 64, accepted=None, minutes=-60)  # what production ran before
    environments.deploy(ctx, "production", release=_as_deployable("0" * 64), kind="deploy", check_branch=False)
    staged(ctx, "staging", "a" * 64, accepted=True)
    monkeypatch.setattr(environments, "_smoke", lambda env: False)
    with pytest.raises(PromotionError, match="failed its smoke check in production and was rolled back"):
        environments.promote(ctx, "production")
    assert serving(ctx, "production") == ["sha256:" + "0" * 64]
    kinds = [r.kind for r in environments.deploy_records(ctx) if r.environment == "production"]
    assert kinds[:2] == ["rollback", "promote"]  # newest first, by the records' own time


def _as_deployable(digest: str) -> DeployRecord:
    return DeployRecord(
        "x",
        "0.9.0",
        f"sha256:{digest}",
        f"{REPOSITORY}@sha256:{digest}",
        f"sha256:{digest}",
        "c" * 40,
        timestamp(T0),
        "test",
    )


def test_rollback_redeploys_the_newest_earlier_different_digest(health: Any) -> None:
    ctx = context()
    health(ctx)
    with pytest.raises(DeployError, match="no earlier deployment"):
        environments.rollback(ctx, "staging")
    for n, digest in enumerate(("a" * 64, "b" * 64, "b" * 64)):
        release(ctx, f"0.{n + 1}.0", digest, minutes=n)
        environments.deploy(ctx, "staging")
    rolled = environments.rollback(ctx, "staging")
    assert rolled.kind == "rollback" and rolled.digest == "sha256:" + "a" * 64
    assert serving(ctx, "staging") == ["sha256:" + "a" * 64]


# --- ci runs a row ---------------------------------------------------------------------------
def test_ci_runs_the_row_in_order_with_every_global_option_and_stops_at_the_first_failure(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Any
) -> None:
    ran: list[list[str]] = []

    def fake_run(cmd: list[str], **kwargs: Any) -> Completed:
        ran.append(cmd)
        code = 1 if cmd[-1] == "integration" else 0
        return Completed(" ".join(cmd), code, json.dumps({"result": {"session": cmd[-1]}}))

    monkeypatch.setattr("cicd.proc.run", fake_run)
    spec = tmp_path / "pipeline.yaml"
    spec.write_text((config().path).read_text())
    code = cli.main(["--config", str(spec), "--dry-run", "--json", "ci", "--branch", "develop", "--event", "push"])
    assert code == 1
    assert [c[-1] for c in ran] == ["release", "integration"]  # the develop row, stopped at the failure
    for cmd in ran:
        assert cmd[cmd.index("--config") + 1] == str(spec) and "--dry-run" in cmd and "--json" in cmd
        assert cmd[cmd.index("--branch") + 1] == "develop"
    out = json.loads(capsys.readouterr().out)["result"]
    assert out["ok"] is False and [s["exit_code"] for s in out["steps"]] == [0, 1]
    assert out["steps"][0]["result"] == {"result": {"session": "release"}}
