"""Environments on hosts: what the proxy adds to a request, how long a promotion to a host over
SSH takes, and the longest request while a switch happens.

    python -m benchmarks.hosts --image trainyard/sample-ml:0.1.0 [--requests 1000] [--output DIR]

(``nox -s bench`` runs it on the release it builds.) Needs what ``.ci/run`` installs: root,
``dockerd``, ``sshd``, ``docker-registry`` and the proxy's image (``TRAINYARD_PROXY_IMAGE``).

1. The proxy's cost: the release as a proxied environment on this engine; ``--requests`` GETs of
   ``/health`` through the proxy and as many straight to the serving colour's port, alternating,
   each side on one kept-alive connection; p50 and p99 of each and their difference.
2. Promotion to a host: a registry and an empty engine behind ``sshd`` (as the hosts test
   makes them). The release is pushed from this engine; the promotion (the host pulls it by
   digest over SSH, then starts it behind a new proxy) is timed. Then a second switch on that
   host, under continuous requests on new connections: its seconds, the longest request and how
   many failed.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

from benchmarks.common import prepare
from cicd.config import Environment, PipelineConfig, load_config
from cicd.deploy.docker_target import DockerTarget
from cicd.errors import run_cli
from cicd.http import free_port
from cicd.images import Engine
from cicd.images.hosts import host_access

ROOT = Path(__file__).resolve().parents[1]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _environment(config: PipelineConfig, host: str | None = None) -> Environment:
    return replace(
        config.environments["staging"], name="bench", port=free_port(), proxy=True, host=host,
        service_ports=(free_port(), free_port()), prediction_log=None, tag=None,
    )  # fmt: skip


def _get(conn: http.client.HTTPConnection) -> float:
    start = time.perf_counter()
    conn.request("GET", "/health")
    response = conn.getresponse()
    response.read()
    if response.status != 200:
        raise RuntimeError(f"/health answered {response.status}")
    return (time.perf_counter() - start) * 1000


def proxy_cost(engine: Engine, config: PipelineConfig, image: str, requests: int) -> dict[str, float]:
    env = _environment(config)
    target = DockerTarget(config, env, engine)
    try:
        live = target.deploy("bench", image, "sha256:bench", "bench", "bench")
        colour = env.colours[live.colour]
        through = http.client.HTTPConnection("127.0.0.1", env.port, timeout=10)
        direct = http.client.HTTPConnection("127.0.0.1", colour, timeout=10)
        for _ in range(50):  # warm both paths
            _get(through), _get(direct)
        proxied, straight = [], []
        for _ in range(requests):
            proxied.append(_get(through))
            straight.append(_get(direct))
        through.close()
        direct.close()
    finally:
        target.discard()
    p50, p99 = _percentile(proxied, 0.5), _percentile(proxied, 0.99)
    d50, d99 = _percentile(straight, 0.5), _percentile(straight, 0.99)
    return {"proxy_p50_ms": p50, "proxy_p99_ms": p99, "direct_p50_ms": d50, "direct_p99_ms": d99,
            "added_p50_ms": p50 - d50, "added_p99_ms": p99 - d99}  # fmt: skip


def promotion(engine: Engine, config: PipelineConfig, image: str, proxy_image: str) -> dict[str, float]:
    from tests.integration.conftest import start_registry
    from tests.integration.engines import copy_image
    from tests.integration.hosts import ssh_host

    scratch = Path(tempfile.mkdtemp(prefix="trainyard-bench-hosts-"))
    registry = start_registry(scratch / "registry")
    try:
        with ssh_host("bench-host", scratch) as host:
            copy_image(engine, host.extra.engine, proxy_image)  # the host's own pull of the official image
            repository = f"{registry.address}/bench"
            engine.images.tag(image, repository, "bench")
            reference = engine.registry.push(repository, "bench", None)
            digest = reference.split("@", 1)[1]
            environ = {
                "TRAINYARD_BENCH_SSH_KEY": str(host.key),
                "TRAINYARD_BENCH_SSH_KNOWN_HOSTS": str(host.known_hosts),
            }
            env = _environment(config, host.address)
            start = time.perf_counter()
            with Engine(access=host_access("bench", host.address, environ)) as remote:
                pulled = remote.registry.pull(reference, None)
                target = DockerTarget(config, env, remote)
                target.deploy(reference, pulled, digest, "1", "bench")
                promote_s = time.perf_counter() - start
                load = _Load(env.url)
                with load:
                    start = time.perf_counter()
                    target.deploy(reference, pulled, digest + "-again", "2", "bench")  # the other colour
                    switch_s = time.perf_counter() - start
                    time.sleep(1)  # and a second after it
                target.discard()
            engine.images.remove(f"{repository}:bench")
    finally:
        registry.stop()
    return {"promote_s": promote_s, "switch_s": switch_s, "switch_longest_ms": load.longest * 1000,
            "switch_requests": load.ok + load.failed, "switch_failed": load.failed}  # fmt: skip


class _Load:
    """GET /health on new connections, as fast as one client can, until the block ends."""

    def __init__(self, url: str) -> None:
        self.host, self.port = url.removeprefix("http://").split(":")
        self.ok = self.failed = 0
        self.longest = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            start = time.perf_counter()
            try:
                conn = http.client.HTTPConnection(self.host, int(self.port), timeout=10)
                _get(conn)
                conn.close()
                self.ok += 1
            except (OSError, RuntimeError, http.client.HTTPException):
                self.failed += 1
            self.longest = max(self.longest, time.perf_counter() - start)

    def __enter__(self) -> _Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=15)


def measure(engine: Engine, image: str, requests: int = 1000) -> dict[str, float]:
    config = load_config(ROOT / "cicd" / "pipeline.yaml")
    return {**proxy_cost(engine, config, image, requests), **promotion(engine, config, image, config.images.proxy)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", required=True, help="a release image on this engine")
    parser.add_argument("--requests", type=int, default=1000, help="requests each way for the proxy's cost")
    parser.add_argument("--output", type=Path, default=ROOT / "artifacts" / "benchmarks")
    args = parser.parse_args(argv)
    with prepare(args.output) as engine:
        figures = measure(engine, args.image, args.requests)
    (args.output / "hosts.json").write_text(json.dumps(figures, indent=2) + "\n")
    json.dump(figures, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
