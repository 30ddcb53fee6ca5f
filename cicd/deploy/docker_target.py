"""The ``docker`` target: an environment's service containers on its Docker engine.

A *proxied* environment (``proxy: true``, and every environment on a remote ``host``) is served by
an nginx container (:mod:`cicd.deploy.proxy`) that owns the public address (``bind``) and sends
requests to one of two colours, each a service container on its own loopback port
(``service_ports``). A deploy starts the new release as the other colour, waits until it answers
its health check from inside the host, then reloads the proxy onto it (a graceful reload: no
request fails) and checks the public URL. The old colour is stopped, not removed: ``rollback``
to it starts it again and switches back, with nothing pulled (if it was started with the
settings a new one would get; a changed setting starts a new container). If the switch's public check
fails, the proxy goes back to the old colour.

An environment without a proxy runs one container that binds ``127.0.0.1:<port>``. A deploy first starts the
new release on a spare port and waits for its health check, so a release that never becomes
healthy never touches the one serving. Then it stops the old container (kept, not removed),
starts the new one on the environment's port and checks it again; if that fails, the old
container is started again. Only when the new one is healthy is the old one removed. The swap
leaves a gap of a few seconds (one service start) on the port; a proxy in front closes it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path

from cicd.config import Environment, PipelineConfig
from cicd.deploy.base import Live
from cicd.deploy.lock import host_lock
from cicd.deploy.proxy import Proxy
from cicd.errors import (
    ContainerError,
    DeployError,
    HealthCheckError,
    PortInUseError,
    PredictionLogError,
)
from cicd.http import free_port, wait_healthy
from cicd.images import Container, Engine

log = logging.getLogger(__name__)
Probe = Callable[[str, float, Callable[[], bool] | None], bool]
LABEL = "io.trainyard"
LOG_DIR = "/var/lib/predictions"  # where the service container mounts its prediction-log volume
LOG_FILE = "predictions.sqlite"
METADATA = "/opt/model/metadata.json"  # the served bundle's (cicd/release/docker/Dockerfile)
# Run in the serving release's own image, the log's volume mounted read-only: SQLite's online
# backup gives a consistent copy while the service goes on writing.
_EXPORT = f"""
import os, sqlite3, sys
src = "{LOG_DIR}/{LOG_FILE}"
if not os.path.exists(src):
    sys.exit("no prediction log yet: the service has logged no prediction")
os.makedirs("/tmp/export", exist_ok=True)
with sqlite3.connect(f"file:{{src}}?mode=ro", uri=True) as a, sqlite3.connect("/tmp/export/{LOG_FILE}") as b:
    a.backup(b)
"""
LOCK_WAIT = "TRAINYARD_LOCK_WAIT"  # seconds a deploy waits for a live one to finish (default 0: refused at once)


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


# Run inside a service's container by ``python -c INSIDE_PROBE URL SECONDS``: exit 0 once URL
# answers 200, 1 when SECONDS are up (the exec ends with the container if that stops first).
INSIDE_PROBE = """\
import sys, time, urllib.request
url, deadline = sys.argv[1], time.monotonic() + float(sys.argv[2])
while True:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            if answer.status == 200:
                sys.exit(0)
    except OSError:
        pass
    if time.monotonic() > deadline:
        sys.exit(1)
    time.sleep(0.1)
"""


class DockerTarget:
    def __init__(self, config: PipelineConfig, env: Environment, engine: Engine, probe: Probe = wait_healthy) -> None:
        """``probe(url, timeout, is_alive)``: True once ``url`` answers 200 (a real HTTP poll by default)."""
        self.config, self.env, self.engine, self.probe = config, env, engine, probe

    def _labels(self) -> dict[str, str]:
        # The port is part of the identity: two checkouts of one project on one engine (say, the
        # test suite beside your own staging) never touch each other's containers.
        return {
            f"{LABEL}.project": self.config.project,
            f"{LABEL}.environment": self.env.name,
            f"{LABEL}.port": str(self.env.port),
        }

    def _service_env(self, port: int, digest: str, version: str, commit: str) -> dict[str, str]:
        return {
            **{str(k): str(v) for k, v in self.env.service_env.items()},
            "SERVICE_HOST": "127.0.0.1",
            "SERVICE_PORT": str(port),
            "IMAGE_DIGEST": digest,
            "SERVICE_VERSION": version,
            "GIT_COMMIT": commit,
        }

    def _serving(self) -> list[Container]:
        return [c for c in self.engine.containers.find(self._labels()) if c.labels.get(f"{LABEL}.role") == "serving"]

    def _proxy(self) -> Proxy:
        return Proxy(self.config, self.env, self.engine, self._labels())

    def _colour_containers(self, colour: str) -> list[Container]:
        return [c for c in self._serving() if c.labels.get(f"{LABEL}.colour") == colour]

    def live(self) -> Live | None:
        colour = self._proxy().colour() if self.env.proxied else None
        if self.env.proxied:
            running = [c for c in self._colour_containers(colour) if c.running] if colour else []
        else:
            running = [c for c in self._serving() if c.running]
        if not running:
            return None
        labels = running[0].labels
        return Live(
            environment=self.env.name,
            reference=str(labels.get(f"{LABEL}.reference", "")),
            digest=str(labels.get(f"{LABEL}.digest", "")),
            version=str(labels.get(f"{LABEL}.version", "")),
            url=self.env.url,
            healthy=self.probe(f"{self.env.url}{self.env.health_path}", 3, None),
            detail=running[0].name,
            colour=colour or "",
            host=self.engine.where,
        )

    def _container(
        self, port: int, digest: str, version: str, commit: str
    ) -> tuple[dict[str, str], dict[str, str], str]:
        """The service container's environment, volumes and a fingerprint of all it is started with
        (environment, volumes, memory, processes): a kept colour is started again only if its
        fingerprint is what a new container would get, so a changed setting is never skipped."""
        env = self._service_env(port, digest, version, commit)
        volumes = {}
        logged = self.env.prediction_log
        if logged is not None:  # a named volume per environment: it outlives every container
            volumes[self.log_volume()] = LOG_DIR
            env |= {
                "SERVICE_PREDICTION_LOG": f"sqlite:///{LOG_DIR}/{LOG_FILE}",
                "SERVICE_PREDICTION_LOG_SAMPLE": str(logged.sample),
                "SERVICE_PREDICTION_LOG_MAX_ROWS": str(logged.max_rows),
                "SERVICE_PREDICTION_LOG_MAX_AGE_DAYS": str(logged.max_age_days),
            }
        shape = {"env": env, "volumes": volumes, "memory": self.env.memory, "pids": self.env.pids}
        fingerprint = hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:16]
        return env, volumes, fingerprint

    def _start(
        self, image: str, port: int, role: str, digest: str, version: str, commit: str, reference: str, colour: str = ""
    ) -> str:
        name = f"trainyard-{self.config.project}-{self.env.name}-{colour or role}-{uuid.uuid4().hex[:8]}"
        env, volumes, fingerprint = self._container(port, digest, version, commit)
        labels = {
            **self._labels(),
            f"{LABEL}.role": role,
            f"{LABEL}.colour": colour,
            f"{LABEL}.digest": digest,
            f"{LABEL}.version": version,
            f"{LABEL}.commit": commit,
            f"{LABEL}.reference": reference,
            f"{LABEL}.settings": fingerprint,
            f"{LABEL}.started": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        return self.engine.containers.start_service(
            image, name, env, labels=labels, memory=self.env.memory, pids=self.env.pids, volumes=volumes
        )

    def log_volume(self) -> str:
        """The named volume that holds this environment's prediction log (the port is part of its
        identity, as of the containers': a test suite's staging never writes into yours)."""
        return f"trainyard-{self.config.project}-{self.env.name}-{self.env.port}-predictions"

    def export_log(self, dest: Path) -> Path:
        """Copy the prediction log, and the metadata of the model that answered it, out of the
        environment: ``dest/predictions.sqlite`` and ``dest/metadata.json``. Read-only for it."""
        running = [c for c in self._serving() if c.running]
        if not running:
            raise PredictionLogError(
                f"nothing is deployed to {self.env.name}, so it has no prediction log to read; "
                f"deploy it first (`nox -s deploy -- {self.env.name}`)"
            )
        image = running[0].image
        if not image.startswith("sha256:"):
            raise PredictionLogError(f"the engine did not say which image {running[0].name} runs ({image!r})")
        for old in (dest / LOG_FILE, dest / Path(METADATA).name):
            old.unlink(missing_ok=True)
        result = self.engine.containers.run(
            image,
            ["python", "-c", _EXPORT],
            volumes={self.log_volume(): LOG_DIR},
            copy_out={"/tmp/export": dest, METADATA: dest},  # noqa: S108  # nosec B108
            timeout=600,
            reads_only=True,
        )
        if result.exit_code != 0:
            raise PredictionLogError(
                f"could not copy {self.env.name}'s prediction log out of volume {self.log_volume()}: "
                + (result.log_tail[-1] if result.log_tail else f"exit {result.exit_code}")
            )
        return dest / LOG_FILE

    def _healthy(self, cid: str, port: int) -> bool:
        start = time.monotonic()
        url = f"http://127.0.0.1:{port}{self.env.health_path}"
        healthy = self.probe(url, self.env.health_timeout, lambda: self.engine.containers.running(cid))
        state = "healthy" if healthy else "not healthy"
        log.info("health wait: %.2f s on port %d (%s)", time.monotonic() - start, port, state)
        return healthy

    def _answers_inside(self, cid: str, port: int) -> bool:
        """Poll the health path from inside the container (the host's loopback, which a deployer on
        another machine cannot reach) until it answers 200, the container stops, or the time is up.

        One exec whose Python polls in a loop: an exec per poll cost a container process start
        (runc) and a Python start each, about 0.3 CPU-seconds, every 0.3 s, while the service
        itself was starting. The URL and the time limit are arguments, never pasted into the code."""
        probe = ["python", "-c", INSIDE_PROBE, f"http://127.0.0.1:{port}{self.env.health_path}",
                 str(self.env.health_timeout)]  # fmt: skip
        start = time.monotonic()
        if not self.engine.containers.running(cid):
            return False
        healthy = self.engine.containers.execute(cid, probe, reads_only=True)[0] == 0
        state = "healthy" if healthy else "not healthy"
        log.info("health wait: %.2f s on the host's port %d (%s)", time.monotonic() - start, port, state)
        return healthy

    def has(self, digest: str) -> bool:
        """A stopped colour of this environment runs ``digest``: a deploy of it needs no image pulled."""
        if not self.env.proxied:
            return False
        live = self._proxy().colour()
        return any(self._runs(c, digest) and c.labels.get(f"{LABEL}.colour") != live for c in self._serving())

    def _runs(self, container: Container, digest: str) -> bool:
        """The container runs ``digest``: its label says so and its image is that release by the
        engine's own account (:meth:`Images.runs_digest`), where CI jobs sharing an engine with
        the environment could have left a container with any labels."""
        return (
            container.labels.get(f"{LABEL}.digest") == digest
            and bool(container.image)
            and self.engine.images.runs_digest(container.image, digest)
        )

    def deploy(self, reference: str, image: str, digest: str, version: str, commit: str) -> Live:
        if not self.engine.writes.allow(f"run {reference} as {self.env.name} on {self.env.address}"):
            return Live(self.env.name, reference, digest, version, self.env.url, healthy=False, detail="dry run")
        with self._locked(image):
            if self.env.proxied:
                return self._switch(reference, image, digest, version, commit)
            return self._deploy(reference, image, digest, version, commit)

    def _locked(self, image: str) -> AbstractContextManager[None]:
        """One deployment per environment at a time, by a lock on its host (:mod:`cicd.deploy.lock`)."""
        if not self.engine.images.exists(image):  # a colour started again: lock with the image it runs
            image = next((c.image for c in self._serving() if c.image), image)
        wait = float(os.environ.get(LOCK_WAIT) or 0)
        name = f"trainyard-{self.config.project}-{self.env.name}-{self.env.port}-lock"
        return host_lock(self.engine, name, image, self._labels(), f"{self.env.name} on {self.engine.where}", wait)

    def _switch(self, reference: str, image: str, digest: str, version: str, commit: str) -> Live:
        """Blue/green behind the proxy: the other colour starts, proves healthy, then takes the traffic."""
        engine, env, proxy = self.engine, self.env, self._proxy()
        proxy.tls_files()  # a missing certificate is said before anything changes
        old = proxy.colour()
        new = "green" if old == "blue" else "blue"
        port = env.colours[new]
        what = f"{version} ({digest[:19]})"
        # 1. The new colour: the stopped one again if it ran this digest with these settings (a
        # rollback), else a new one.
        settings = self._container(port, digest, version, commit)[2]
        same = [c for c in self._colour_containers(new) if self._runs(c, digest)]
        kept = [c for c in same if c.labels.get(f"{LABEL}.settings") == settings]
        if same and not kept and same[0].image.startswith("sha256:"):
            image = same[0].image  # the digest is here (nothing to pull), but not with these settings
            log.info("%s: the kept %s container of %s has other settings: a new one starts", env.name, new, what)
        for stale in self._colour_containers(new):
            if not kept or stale.id != kept[0].id:
                engine.containers.remove(stale.id)
        if kept:
            cid = kept[0].id
            log.info("%s: the kept %s container runs %s: started again, nothing pulled", env.name, new, what)
            if not kept[0].running:
                engine.containers.start(cid)
        else:
            cid = self._start(image, port, "serving", digest, version, commit, reference, colour=new)
        if not self._answers_inside(cid, port):
            tail = engine.containers.logs_tail(cid)
            engine.containers.remove(cid)
            raise HealthCheckError(what, f"{env.health_path} on the host's port {port}", env.health_timeout, tail,
                                   restored=old is not None)  # fmt: skip
        # 2. The switch: a graceful reload; then the public address must answer as the new release.
        # A container of this environment from before it had a proxy holds the address: it stops
        # (kept) just before the proxy starts, and starts again if the proxy cannot.
        direct = [c for c in self._serving() if c.running and not c.labels.get(f"{LABEL}.colour")]
        direct = direct if old is None else []
        for c in direct:
            engine.containers.stop(c.id, keep=True)
        try:
            proxy.send_to(new)
        except DeployError:
            if not kept:
                engine.containers.remove(cid)
            for c in direct:
                engine.containers.start(c.id)
            raise
        if not self.probe(f"{env.url}{env.health_path}", env.health_timeout, None):
            tail = engine.containers.logs_tail(cid)
            if old is not None:
                proxy.send_to(old)
            else:  # the first switch: the proxy goes, and what held the address before it comes back
                proxy.remove()
                for c in direct:
                    engine.containers.start(c.id)
            if kept:
                engine.containers.stop(cid, keep=True)
            else:
                engine.containers.remove(cid)
            raise HealthCheckError(what, f"{env.url}{env.health_path}", env.health_timeout, tail,
                                   restored=old is not None or bool(direct))  # fmt: skip
        # 3. The new colour outlives a reboot, as the proxy does; the old one stops and stays, for a
        # rollback without a pull (stopped, it stays stopped after a reboot); strays of a killed deploy go.
        engine.containers.keep_running(cid)
        for other in self._serving():
            if other.id == cid:
                continue
            if other.labels.get(f"{LABEL}.colour") == old and other.running:
                engine.containers.stop(other.id, keep=True)
            elif other.labels.get(f"{LABEL}.colour") not in ("blue", "green"):
                engine.containers.remove(other.id)
        log.info("%s: %s now serves %s through the proxy at %s", env.name, new, what, env.address)
        return Live(env.name, reference, digest, version, env.url, healthy=True, detail=cid, colour=new,
                    host=engine.where)  # fmt: skip

    def _deploy(self, reference: str, image: str, digest: str, version: str, commit: str) -> Live:
        engine, env = self.engine, self.env
        serving = self._serving()
        running = [c for c in serving if c.running]
        if not running and not port_is_free(env.port):
            raise PortInUseError(
                f"port {env.port} of environment {env.name} is taken by another program; free it or set "
                f"environments.{env.name}.port in cicd/pipeline.yaml to a free one"
            )
        # 1. The candidate proves it can start and serve, on a spare port, beside the old one.
        spare = free_port()
        candidate = self._start(image, spare, "candidate", digest, version, commit, reference)
        try:
            if not self._healthy(candidate, spare):
                raise HealthCheckError(
                    f"{version} ({digest[:19]})",
                    f"{env.health_path} on a trial port",
                    env.health_timeout,
                    engine.containers.logs_tail(candidate),
                    restored=False,
                )
        finally:
            engine.containers.remove(candidate)
        # 2. Swap: stop (keep) the old one, start the new one on the environment's port.
        for old in running:
            engine.containers.stop(old.id, keep=True)
        new = self._start(image, env.port, "serving", digest, version, commit, reference)
        if not self._healthy(new, env.port):
            tail = engine.containers.logs_tail(new)
            engine.containers.remove(new)
            restored = False
            for old in running:
                engine.containers.start(old.id)
                restored = self._healthy(old.id, env.port)
            raise HealthCheckError(
                f"{version} ({digest[:19]})", f"{env.url}{env.health_path}", env.health_timeout, tail, restored=restored
            )
        # 3. Retire every other container of this environment (the old one, strays of a killed deploy).
        for other in serving:
            if other.id != new:
                engine.containers.remove(other.id)
        for stray in engine.containers.find({**self._labels(), f"{LABEL}.role": "candidate"}):
            engine.containers.remove(stray.id)
        return Live(env.name, reference, digest, version, env.url, healthy=True, detail=new)

    def stop(self) -> None:
        """Stop and remove the environment's containers (and its proxy); its prediction log stays."""
        self._proxy().remove()
        for c in self._serving():
            try:
                self.engine.containers.stop(c.id)
            except ContainerError:
                self.engine.containers.remove(c.id)

    def discard(self) -> None:
        """Take a throwaway environment down for good (demo, tests, drills): containers and log."""
        self.stop()
        if self.env.prediction_log is not None:
            self.engine.containers.remove_volume(self.log_volume())
