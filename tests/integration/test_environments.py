"""The whole flow in a throwaway project, as a user would run it, with four environments:
develop → integration; main → staging (acceptance) → qa (promoted from staging, acceptance) →
production (promoted from qa).

Real engine, real registry, real git with a bare origin, real HTTP to the deployed services.
Each test asks the fixtures for the state it needs (a first release promoted all the way, a
second one accepted on staging), so the tests pass in any order. A release that never gets
healthy and a port taken by another program are drills (test_drills.py: each shows its fault
took effect), not tested a second time here.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import semver
import yaml

from cicd.config import load_config
from cicd.context import Context
from cicd.deploy.docker_target import DockerTarget
from cicd.errors import ServiceError
from cicd.http import free_port, request_json
from cicd.images import Engine
from tests.integration.conftest import (
    RELEASE_NAME,
    SPEC,
    Registry,
    cicd,
    git,
    make_project,
    new_batch,
    sign_passing_check,
    start_registry,
)

pytestmark = pytest.mark.slow(seconds=540)  # left out by --fast; the estimate orders the workers

ENVIRONMENTS = ("integration", "staging", "qa", "production")
FIRST_ROW = {"age": 59.0, "sex": 2, "bmi": 32.1, "bp": 101.0, "s1": 157.0, "s2": 93.2, "s3": 38.0,
             "s4": 4.0, "s5": 4.8598, "s6": 87.0}  # the first row of the dummy data, as a request sends it  # fmt: skip


def _four_environments(work: Path) -> dict[str, int]:
    """The spec with a ``qa`` step between staging and production, all on free ports, committed."""
    ports = {name: free_port() for name in ENVIRONMENTS}
    spec = work / "cicd/pipeline.yaml"
    data = yaml.safe_load(spec.read_text())
    envs = data["environments"]
    envs["staging"]["prediction_log"] = {"sample": 1.0, "max_rows": 100_000}
    envs["qa"] = {**envs["staging"], "tag": "QA", "promote_from": "staging"}
    envs["production"]["promote_from"] = "qa"
    data["environments"] = {name: {**envs[name], "port": ports[name]} for name in ENVIRONMENTS}
    for env in data["environments"].values():
        if env.get("proxy"):  # the colours behind the proxy on free ports too
            env["service_ports"] = [free_port(), free_port()]
    data["environments"]["staging"]["metrics_bind"] = f"127.0.0.1:{free_port()}"  # what Prometheus scrapes
    spec.write_text(yaml.safe_dump(data, sort_keys=False))
    config = load_config(spec, env={})
    assert [config.environments[n].promote_from for n in ENVIRONMENTS] == [None, None, "staging", "qa"]
    git(work, "commit", "--quiet", "-am", "chore: four environments on free ports for this test")
    return ports


def json_of(result: subprocess.CompletedProcess[str]) -> Any:
    """The command's result (``--json``), never its printed text."""
    return json.loads(result.stdout)["result"]


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory, engine: Engine, base_image: str) -> Iterator[dict[str, Any]]:
    registry = start_registry(tmp_path_factory.mktemp("envs-registry"))  # its own: a test stops it
    work, origin = make_project(tmp_path_factory.mktemp("envs"))
    ports = _four_environments(work)
    git(work, "push", "--quiet", "origin", "develop")
    env = {"TRAINYARD_BASE_IMAGE": base_image, "TRAINYARD_REGISTRY": registry.address}
    state: dict[str, Any] = {"work": work, "origin": origin, "env": env, "ports": ports, "registry": registry}
    yield state
    registry.stop()
    config = load_config(work / "cicd/pipeline.yaml", env={})
    for env_config in config.environments.values():  # leave no service running behind the test
        DockerTarget(config, env_config, engine).discard()


def run(flow: dict[str, Any], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return cicd(flow["work"], "--json", *args, env=flow["env"], check=check)


def on(flow: dict[str, Any], branch: str) -> None:
    git(flow["work"], "checkout", "--quiet", branch)
    git(flow["work"], "pull", "--quiet", "origin", branch)


def _metadata(port: int) -> dict[str, Any]:
    status, body = request_json(f"http://127.0.0.1:{port}/metadata")
    assert status == 200
    return dict(body)


def _tags(flow: dict[str, Any], prefix: str) -> list[str]:
    return [t for t in git(flow["origin"], "tag", "-l").split() if t.startswith(prefix)]


@pytest.fixture(scope="module")
def first(flow: dict[str, Any]) -> dict[str, Any]:
    """The first release, taken through every row with every refusal on the way; what each step said."""
    seen: dict[str, Any] = {}
    on(flow, "develop")
    seen["release"] = json_of(run(flow, "release"))
    seen["integration"] = json_of(run(flow, "integration"))
    seen["deploy_from_develop"] = run(flow, "deploy", "staging", check=False)
    run(flow, "merge")
    on(flow, "main")
    seen["promote_before_staging"] = run(flow, "promote", "qa", check=False)
    deployed = run(flow, "deploy", "staging")
    seen["deploy"], seen["deploy_log"] = json_of(deployed), deployed.stderr
    seen["promote_before_acceptance"] = run(flow, "promote", "qa", check=False)
    seen["acceptance_of_nothing"] = run(flow, "acceptance", "staging", "--", "-k", "no_such_test", check=False)
    seen["promote_after_failure"] = run(flow, "promote", "qa", check=False)
    seen["production_skipping_qa"] = run(flow, "promote", "production", check=False)
    seen["partial"] = json_of(run(flow, "acceptance", "staging", "--", "-k", "health"))
    seen["promote_after_partial"] = run(flow, "promote", "qa", check=False)
    run(flow, "acceptance", "staging")
    seen["qa"] = json_of(run(flow, "promote", "qa"))
    run(flow, "acceptance", "qa")
    seen["production"] = json_of(run(flow, "promote", "production"))
    seen["again"] = run(flow, "promote", "production")
    seen["status"] = json_of(run(flow, "status"))
    seen["digest"] = seen["release"]["digest"]
    # what runs and where the tags point now, before any other test moves them on
    seen["serving"] = {name: _metadata(flow["ports"][name])["image_digest"] for name in ("staging", "qa", "production")}
    seen["tagged"] = {tag: git(flow["origin"], "rev-list", "-n1", tag) for tag in ("Staging", "QA", "Production")}
    seen["head"] = git(flow["work"], "rev-parse", "HEAD")
    return seen


def test_the_whole_flow_through_four_environments(flow: dict[str, Any], first: dict[str, Any]) -> None:
    digest = first["digest"]
    assert first["release"]["version"] == "0.1.0-rc.1" and first["release"]["released"] is True
    assert first["integration"]["passed"] is True and first["integration"]["version"] == "0.1.0-rc.1"
    refused = first["deploy_from_develop"]
    assert refused.returncode == 2 and "staging deploys from master or main" in refused.stderr
    early = first["promote_before_staging"]
    assert early.returncode == 2 and "there is no Staging tag" in early.stderr
    assert first["deploy"]["environment"] == "staging" and first["deploy"]["digest"] == digest
    assert "Step 1/" not in first["deploy_log"]  # nothing was built
    not_accepted = first["promote_before_acceptance"]
    assert not_accepted.returncode == 2 and "acceptance of 0.1.0-rc.1 on staging has not run" in not_accepted.stderr
    assert first["acceptance_of_nothing"].returncode == 1  # pytest collected nothing: not a pass, and recorded
    failed = first["promote_after_failure"]
    assert failed.returncode == 2 and "acceptance of 0.1.0-rc.1 on staging failed" in failed.stderr
    partial = first["partial"]  # `-k health` passed, said what ran, and is not enough
    assert partial["passed"] is True and partial["complete"] is False and partial["selection"] == "-k health"
    assert partial["tests"] > 0 and partial["failures"] == 0
    refused_partial = first["promote_after_partial"]
    assert refused_partial.returncode == 2 and "was a partial run (-k health)" in refused_partial.stderr
    skipped = first["production_skipping_qa"]
    assert skipped.returncode == 2 and "there is no QA tag" in skipped.stderr  # production comes from qa
    assert first["qa"]["environment"] == "qa" and first["qa"]["kind"] == "promote" and first["qa"]["digest"] == digest
    assert first["production"]["environment"] == "production" and first["production"]["digest"] == digest
    assert first["serving"] == {"staging": digest, "qa": digest, "production": digest}
    assert first["tagged"] == {"Staging": first["head"], "QA": first["head"], "Production": first["head"]}
    assert json_of(first["again"]) is None  # nothing to do: no second record
    assert len(_tags(flow, "deploy/production/")) >= 1 and len(_tags(flow, "accepted/qa/")) >= 1
    rows = {row["environment"]: row for row in first["status"]}
    assert set(rows) == set(ENVIRONMENTS)
    assert all(rows[n]["health"] == "healthy" and rows[n]["running"] == digest for n in ("staging", "qa"))


def test_bad_input_is_refused(flow: dict[str, Any], first: dict[str, Any]) -> None:
    work, env = flow["work"], flow["env"]
    on(flow, "main")
    serving = _metadata(flow["ports"]["staging"])["image_digest"]
    unknown = cicd(work, "deploy", "nowhere", env=env, check=False)
    assert unknown.returncode == 2 and "unknown environment 'nowhere'" in unknown.stderr
    not_promoted = cicd(work, "promote", "staging", env=env, check=False)
    assert not_promoted.returncode == 2 and "staging is not promoted to" in not_promoted.stderr
    (work / "dirty.txt").write_text("x")
    dirty = cicd(work, "deploy", "staging", env=env, check=False)
    (work / "dirty.txt").unlink()
    assert dirty.returncode == 2 and "uncommitted changes" in dirty.stderr
    (work / "NOTES.md").write_text("a change that was never released\n")
    git(work, "add", "NOTES.md")
    git(work, "commit", "--quiet", "-m", "docs: not released")
    unreleased = cicd(work, "deploy", "staging", env=env, check=False)
    git(work, "reset", "--quiet", "--hard", "HEAD~1")
    assert unreleased.returncode == 2 and "no release record for commit" in unreleased.stderr
    no_engine = cicd(work, "deploy", "staging", env={**env, "DOCKER_HOST": "tcp://127.0.0.1:9"}, check=False)
    assert no_engine.returncode == 2 and "no Docker engine answers" in no_engine.stderr
    assert _metadata(flow["ports"]["staging"])["image_digest"] == serving  # still serving


@pytest.fixture(scope="module")
def second(flow: dict[str, Any], first: dict[str, Any]) -> dict[str, Any]:
    """A second release, merged to main (not deployed)."""
    on(flow, "develop")
    git(flow["work"], "merge", "--quiet", "main")
    git(flow["work"], "commit", "--quiet", "--allow-empty", "-m", "fix: the second release")
    released = json_of(run(flow, "release"))
    # the first release ran its integration stage (asserted); this one only needs to reach main
    sign_passing_check(flow["work"], "integration", released["digest"], released["version"])
    run(flow, "merge")
    on(flow, "main")
    return {"digest": released["digest"], "version": released["version"]}


@pytest.fixture(scope="module")
def second_on_staging(flow: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    on(flow, "main")
    run(flow, "deploy", "staging")
    run(flow, "acceptance", "staging")
    return second


def test_a_promotion_while_another_holds_the_lock_is_refused_then_one_wins(
    flow: dict[str, Any], second_on_staging: dict[str, Any], engine: Engine
) -> None:
    """A promotion that starts while another deployment holds production's lock is refused: "in
    progress", nothing recorded, production unchanged. The holder is this test, through the lock a
    deploy takes (its heartbeat beating), so the two overlap for sure; two promotions started at
    once overlap only if the second reaches the lock in time, which a loaded machine does not
    promise (both once won, one after the other). Once the lock is free, the promotion wins."""
    on(flow, "main")
    run(flow, "promote", "qa")
    run(flow, "acceptance", "qa")
    before = len(_tags(flow, "deploy/production/"))
    serving = _metadata(flow["ports"]["production"])["image_digest"]
    config = load_config(flow["work"] / "cicd/pipeline.yaml", env={})
    held = DockerTarget(config, config.environments["production"], engine)._locked("trainyard/held-by:this-test")
    with held:
        refused = run(flow, "promote", "production", check=False)
    assert refused.returncode == 2 and "in progress" in refused.stderr, refused.stderr[-1500:]
    assert len(_tags(flow, "deploy/production/")) == before
    assert _metadata(flow["ports"]["production"])["image_digest"] == serving
    promoted = run(flow, "promote", "production")
    assert json_of(promoted)["version"] == second_on_staging["version"], promoted.stdout[-2000:]
    assert len(_tags(flow, "deploy/production/")) == before + 1
    assert git(flow["origin"], "rev-list", "-n1", "Production") == git(flow["origin"], "rev-list", "-n1", "QA")
    assert _metadata(flow["ports"]["production"])["image_digest"] == second_on_staging["digest"]


def test_rollback_redeploys_the_previous_digest(
    flow: dict[str, Any], first: dict[str, Any], second_on_staging: dict[str, Any], engine: Engine
) -> None:
    on(flow, "main")
    run(flow, "promote", "qa")  # "nothing to do" when another test did it already
    run(flow, "acceptance", "qa")
    run(flow, "promote", "production")
    assert _metadata(flow["ports"]["production"])["image_digest"] == second_on_staging["digest"]
    rolled = json_of(run(flow, "rollback", "production"))
    assert rolled["kind"] == "rollback" and rolled["digest"] == first["digest"]
    assert _metadata(flow["ports"]["production"])["image_digest"] == first["digest"]
    labels = {"io.trainyard.environment": "production", "io.trainyard.port": str(flow["ports"]["production"])}
    # behind production's proxy: the colour serving, the other one kept stopped; no strays, no lock
    found = sorted((c.labels.get("io.trainyard.role"), c.running) for c in engine.containers.find(labels))
    assert found == [("proxy", True), ("serving", False), ("serving", True)], found


def test_a_registry_that_is_down_leaves_the_environment_serving(
    flow: dict[str, Any], first: dict[str, Any], engine: Engine
) -> None:
    on(flow, "main")
    serving = _metadata(flow["ports"]["staging"])["image_digest"]
    registry: Registry = flow["registry"]
    # the other colour, kept stopped for a rollback, would start again without a pull: remove it
    labels = {"io.trainyard.environment": "staging", "io.trainyard.port": str(flow["ports"]["staging"])}
    for kept in engine.containers.find(labels):
        if kept.labels.get("io.trainyard.role") == "serving" and not kept.running:
            engine.containers.remove(kept.id)
    registry.stop()
    try:  # a deploy pulls by digest, even an image the engine has: the registry is the truth
        result = cicd(flow["work"], "deploy", "staging", env=flow["env"], check=False)
    finally:
        registry.restart()
    assert result.returncode == 2 and "cannot pull" in result.stderr, result.stderr
    assert _metadata(flow["ports"]["staging"])["image_digest"] == serving


def test_the_records_are_read_back_newest_first(flow: dict[str, Any], first: dict[str, Any]) -> None:
    from cicd.environments import deploy_records

    with Context(config=load_config(flow["work"] / "cicd/pipeline.yaml", env={}), root=flow["work"]) as ctx:
        records = deploy_records(ctx)
    times = [r.when() for r in records]
    assert times == sorted(times, reverse=True) and len(records) >= 3  # staging, qa, production


def _snapshot(flow: dict[str, Any], engine: Engine) -> dict[str, Any]:
    """Everything a write could change: refs (tags, notes, branches) here and in origin, the checkout,
    images and containers on the engine, and what the registry holds."""
    registry: Registry = flow["registry"]
    catalog = request_json(f"http://{registry.address}/v2/_catalog")[1]["repositories"]
    tags = {repo: request_json(f"http://{registry.address}/v2/{repo}/tags/list")[1]["tags"] for repo in catalog}
    source = git(flow["work"], "remote", "get-url", "origin")
    ours = [
        i
        for i in engine.client.api.images(all=True)
        if (i.get("Labels") or {}).get("org.opencontainers.image.source") == source
        or any(t.startswith(f"{registry.address}/") for t in i.get("RepoTags") or [])
    ]
    assert ours, f"no image from {source} on the engine: the snapshot would compare nothing"
    our_images, our_ports = {i["Id"] for i in ours}, {str(p) for p in flow["ports"].values()}

    def own(tag: str) -> bool:
        # a local name with a version (sample-ml:0.1.0-rc.1) is every flow's on this engine: another
        # module's release of that version moves it off ours meanwhile, and so does its build of
        # <name>:latest. Pushes and tags of a version show in this registry's names; commits' names
        # (sample-ml:<sha>) are this flow's alone.
        name = tag.rsplit(":", 1)[-1]
        return tag.startswith(f"{registry.address}/") or not (name == "latest" or semver.Version.is_valid(name))

    return {
        "refs": git(flow["work"], "for-each-ref", "--format=%(refname) %(objectname)"),
        "origin": git(flow["origin"], "for-each-ref", "--format=%(refname) %(objectname)"),
        "checkout": (
            git(flow["work"], "rev-parse", "--abbrev-ref", "HEAD"),
            git(flow["work"], "status", "--porcelain"),
        ),
        # the low-level lists: one API call each (the high-level ones inspect every image, and an
        # engine kept between CI runs holds hundreds); only this flow's, since other modules build
        # and run on the same engine meanwhile: images from this repository (their source label
        # names its origin) or tagged for its registry, and containers of those images or of its
        # environments' ports (the services, proxies and locks)
        "images": sorted((str(i["Id"]), tuple(sorted(t for t in i.get("RepoTags") or [] if own(t)))) for i in ours),
        "containers": sorted(
            (str(c["Id"]), str(c["State"]))
            for c in engine.client.api.containers(all=True)
            if c.get("ImageID") in our_images or (c.get("Labels") or {}).get("io.trainyard.port") in our_ports
        ),
        "registry": tags,
    }


def _moved(before: Any, after: Any) -> dict[str, Any]:
    """What went and what came, rather than two long values side by side."""

    def items(value: Any) -> set[str]:
        if isinstance(value, str):
            return set(value.splitlines())
        if isinstance(value, dict):
            return {f"{k}: {v}" for k, v in value.items()}
        return {repr(v) for v in value}

    old, new = items(before), items(after)
    return {"gone": sorted(old - new), "came": sorted(new - old)}


# Every row of the flow through `ci` (each session it runs is a `--dry-run <session>` of its own),
# plus the sessions no row runs here: merge, deploy to integration, promote to qa, rollback.
DRY_RUNS = {
    "develop": [
        ["ci", "--event", "push"],  # release (this commit's own, reused), integration (reused)
        ["--no-cache", "ci", "--event", "push"],  # both anew: what a release would write
        ["ci", "--event", "pull_request"],  # build, unit, lint
        ["merge"],
        ["deploy", "integration"],
    ],
    "main": [
        ["ci", "--event", "push"],  # deploy staging, acceptance staging
        ["ci", "--event", "manual"],  # promote production
        ["ci", "--event", "schedule"],  # retrain
        ["promote", "qa"],
        ["rollback", "staging"],
    ],
}
SESSIONS = {"build", "unit", "lint", "release", "integration", "merge", "deploy", "acceptance", "promote", "retrain"}


def test_dry_runs_change_nothing_anywhere(
    flow: dict[str, Any], first: dict[str, Any], second_on_staging: dict[str, Any], engine: Engine
) -> None:
    """``--dry-run`` for both CI rows and each session, in a flow with real state: byte for byte, nothing moves."""
    results = []
    for branch, commands in DRY_RUNS.items():
        on(flow, branch)
        for args in commands:
            before = _snapshot(flow, engine)
            result = cicd(flow["work"], "--dry-run", "--json", *args, env=flow["env"], check=False)
            after = _snapshot(flow, engine)
            changed = {k: _moved(before[k], after[k]) for k in before if before[k] != after[k]}
            assert not changed, f"--dry-run {' '.join(args)} on {branch} changed {changed}"
            results.append((branch, args, result))
    on(flow, "main")
    shown = "\n".join(f"{b} {' '.join(a)}: exit {r.returncode} {r.stderr[-300:]}" for b, a, r in results)
    assert all(r.returncode == 0 for _, _, r in results), shown
    assert all("Traceback" not in r.stderr for _, _, r in results), shown
    outputs = {(b, " ".join(a)): json.loads(r.stdout) for b, a, r in results}
    assert all(o["dry_run"] is True for o in outputs.values())
    sessions = {args[0] for _, args, _ in results if args[0] not in ("ci", "--no-cache")}
    for key, out in outputs.items():
        if key[1].removeprefix("--no-cache ").startswith("ci "):
            assert out["result"]["ok"] and out["result"]["steps"], out
            for step in out["result"]["steps"]:  # every session of the row ran, dry
                assert step["exit_code"] == 0 and step["result"]["dry_run"] is True, step
                sessions.add(step["result"]["command"])
    assert sessions >= SESSIONS, SESSIONS - sessions
    # develop's head is released already: a dry release reuses that record and would write nothing
    (reused,) = [s["result"] for s in outputs[("develop", "ci --event push")]["result"]["steps"]
                 if s["result"]["command"] == "release"]  # fmt: skip
    assert reused["result"]["reused"].startswith("v0.1.0-rc.") and reused["writes"] == [], reused
    # what a dry release would have written, said and not done
    (dry_release,) = [
        step["result"]
        for step in outputs[("develop", "--no-cache ci --event push")]["result"]["steps"]
        if step["result"]["command"] == "release"
    ]
    would = dry_release["writes"]
    assert any(w.startswith(f"[dry-run] build {SPEC.images.release}:") for w in would), would
    assert any(w.startswith("[dry-run] push ") and "credentials:" in w for w in would), would
    assert any(w.startswith("[dry-run] tag ") for w in would), would
    assert dry_release["result"]["released"] is False


def test_services_run_with_least_privilege(flow: dict[str, Any], first: dict[str, Any], engine: Engine) -> None:
    """Every deployed service: no capabilities, no privilege gain, a read-only root filesystem
    (a tmpfs /tmp), the spec's memory and process limits; and it still serves (acceptance passed)."""
    labels = {
        "io.trainyard.environment": "staging",
        "io.trainyard.port": str(flow["ports"]["staging"]),
        "io.trainyard.role": "serving",
    }
    (service,) = [c for c in engine.containers.find(labels) if c.running]
    host = engine.client.containers.get(service.id).attrs["HostConfig"]
    assert host["ReadonlyRootfs"] is True and host["CapDrop"] == ["ALL"], host
    assert "no-new-privileges:true" in host["SecurityOpt"] and "/tmp" in host["Tmpfs"]
    assert host["Memory"] == 1024**3 and host["PidsLimit"] == 256
    assert {r["environment"]: r for r in first["status"]}["staging"]["health"] == "healthy"


def _forge(flow: dict[str, Any], sign: list[str], *, rename: bool = False, reference: str | None = None) -> list[str]:
    """An attacker's newest qa deployment of another image, with a passing acceptance for it, on
    the commit QA names: what `promote production` would take. ``sign``: the ``git -c`` options
    that sign the tags ([] = unsigned). ``rename``: the deployment is a genuine signed staging
    record pushed again under a qa name. Returns the tags made."""
    from dataclasses import replace

    from cicd.environments import deploy_records
    from cicd.records import AcceptanceRecord, DeployRecord, now, stamp, timestamp

    work = flow["work"]
    with Context(config=load_config(work / "cicd/pipeline.yaml", env={}), root=work) as ctx:
        records = deploy_records(ctx)
    qa_commit = git(work, "rev-list", "-n1", "QA")
    genuine = next(r for r in records if r.environment == "qa" and r.commit == qa_commit)
    when = now()
    name = DeployRecord.tag_name("qa", when)
    if rename:
        staging = next(r for r in records if r.environment == "staging")
        git(work, "update-ref", f"refs/tags/{name}", git(work, "rev-parse", f"refs/tags/{staging.tag}"))
        deployed = replace(staging, tag=name)
    else:
        digest = "sha256:" + "e" * 64
        deployed = replace(
            genuine, digest=digest, reference=reference or f"{flow['registry'].address}/{RELEASE_NAME}@{digest}",
            time=timestamp(when), tag=name,
        )  # fmt: skip
        git(work, *sign, "tag", "-a", *(["-s"] if sign else []), "-m", deployed.to_message(), name, qa_commit)
    verdict = AcceptanceRecord(
        environment="qa", deploy_tag=name, digest=deployed.digest, commit=qa_commit, passed=True,
        time=timestamp(when), tests=12, complete=True, tag=f"accepted/qa/{stamp(when)}",
    )  # fmt: skip
    git(work, *sign, "tag", "-a", *(["-s"] if sign else []), "-m", verdict.to_message(), verdict.tag, qa_commit)
    return [name, verdict.tag]


def test_forged_records_are_refused_and_nothing_changes(
    flow: dict[str, Any], first: dict[str, Any], engine: Engine, tmp_path: Path
) -> None:
    """The forgery scenario of the security review, replayed: forged deploy and accepted tags with
    no key, signed by an unknown key, a signed tag renamed to another environment, and a record
    signed by an allowed key that names another registry. `promote production` refuses each."""
    from cicd.signing import new_key
    from tests.integration.conftest import signer

    on(flow, "main")
    stranger, _ = new_key(tmp_path / "stranger", "attacker@example.com")
    allowed_key = signer()[0]
    cases: dict[str, tuple[list[str], dict[str, Any], str]] = {
        "unsigned": ([], {}, "refusing to act on records that are unsigned"),
        "unknown key": (["-c", "gpg.format=ssh", "-c", f"user.signingkey={stranger}"], {}, "signed by a key not in"),
        "renamed": ([], {"rename": True}, "renamed since they were signed"),
        "foreign registry": (
            ["-c", "gpg.format=ssh", "-c", f"user.signingkey={allowed_key}"],
            {"reference": f"evil.example:5000/{RELEASE_NAME}@sha256:" + "e" * 64},
            f"refusing to pull 'evil.example:5000/{RELEASE_NAME}@sha256:",
        ),
    }
    serving = _metadata(flow["ports"]["production"])["image_digest"]
    for case, (sign, options, says) in cases.items():
        if options.get("rename"):  # the accepted record is signed properly; the deploy tag is not its own
            sign = ["-c", "gpg.format=ssh", "-c", f"user.signingkey={allowed_key}"]
        before = _snapshot(flow, engine)
        made = _forge(flow, sign, **options)
        try:
            result = cicd(flow["work"], "promote", "production", env=flow["env"], check=False)
            after = _snapshot(flow, engine)
        finally:
            git(flow["work"], "tag", "-d", *made)
        assert result.returncode == 2 and says in result.stderr, (case, result.stderr[-2000:])
        assert "Traceback" not in result.stderr
        assert after["origin"] == before["origin"] and after["containers"] == before["containers"], case
        assert _metadata(flow["ports"]["production"])["image_digest"] == serving, case


def test_an_old_qa_tag_pushed_again_promotes_nothing(
    flow: dict[str, Any], first: dict[str, Any], engine: Engine
) -> None:
    """The replay of the security review: qa's older deployment (of another commit, accepted) and
    its old QA tag, both genuinely signed, pushed back. `promote production` must not take it."""
    from dataclasses import replace
    from datetime import datetime, timedelta

    from cicd.environments import deploy_records
    from cicd.records import AcceptanceRecord, DeployRecord, stamp, timestamp
    from tests.integration.conftest import signer

    on(flow, "main")
    work, sign = flow["work"], ["-c", "gpg.format=ssh", "-c", f"user.signingkey={signer()[0]}"]
    with Context(config=load_config(work / "cicd/pipeline.yaml", env={}), root=work) as ctx:
        genuine = next(r for r in deploy_records(ctx) if r.environment == "qa")
    older, when = (
        git(work, "rev-parse", f"{genuine.commit}^"),
        datetime.fromisoformat(genuine.time) - timedelta(hours=1),
    )
    digest = "sha256:" + "e" * 64
    old = replace(
        genuine, commit=older, digest=digest, reference=f"{flow['registry'].address}/{RELEASE_NAME}@{digest}",
        time=timestamp(when), tag=DeployRecord.tag_name("qa", when),
    )  # fmt: skip
    verdict = AcceptanceRecord(
        environment="qa", deploy_tag=old.tag, digest=digest, commit=older, passed=True,
        time=timestamp(when + timedelta(minutes=1)), tests=12, complete=True, tag=f"accepted/qa/{stamp(when)}",
    )  # fmt: skip
    qa_tag = git(work, "rev-parse", "refs/tags/QA")
    before = _snapshot(flow, engine)
    git(work, *sign, "tag", "-s", "-m", old.to_message(), old.tag, older)
    git(work, *sign, "tag", "-s", "-m", verdict.to_message(), verdict.tag, older)
    git(work, *sign, "tag", "-s", "-f", "-m", f"qa: {old.version} {digest}\n", "QA", older)
    try:
        result = cicd(work, "promote", "production", env=flow["env"], check=False)
        after = _snapshot(flow, engine)
    finally:
        git(work, "tag", "-d", old.tag, verdict.tag)
        git(work, "update-ref", "refs/tags/QA", qa_tag)
    assert result.returncode == 2 and f"the QA tag names {older[:12]}" in result.stderr, result.stderr[-2000:]
    assert "newest deployment is" in result.stderr and "Traceback" not in result.stderr
    assert after["origin"] == before["origin"] and after["containers"] == before["containers"]


def test_a_real_prometheus_scrapes_staging_and_counts_what_was_sent(
    flow: dict[str, Any], first: dict[str, Any], tmp_path: Path
) -> None:
    """Debian's Prometheus scrapes the deployed staging service; a PromQL query over its HTTP API
    says how many predictions this test sent."""
    import shutil
    import urllib.parse

    from tests.integration.conftest import missing

    binary = shutil.which("prometheus")
    if binary is None:
        missing("prometheus is not installed (apt-get install prometheus)")
    assert binary is not None
    port, staging = free_port(), flow["ports"]["staging"]
    scraped = load_config(flow["work"] / "cicd/pipeline.yaml", env={}).environment("staging").metrics_bind
    # Not for the public: through the environment's own address /metrics is nginx's 404 (the
    # service answers it with 200); the scrape address serves /metrics and nothing else.
    assert request_json(f"http://127.0.0.1:{staging}/metrics")[0] == 404
    assert request_json(f"http://{scraped}/predict", {"records": [FIRST_ROW]})[0] == 404
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n"
        f"scrape_configs:\n  - job_name: staging\n    static_configs:\n      - targets: ['{scraped}']\n"
    )
    log = (tmp_path / "prometheus.log").open("w")
    server = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=log,
    )  # fmt: skip

    def value(query: str) -> float | None:
        """The query's single value, or None while Prometheus has none (not ready, not scraped yet)."""
        try:
            status, body = request_json(
                f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": query})
            )
        except ServiceError:
            return None
        result = body["data"]["result"] if status == 200 and isinstance(body, dict) else []
        return float(result[0]["value"][1]) if result else None

    def eventually(check: Any, what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} in {timeout} s:\n{(tmp_path / 'prometheus.log').read_text()[-2000:]}")
            time.sleep(0.5)

    counted = 'sum(http_requests_total{job="staging",route="/predict",status="200"}) or vector(0)'
    try:
        eventually(lambda: value('up{job="staging"}') == 1, "the staging target was not up")
        before = value(counted)
        assert before is not None
        sent = 17
        for _ in range(sent):
            status, body = request_json(f"http://127.0.0.1:{staging}/predict", {"records": [FIRST_ROW]})
            assert status == 200, body
        eventually(lambda: value(counted) == before + sent, f"Prometheus did not count {sent} more predictions")
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def test_the_largest_batch_the_service_takes_passes_the_proxy(flow: dict[str, Any], first: dict[str, Any]) -> None:
    """10,000 records, the service's most, in one request through production's proxy: over nginx's
    own 1 MiB body limit, which refused it with a 413 the service never saw; now the proxy's limit
    is the service's (6 MiB here). Production's log is read by no test; staging's is (drift)."""
    batch = {"records": [FIRST_ROW] * 10_000}
    assert len(json.dumps(batch)) > 1024 * 1024  # nginx's default limit would refuse it
    status, body = request_json(f"http://127.0.0.1:{flow['ports']['production']}/predict", batch, timeout=60)
    assert status == 200 and len(body["predictions"]) == 10_000, (status, str(body)[:300])


def test_drift_and_retrain_read_staging_s_prediction_log(flow: dict[str, Any], first: dict[str, Any]) -> None:
    """Staging logs what it is asked to a volume that outlives its containers; `drift --source
    staging` and `retrain --source staging` read that log against the model staging serves."""

    on(flow, "main")
    work, staging = flow["work"], flow["ports"]["staging"]
    shifted = new_batch(work / "notebooks/dummy_data/diabetes.csv", 300, seed=7, feature="bmi", shift=1.0)
    records = shifted.drop(columns="target").to_dict("records")
    earlier = run(flow, "drift", "--source", "staging", check=False)  # the rows logged so far, if any
    before = json_of(earlier)["rows"] if earlier.returncode == 0 else 0
    for chunk in (records[:150], records[150:]):
        status, body = request_json(f"http://127.0.0.1:{staging}/predict", {"records": chunk})
        assert status == 200, body
    # The service writes its log in the background: read it until our 300 rows are in it (the
    # module's tests run one after another, so no other test's requests come in meanwhile).
    deadline = time.monotonic() + 60
    while True:
        checked = json_of(run(flow, "drift", "--source", "staging"))
        if checked["rows"] >= before + 300 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert checked["rows"] >= before + 300, (before, checked)
    assert checked["drifted"] and "bmi" in checked["drifted_features"], checked
    assert (work / "artifacts/drift/staging/drift.md").is_file()

    # A redeploy replaces the container; the log stays with the environment.
    run(flow, "deploy", "staging")
    run(flow, "acceptance", "staging")  # what the next promotion needs, as before this test
    again = json_of(run(flow, "drift", "--source", "staging"))
    assert again["rows"] >= checked["rows"], (again, checked)

    # Retraining: drift from the log, the champion as staging serves it, labelled data to train on.
    # The labelled data is the training data itself, so the challenger cannot beat the champion.
    decided = json_of(run(flow, "retrain", "--source", "staging"))
    assert decided["outcome"] == "rejected" and decided["branch"] is None, decided
    decision = json.loads((work / "artifacts/retrain/decision.json").read_text())
    assert decision["details"]["drift"]["drifted"] and "prediction log" in decision["details"]["drift"]["source"]
    assert "is not at least 5% below the champion's" in decision["message"]

    for args, says in [
        (("drift", "--source", "integration"), "environment integration keeps no prediction log"),
        (("drift", "--source", "nowhere"), "--source must name an environment"),
        (("retrain", "--source", "staging", "--loader", "sql"), "do not apply to an environment's prediction log"),
    ]:
        refused = run(flow, *args, check=False)
        assert refused.returncode == 2 and says in refused.stderr, (args, refused.stderr[-1500:])
