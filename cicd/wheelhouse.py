"""Resolve dependencies outside the image into a wheelhouse, keyed by the requirements' hash.

The requirements are hashed locks (:mod:`cicd.locks`): pip downloads in hash-checking mode, and a
cached wheelhouse is checked file by file against the locks' hashes before it is reused. Images
then install with ``--require-hashes --no-index --find-links``, so builds run with the network off.
The wheelhouse is for the image's platform (its Python, machine and C library), not the host's,
and is reused as long as the requirement files and the platform are unchanged.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cicd import proc
from cicd.cache import CACHE
from cicd.errors import WheelhouseError
from cicd.locks import allowed_hashes

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Platform:
    """What an image's Python accepts: its version, CPU architecture and C library."""

    python: str  # "3.11"
    machine: str  # "x86_64"
    glibc: str  # "2.36"

    def pip_platforms(self) -> list[str]:
        """pip ``--platform`` values this interpreter accepts, newest manylinux first."""
        major, minor = (int(x) for x in self.glibc.split(".")[:2])
        tags = [f"manylinux_{major}_{m}_{self.machine}" for m in range(minor, 16, -1)]
        return [*tags, f"manylinux2014_{self.machine}", f"linux_{self.machine}"]

    def key(self) -> str:
        return f"cp{self.python.replace('.', '')}-{self.machine}-glibc{self.glibc}"


_INCLUDE = re.compile(r"^\s*(?:-r|--requirement)\s+(\S+)")


def requirement_closure(files: list[Path]) -> list[Path]:
    """The files and every file they include with ``-r``, in a stable order."""
    seen: list[Path] = []
    stack = list(files)
    while stack:
        path = stack.pop(0).resolve()
        if path in seen:
            continue
        if not path.is_file():
            raise WheelhouseError(f"requirements file {path} does not exist")
        seen.append(path)
        for line in path.read_text().splitlines():
            match = _INCLUDE.match(line)
            if match:
                stack.append(path.parent / match.group(1))
    return seen


def wheelhouse_key(files: list[Path], platform: Platform) -> str:
    digest = hashlib.sha256(platform.key().encode())
    for path in requirement_closure(files):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def unlisted(folder: Path, files: list[Path]) -> list[str]:
    """The files in a wheelhouse whose sha256 no lock among ``files`` lists (a planted or swapped wheel)."""
    allowed = allowed_hashes(files)
    found = []
    for path in sorted(folder.iterdir()):
        if path.name == ".complete":
            continue
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        if digest.hexdigest() not in allowed:
            found.append(path.name)
    return found


def ensure_wheelhouse(name: str, files: list[Path], platform: Platform, cache: Path = CACHE) -> Path:
    """Return a folder of wheels for ``files`` (hashed locks); download only when the key is new.

    A cached wheelhouse is reused only when every file in it has a hash the locks list; one that
    does not is discarded, said, and resolved again.
    """
    key = wheelhouse_key(files, platform)
    dest = cache / "wheelhouse" / f"{name}-{key}"
    if (dest / ".complete").is_file():
        bad = unlisted(dest, files)
        if not bad:
            log.info("wheelhouse %s: reused (requirements unchanged, every file's hash listed)", dest.name)
            return dest
        log.warning(
            "wheelhouse %s holds files whose hash no lock lists (%s): discarded, resolving again",
            dest.name,
            ", ".join(bad[:5]),
        )
        shutil.rmtree(dest, ignore_errors=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=dest.parent))
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--disable-pip-version-check",
        "--quiet",
        "--only-binary=:all:",
        "--dest",
        str(tmp),
        "--python-version",
        platform.python,
        "--implementation",
        "cp",
        "--abi",
        f"cp{platform.python.replace('.', '')}",
    ]
    for tag in platform.pip_platforms():
        cmd += ["--platform", tag]
    for path in files:
        cmd += ["-r", str(path)]
    log.info("wheelhouse %s: resolving %s for %s", dest.name, ", ".join(p.name for p in files), platform.key())
    result = proc.run(cmd, timeout=1800, stream=False)
    if not result.ok:
        shutil.rmtree(tmp, ignore_errors=True)
        tail = "\n".join(result.tail[-15:])
        raise WheelhouseError(
            f"pip could not resolve {', '.join(map(str, files))} for {platform.key()}:\n{tail}\n"
            "check the pins exist as wheels for that platform and that the package index is reachable"
        )
    bad = unlisted(tmp, files)
    if bad:
        shutil.rmtree(tmp, ignore_errors=True)
        raise WheelhouseError(f"pip fetched files whose hash no lock lists ({', '.join(bad[:5])}); run `nox -s lock`")
    (tmp / ".complete").write_text(key + "\n")
    if dest.exists() and not (dest / ".complete").is_file():
        shutil.rmtree(dest, ignore_errors=True)  # a download that was cut short
    try:
        os.replace(tmp, dest)
    except OSError:
        # Another run (a second session on this machine) finished the same key first: theirs is
        # as good as ours, and may be in use, so it stays and ours goes.
        shutil.rmtree(tmp, ignore_errors=True)
        if not (dest / ".complete").is_file():
            raise
    return dest
