"""The deployment lock on an environment's own host, so that runners on other machines see it.

The lock is a container that is created and never started, named for the environment: the
engine refuses a second container of that name, which makes taking it atomic across every
machine that deploys there. Its labels say who holds it. While the deploy runs, a thread writes
a counter into it every :data:`BEAT` seconds.

Another deploy that finds the lock watches the counter. If it moves, a deploy is running: the
newcomer waits up to ``wait`` seconds (``TRAINYARD_LOCK_WAIT``; default 0) for it to finish and
is then refused with a message naming the holder. If it has not moved for :data:`STALE` seconds,
the deploy that held it died: the lock is removed (by its id, so two recoverers cannot remove
each other's new lock) with a warning that says whose it was, and the newcomer takes it. No
clock is compared across machines.
"""

from __future__ import annotations

import getpass
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from cicd.errors import CICDError, DeployLockedError
from cicd.images import Container, Engine

log = logging.getLogger(__name__)
LABEL = "io.trainyard"
BEAT = 0.5  # seconds between the holder's heartbeats
STALE = 10.0  # a heartbeat that has not moved for this long: the holder is gone
BEAT_FILE = "/trainyard-heartbeat"


def _holder(container: Container) -> str:
    labels = container.labels
    return (
        f"{labels.get(f'{LABEL}.lock.who', '?')} on {labels.get(f'{LABEL}.lock.machine', '?')} "
        f"(pid {labels.get(f'{LABEL}.lock.pid', '?')}, since {labels.get(f'{LABEL}.lock.since', '?')})"
    )


@contextmanager
def host_lock(engine: Engine, name: str, image: str, labels: dict[str, str], what: str, wait: float) -> Iterator[None]:
    """Hold the lock ``name`` on ``engine`` for the block (``image``: any image the host has)."""
    mine = {
        **labels,
        f"{LABEL}.role": "lock",
        f"{LABEL}.lock.who": os.environ.get("GITHUB_ACTOR")
        or os.environ.get("BUILD_REQUESTEDFOR")
        or getpass.getuser(),
        f"{LABEL}.lock.machine": socket.gethostname(),
        f"{LABEL}.lock.pid": str(os.getpid()),
        f"{LABEL}.lock.since": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    cid = _take(engine, name, image, mine, what, wait)
    if not cid:  # a dry run
        yield
        return
    done = threading.Event()

    def beat() -> None:
        count = 0
        while not done.wait(BEAT):
            count += 1
            try:
                engine.containers.put_file(cid, BEAT_FILE, str(count).encode())
            except CICDError as err:  # the next beat tries again; a holder that cannot beat goes stale
                log.warning("lock %s: heartbeat failed: %s", name, err)

    thread = threading.Thread(target=beat, name=f"lock {name}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        engine.containers.remove(cid)


def _take(engine: Engine, name: str, image: str, labels: dict[str, str], what: str, wait: float) -> str:
    start = time.monotonic()
    seen: tuple[str, bytes | None, float] | None = None  # (lock id, its heartbeat, when it last moved)
    alive = False  # its heartbeat moved while we watched: a deploy is running, not a leftover
    while True:
        cid = engine.containers.claim(image, name, labels)
        if cid is not None:
            waited = time.monotonic() - start
            if waited > 0.5:
                log.info("lock on %s taken after %.1f s", what, waited)
            return cid
        held = [c for c in engine.containers.find({f"{LABEL}.role": "lock"}) if c.name == name]
        if not held:
            continue  # released between the claim and the look: claim again
        lock = held[0]
        beat = engine.containers.read_file(lock.id, BEAT_FILE)
        now = time.monotonic()
        if seen is None or seen[0] != lock.id:
            seen, alive = (lock.id, beat, now), False
        elif seen[1] != beat:
            seen, alive = (lock.id, beat, now), True
        elif now - seen[2] > STALE:
            log.warning(
                "recovered the lock on %s: it was left by %s, whose heartbeat stopped %.0f s ago "
                "(a deploy that was killed); whatever it left running is checked by this deploy",
                what, _holder(lock), now - seen[2],
            )  # fmt: skip
            engine.containers.remove(lock.id)
            seen = None
            continue
        if alive and now - start > wait:
            raise DeployLockedError(
                f"another deployment to {what} is in progress: {_holder(lock)}; waited {wait:.0f} s. "
                "Let it finish, then run `nox -s status` and deploy again if needed"
            )
        time.sleep(BEAT / 2)
