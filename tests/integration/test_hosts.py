"""Environments on hosts of their own: staging on an engine behind TLS, production on one behind
SSH, each behind its own nginx, blue/green.

Both hosts are real ``dockerd`` processes that start empty; the release is built and pushed from
the CI's own engine and reaches them only through a real registry, by digest. Requests go to
the proxies' public addresses over real HTTP, continuously, while the flow deploys, promotes
and rolls back. The proxy's image is copied onto each host beforehand: it stands for the host's
own pull of the official nginx image, which cannot be pulled here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
import requests
from docker.errors import ImageNotFound

from cicd.config import PipelineConfig, load_config
from cicd.demo import discard_environments, use_free_ports
from cicd.deploy.base import Live
from cicd.deploy.docker_target import DockerTarget
from cicd.errors import EngineUnavailableError
from cicd.http import free_port
from cicd.images import Engine
from tests.integration.conftest import (
    Registry,
    cicd,
    git,
    make_project,
    missing,
    patient,
    sign_passing_check,
    toolkit_command,
    toolkit_env,
)
from tests.integration.engines import copy_image
from tests.integration.hosts import SSHHost, TLSHost, make_ca, sign, ssh_host, tls_host
from tests.integration.test_environments import json_of

pytestmark = pytest.mark.slow(seconds=600)  # left out by --fast; the estimate orders the workers


@dataclass
class Load:
    """GET the health path of each URL over and over, a new connection each time, until stopped:
    one request every ``interval`` seconds per URL at most (100 a second), dense enough that no
    switch goes unwatched; unpaced, each URL's loop took a whole CPU from the rest of the suite."""

    urls: list[str]
    verify: str | bool = True  # requests' verify: a CA file for a proxy that terminates TLS
    ok: int = 0
    failed: list[str] = field(default_factory=list)
    longest: float = 0.0
    interval: float = 0.01
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> Load:
        for url in self.urls:
            self._threads.append(threading.Thread(target=self._hit, args=(url,), daemon=True))
            self._threads[-1].start()
        return self

    def _hit(self, url: str) -> None:
        deadline = time.monotonic() + 900  # bounded, whatever happens to the test
        while not self._stop.is_set() and time.monotonic() < deadline:
            start = time.monotonic()
            try:
                status = requests.get(f"{url}/health", timeout=10, verify=self.verify).status_code
                problem = "" if status == 200 else f"{url}: HTTP {status}"
            except requests.RequestException as err:
                problem = f"{url}: {type(err).__name__}"
            self.longest = max(self.longest, time.monotonic() - start)
            if problem:
                self.failed.append(problem)
            else:
                self.ok += 1
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - start)))

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)

    def figures(self) -> dict[str, Any]:
        return {"requests": self.ok + len(self.failed), "failed": len(self.failed), "longest_s": round(self.longest, 3)}


def present(engine: Engine, reference: str) -> bool:
    """The host has the image ``repository@sha256:…`` (pulled by that digest)."""
    try:
        engine.client.images.get(reference)
    except ImageNotFound:
        return False
    return True


def _spec(work: Path, staging: TLSHost, production: SSHHost) -> dict[str, int]:
    """Staging on the TLS host (its address read from a variable), production on the SSH host; free
    ports for every public address and colour; edited as a user would (two lines), committed on
    develop."""
    spec = work / "cicd/pipeline.yaml"
    ports = use_free_ports(spec)
    patient(spec)
    text = spec.read_text()
    for name, host in (("staging", "$TEST_STAGING_HOST"), ("production", production.address)):
        line = f"  {name}:\n"
        found = text.count(line)
        text = text.replace(line, f"{line}    host: {host}\n")
        assert found == 1, name
    spec.write_text(text)
    git(work, "commit", "--quiet", "-am", "chore: staging and production on hosts of their own")
    git(work, "push", "--quiet", "origin", "develop")
    return ports


@pytest.fixture(scope="module")
def hosts(
    tmp_path_factory: pytest.TempPathFactory, engine: Engine, base_image: str, proxy_image: str, registry: Registry
) -> Iterator[dict[str, Any]]:
    # The session's registry (this module shares its worker with the session's release): the
    # layers already there are not compressed and pushed again; nothing here stops it.
    scratch = tmp_path_factory.mktemp("hosts")
    with ExitStack() as stack:
        try:
            staging = stack.enter_context(tls_host("staging", scratch))
            production = stack.enter_context(ssh_host("production", scratch))
        except EngineUnavailableError as err:
            missing(f"the hosts test needs two more engines, openssl and sshd: {err}")
        for host in (staging.extra, production.extra):
            copy_image(engine, host.engine, proxy_image)
        work, origin = make_project(scratch / "project")
        git(work, "checkout", "--quiet", "develop")
        ports = _spec(work, staging, production)
        env = {
            "TRAINYARD_BASE_IMAGE": base_image,
            "TRAINYARD_REGISTRY": registry.address,
            "TRAINYARD_PROXY_IMAGE": proxy_image,
            "TEST_STAGING_HOST": staging.address,
            "TRAINYARD_STAGING_TLS_CA": str(staging.client.ca),
            "TRAINYARD_STAGING_TLS_CERT": str(staging.client.cert),
            "TRAINYARD_STAGING_TLS_KEY": str(staging.client.key),
            "TRAINYARD_PRODUCTION_SSH_KEY": str(production.key),
            "TRAINYARD_PRODUCTION_SSH_KNOWN_HOSTS": str(production.known_hosts),
        }
        config = load_config(work / "cicd/pipeline.yaml", env={})
        yield {
            "work": work, "origin": origin, "env": env, "ports": ports, "config": config, "scratch": scratch,
            "staging": staging, "production": production, "registry": registry,
        }  # fmt: skip


def run(hosts: dict[str, Any], *args: str, env: dict[str, str] | None = None, check: bool = True) -> Any:
    return cicd(hosts["work"], "--json", *args, env={**hosts["env"], **(env or {})}, check=check)


def live(hosts: dict[str, Any], name: str) -> Live | None:
    """What ``name`` serves, asked of its host directly (the test's own socket to that engine)."""
    config: PipelineConfig = hosts["config"]
    engine = hosts[name].extra.engine
    return DockerTarget(config, config.environments[name], engine).live()


def url(hosts: dict[str, Any], name: str) -> str:
    return str(hosts["config"].environments[name].url)


def _origin_tags(hosts: dict[str, Any]) -> list[str]:
    return git(hosts["origin"], "tag", "-l").split()


def _release(hosts: dict[str, Any], message: str | None = None) -> dict[str, Any]:
    work = hosts["work"]
    git(work, "checkout", "--quiet", "develop")
    if message:
        git(work, "merge", "--quiet", "main")
        git(work, "commit", "--quiet", "--allow-empty", "-m", message)
    released = json_of(run(hosts, "release"))
    # its integration stage is the release flow's subject (test_release_flow), not a host's
    sign_passing_check(work, "integration", released["digest"], released["version"])
    run(hosts, "merge")
    git(work, "checkout", "--quiet", "main")
    git(work, "pull", "--quiet", "origin", "main")
    return dict(released)


@pytest.fixture(scope="module")
def story(hosts: dict[str, Any]) -> dict[str, Any]:
    """Two releases through staging (TLS host) and production (SSH host), the second one deployed,
    promoted and rolled back under load; what each step said and saw."""
    seen: dict[str, Any] = {}
    staging_engine, production_engine = hosts["staging"].extra.engine, hosts["production"].extra.engine
    first = _release(hosts)
    seen["first"] = first
    seen["on_staging_before"] = present(staging_engine, first["reference"])
    seen["deploy"] = json_of(run(hosts, "deploy", "staging"))
    seen["on_staging_after"] = present(staging_engine, first["reference"])
    seen["on_production_before"] = present(production_engine, first["reference"])
    run(hosts, "acceptance", "staging")
    seen["promote"] = json_of(run(hosts, "promote", "production"))
    seen["on_production_after"] = present(production_engine, first["reference"])
    seen["production_first"] = live(hosts, "production")
    second = _release(hosts, "fix: the second release")
    seen["second"] = second
    with Load([url(hosts, "staging"), url(hosts, "production")]) as load:
        seen["deploy2"] = json_of(run(hosts, "deploy", "staging"))
        run(hosts, "acceptance", "staging")
        seen["promote2"] = json_of(run(hosts, "promote", "production"))
        seen["production_second"] = live(hosts, "production")
        rolled = run(hosts, "rollback", "production")
        seen["rollback"], seen["rollback_log"] = json_of(rolled), rolled.stderr
        seen["production_rolled_back"] = live(hosts, "production")
    seen["load"] = load
    seen["status"] = json_of(run(hosts, "status"))
    return seen


def test_releases_reach_each_host_only_through_the_registry_by_digest(story: dict[str, Any]) -> None:
    first = story["first"]
    assert "@sha256:" in first["reference"]
    assert story["on_staging_before"] is False and story["on_staging_after"] is True
    assert story["on_production_before"] is False and story["on_production_after"] is True
    assert story["deploy"]["digest"] == story["promote"]["digest"] == first["digest"]


def test_deploy_promote_and_rollback_drop_no_request_through_the_proxy(
    story: dict[str, Any], record_property: Any
) -> None:
    load: Load = story["load"]
    figures = load.figures()
    record_property("load", figures)
    print(f"under load through the proxies during deploy, promote and rollback: {figures}")
    assert load.ok > 100, figures  # the load really ran through all three switches
    assert load.failed == [], (figures, load.failed[:10])
    second, first = story["second"], story["first"]
    assert story["deploy2"]["digest"] == story["promote2"]["digest"] == second["digest"] != first["digest"]
    before, after, back = story["production_first"], story["production_second"], story["production_rolled_back"]
    assert before.digest == first["digest"] and after.digest == second["digest"] and back.digest == first["digest"]
    assert {before.colour, after.colour} == {"blue", "green"}
    # the rollback started the colour kept stopped (the same container), pulling nothing
    assert back.colour == before.colour and back.detail == before.detail
    assert story["rollback"]["kind"] == "rollback" and "started again, nothing pulled" in story["rollback_log"]


def test_status_asks_each_host(story: dict[str, Any], hosts: dict[str, Any]) -> None:
    rows = {row["environment"]: row for row in story["status"]}
    assert rows["staging"]["host"] == "$TEST_STAGING_HOST" and rows["production"]["host"] == hosts["production"].address
    assert rows["staging"]["running"] == story["second"]["digest"]
    assert rows["production"]["running"] == story["first"]["digest"]
    for name in ("staging", "production"):
        assert rows[name]["health"] == "healthy" and rows[name]["colour"] in ("blue", "green")
        assert rows[name]["url"] == url(hosts, name)


def test_a_killed_deploy_leaves_the_old_colour_serving_and_the_next_deploy_recovers(
    story: dict[str, Any], hosts: dict[str, Any]
) -> None:
    engine = hosts["staging"].extra.engine
    before = live(hosts, "staging")
    assert before is not None
    tags = _origin_tags(hosts)
    command = toolkit_command(hosts["work"], "deploy", "staging")
    with Load([url(hosts, "staging")]) as load:
        deploy = subprocess.Popen(command, env=toolkit_env(hosts["env"]), cwd=hosts["work"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        deadline = time.monotonic() + 120
        # the worst moment: the new colour has started beside the old one, the switch not yet made
        while len([c for c in engine.client.containers.list() if c.labels.get("io.trainyard.role") == "serving"]) < 2:
            assert deploy.poll() is None and time.monotonic() < deadline, "the deploy ended before it could be killed"
            time.sleep(0.05)
        deploy.kill()
        deploy.wait()
        left = live(hosts, "staging")
    assert left is not None and (left.colour, left.digest) == (before.colour, before.digest)
    assert load.failed == [] and load.ok > 0, load.figures()
    assert _origin_tags(hosts) == tags  # nothing recorded
    locks = [c for c in engine.client.containers.list(all=True) if c.labels.get("io.trainyard.role") == "lock"]
    assert len(locks) == 1  # the killed deploy's lock, left behind
    recovered = run(hosts, "deploy", "staging")
    assert "recovered the lock" in recovered.stderr and "heartbeat stopped" in recovered.stderr
    after = live(hosts, "staging")
    assert after is not None and after.colour != before.colour and after.digest == before.digest
    assert not [c for c in engine.client.containers.list(all=True) if c.labels.get("io.trainyard.role") == "lock"]


def test_two_deploys_to_one_host_from_two_clones_have_one_winner(story: dict[str, Any], hosts: dict[str, Any]) -> None:
    second = hosts["scratch"] / "second-runner"
    git(hosts["scratch"], "clone", "--quiet", "--branch", "main", str(hosts["origin"]), str(second))
    before = [t for t in _origin_tags(hosts) if t.startswith("deploy/staging/")]
    results: dict[str, subprocess.CompletedProcess[str]] = {}

    def deploy(work: Path) -> None:
        results[str(work)] = cicd(work, "--json", "deploy", "staging", env=hosts["env"], check=False)

    threads = [threading.Thread(target=deploy, args=(w,)) for w in (hosts["work"], second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [r for r in results.values() if r.returncode == 0]
    losers = [r for r in results.values() if r.returncode != 0]
    assert len(winners) == 1 and len(losers) == 1, [(r.returncode, r.stderr[-600:]) for r in results.values()]
    refusal = [line for line in losers[0].stderr.splitlines() if line.startswith("error:")]
    assert len(refusal) == 1 and "another deployment to staging" in refusal[0] and "in progress" in refusal[0]
    after = [t for t in _origin_tags(hosts) if t.startswith("deploy/staging/")]
    assert len(after) == len(before) + 1


@pytest.mark.parametrize(
    ("case", "command", "changes", "said"),
    [
        ("a wrong TLS certificate", "staging", {"TRAINYARD_STAGING_TLS_CERT": "stranger.cert",
         "TRAINYARD_STAGING_TLS_KEY": "stranger.key"}, "the engine refused this client's certificate"),
        ("an unknown SSH host key", "production", {"TRAINYARD_PRODUCTION_SSH_KNOWN_HOSTS": "strangers"},
         "not found in known_hosts"),
        ("an unreachable host", "staging", {"TEST_STAGING_HOST": "closed"}, "no Docker engine answers at staging's"),
        ("a remote host without a registry", "staging", {"TRAINYARD_REGISTRY": ""},
         "gets releases only from a registry, by digest; set registry.url"),
    ],
)  # fmt: skip
def test_a_host_that_cannot_be_used_is_refused_in_one_line_and_nothing_changes(
    story: dict[str, Any], hosts: dict[str, Any], case: str, command: str, changes: dict[str, str], said: str
) -> None:
    staging, production = hosts["staging"], hosts["production"]
    values = {
        "stranger.cert": str(staging.stranger.cert), "stranger.key": str(staging.stranger.key),
        "strangers": str(production.strangers), "closed": f"tcp://127.0.0.1:{free_port()}",
    }  # fmt: skip
    env = {key: values.get(value, value) for key, value in changes.items()}
    tags = _origin_tags(hosts)
    serving = {name: live(hosts, name) for name in ("staging", "production")}
    refused = run(hosts, "deploy", command, env=env, check=False)
    assert refused.returncode == 2, (case, refused.stderr[-1500:])
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and said in errors[0], (case, refused.stderr[-1500:])
    assert _origin_tags(hosts) == tags
    assert {name: live(hosts, name) for name in ("staging", "production")} == serving


def test_the_demos_environments_on_the_hosts_are_its_own_and_gone_afterwards(
    story: dict[str, Any], hosts: dict[str, Any]
) -> None:
    """The README's main job with a spec that names the hosts: its throwaway staging and
    production run there on ports of their own (the demo's ``use_free_ports``), deployed as the
    story deploys, beside the real ones; the demo's clean-up (``discard_environments``) then
    reaches each host through its own access (TLS, SSH) and stops only the throwaway ones. The
    demo's whole flow runs in the newcomer and classifier tests; here, what a host adds to it."""
    spec = hosts["scratch"] / "demo" / "cicd" / "pipeline.yaml"
    spec.parent.mkdir(parents=True)
    shutil.copy(hosts["work"] / "cicd/pipeline.yaml", spec)
    ports = use_free_ports(spec)
    patient(spec)
    env = {**os.environ, **hosts["env"]}
    config = load_config(spec, env=env)
    first, engines = story["first"], {name: hosts[name].extra.engine for name in ("staging", "production")}
    real = {name: live(hosts, name) for name in engines}

    def ports_on(name: str) -> set[str | None]:
        return {c.labels.get("io.trainyard.port") for c in engines[name].client.containers.list(all=True)}

    for name, engine in engines.items():
        throwaway = DockerTarget(config, config.environments[name], engine)
        served = throwaway.deploy(first["reference"], first["reference"], first["digest"], first["version"], "demo")
        assert served.healthy and requests.get(f"{config.environments[name].url}/health", timeout=10).ok
        assert ports_on(name) == {str(hosts["ports"][name]), str(ports[name])}  # both, side by side
    discard_environments(config, hosts["work"], env)
    for name in engines:
        assert ports_on(name) == {str(hosts["ports"][name])}  # the real one's containers only
        assert live(hosts, name) == real[name]  # and it serves as before


def test_a_host_that_restarts_its_containers_serves_the_colour_of_the_last_switch(
    story: dict[str, Any], hosts: dict[str, Any]
) -> None:
    """As after a reboot: the engine restarts the proxy (and the serving colour); the proxy reads
    the config the last switch wrote to its volume, not the one it was created with."""
    engine = hosts["production"].extra.engine
    before = live(hosts, "production")
    assert before is not None
    for container in engine.client.containers.list():
        if container.labels.get("io.trainyard.role") in ("proxy", "serving"):
            container.restart(timeout=5)
    deadline = time.monotonic() + 60
    while (now := live(hosts, "production")) is None or not now.healthy:
        assert time.monotonic() < deadline, "production did not come back after its containers restarted"
        time.sleep(0.5)
    assert (now.colour, now.digest) == (before.colour, before.digest)
    policies = {c.labels.get("io.trainyard.role"): c.attrs["HostConfig"]["RestartPolicy"]["Name"]
                for c in engine.client.containers.list()}  # fmt: skip
    assert policies == {"proxy": "unless-stopped", "serving": "unless-stopped"}


def test_the_proxy_terminates_tls_with_the_environments_certificate(
    released_flow: dict[str, Any], engine: Engine, proxy_image: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``tls: true``: the proxy serves HTTPS with the certificate and key its variables hold (one as
    text, one as a path), switches colours under HTTPS load with nothing failed, and plain HTTP to
    that address gets no service."""
    ca = make_ca(tmp_path, "site-ca")
    site = sign(tmp_path, ca, "site", "serverAuth")
    config = load_config(released_flow["work"] / "cicd/pipeline.yaml", env={"TRAINYARD_PROXY_IMAGE": proxy_image})
    env = replace(
        config.environments["staging"], name="tls", port=free_port(), proxy=True, tls=True,
        service_ports=(free_port(), free_port()), prediction_log=None,
    )  # fmt: skip
    monkeypatch.setenv("TRAINYARD_TLS_PROXY_CERT", site.cert.read_text())
    monkeypatch.setenv("TRAINYARD_TLS_PROXY_KEY", str(site.key))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca[0]))  # the toolkit's own health checks trust the site's CA
    target = DockerTarget(config, env, engine)
    image = released_flow["record"]["image"]
    try:
        target.deploy("tls", image, "sha256:first", "1", "tls")
        assert env.url == f"https://127.0.0.1:{env.port}"
        with Load([env.url], verify=str(ca[0])) as load:
            switched = target.deploy("tls", image, "sha256:second", "2", "tls")
        assert load.failed == [] and load.ok > 20, load.figures()
        assert requests.get(f"{env.url}/health", timeout=10, verify=str(ca[0])).status_code == 200
        assert switched.colour == "green"
        plain = requests.get(f"http://{env.address}/health", timeout=10)
        assert plain.status_code == 400  # nginx: "The plain HTTP request was sent to HTTPS port"
    finally:
        target.discard()
