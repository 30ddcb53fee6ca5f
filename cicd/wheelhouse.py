"""Resolve dependencies outside the image into a wheelhouse, keyed by the requirements' hash.

Images then install with ``pip --no-index --find-links``, so builds run with the network off.
The wheelhouse is for the image's platform (its Python, machine and C library), not the host's,
and is reused as long as the requirement files and the platform are unchanged.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from cicd.errors import WheelhouseError
from cicd.images import Platform

DEFAULT_CACHE = Path(os.environ.get("TRAINYARD_CACHE", Path.home() / ".cache" / "trainyard"))
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


def ensure_wheelhouse(name: str, files: list[Path], platform: Platform, cache: Path = DEFAULT_CACHE) -> Path:
    """Return a folder of wheels for ``files``; download only when the key is new."""
    key = wheelhouse_key(files, platform)
    dest = cache / "wheelhouse" / f"{name}-{key}"
    if (dest / ".complete").is_file():
        print(f"wheelhouse {dest.name}: reused (requirements unchanged)", flush=True)
        return dest
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
    print(f"wheelhouse {dest.name}: resolving {', '.join(p.name for p in files)} for {platform.key()}", flush=True)
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        tail = "\n".join(result.stderr.strip().splitlines()[-15:])
        raise WheelhouseError(
            f"pip could not resolve {', '.join(map(str, files))} for {platform.key()}:\n{tail}\n"
            "check the pins exist as wheels for that platform and that the package index is reachable"
        )
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
