"""Requirements pinned with hashes: each ``.in`` file (the pins people edit) compiles into a
``.txt`` lock beside it, every package of the closure with the sha256 of each file the index has
for that version. Everything installs from the locks in pip's and uv's hash-checking mode, so a
file whose hash is not listed is refused, and the wheelhouse is checked against them before reuse.

``nox -s lock`` (``python -m cicd.locks --write``) compiles them with ``uv pip compile``;
``lint`` (``python -m cicd.locks``) checks that each lock is current (it pins what its ``.in``
pins), that every package in it carries hashes, and that the spec pins the base image by digest.
"""

from __future__ import annotations

import argparse
import re
import shutil
from collections.abc import Iterable
from pathlib import Path

from cicd import proc
from cicd.errors import ConfigError, report, run_cli

ROOT = Path(__file__).resolve().parents[1]
# The locks, in the order they are compiled; each .in may include others with ``-r``.
LOCKS = (
    "src/requirements/default.in",
    "src/requirements/test.in",
    "src/requirements/dev.in",
    "cicd/requirements.in",
    "cicd/build/docker/installer.in",
    "cicd/requirements-ci.in",
    "cicd/requirements-copier.in",
)
PYTHON_FILE = ".python-version"  # the project's Python (nox's sessions, CI's setup steps, the locks' floor)
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")
_HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})")
_INCLUDE = re.compile(r"^\s*(?:-r|--requirement)\s+(\S+)")


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_of(source: Path) -> Path:
    return source.with_suffix(".txt")


def _entries(text: str) -> Iterable[tuple[str, str, set[str]]]:
    """(name, version, hashes) of each pin; a pin's hashes follow it on continuation lines."""
    current: list[str] = []
    for line in text.splitlines():
        bare = line.split(" #", 1)[0].rstrip() if not line.lstrip().startswith("#") else ""
        if not bare:
            continue
        current.append(bare.rstrip("\\").strip())
        if not bare.endswith("\\"):
            joined = " ".join(current)
            current = []
            found = _PIN.match(joined)
            if found:
                yield normalize(found[1]), found[2], set(_HASH.findall(joined))


def pins(path: Path) -> dict[str, str]:
    """name → version of every pin in ``path`` and the files it includes with ``-r``."""
    out: dict[str, str] = {}
    for text in _closure_texts(path):
        out.update({name: version for name, version, _ in _entries(text)})
    return out


def _closure_texts(path: Path) -> list[str]:
    texts, stack, seen = [], [path], set()
    while stack:
        current = stack.pop(0).resolve()
        if current in seen:
            continue
        seen.add(current)
        try:
            text = current.read_text()
        except OSError as err:
            raise ConfigError(f"cannot read requirements file {current} ({err.strerror})") from None
        texts.append(text)
        stack += [current.parent / m[1] for line in text.splitlines() if (m := _INCLUDE.match(line))]
    return texts


def allowed_hashes(locks: Iterable[Path]) -> set[str]:
    """Every sha256 the locks allow (for checking a folder of downloaded files)."""
    return {h for path in locks for text in _closure_texts(path) for _, _, hashes in _entries(text) for h in hashes}


def problems(root: Path = ROOT) -> list[str]:
    """Why the pinned supply cannot be trusted as it is: a lock stale or without hashes, or a base
    image the spec does not pin by digest."""
    from cicd.config import load_config

    out = []
    spec = root / "cicd" / "pipeline.yaml"
    if spec.is_file():
        base = load_config(spec, env={}).images.base  # the spec's own, not TRAINYARD_BASE_IMAGE
        if "@sha256:" not in base:
            out.append(
                f"cicd/pipeline.yaml: images.base {base} is not pinned by digest; run `docker buildx imagetools"
                f" inspect {base}` and write it as {base}@sha256:<digest>"
            )
    for rel in LOCKS:
        source = root / rel
        lock = lock_of(source)
        if not lock.is_file():
            out.append(f"{lock.relative_to(root)} is missing; run `nox -s lock`")
            continue
        locked = {name: (version, hashes) for name, version, hashes in _entries(lock.read_text())}
        for name, version in sorted(pins(source).items()):
            if name not in locked or locked[name][0] != version:
                got = locked[name][0] if name in locked else "nothing"
                out.append(f"{lock.relative_to(root)} pins {name} {got}, {rel} says {version}; run `nox -s lock`")
        for name, (_version, hashes) in sorted(locked.items()):
            if not hashes:
                out.append(f"{lock.relative_to(root)}: {name} has no hashes; run `nox -s lock`")
    return out


def python_version(root: Path = ROOT) -> str:
    """The project's Python (``3.11``), from its ``.python-version``."""
    try:
        return (root / PYTHON_FILE).read_text().strip()
    except OSError as err:
        raise ConfigError(f"cannot read {root / PYTHON_FILE} ({err.strerror}); it names the project's Python") from None


def compile_all(root: Path = ROOT) -> None:
    uv = shutil.which("uv")
    if uv is None:
        raise ConfigError("uv is not installed here; run `nox -s lock`, which installs it")
    python = python_version(root)
    for rel in LOCKS:
        source = root / rel
        proc.run(
            [
                uv, "pip", "compile", "--quiet", "--universal", "--generate-hashes",
                "--python-version", python, "--custom-compile-command", "nox -s lock",
                "--output-file", str(lock_of(source)), str(source),
            ],
            cwd=root, timeout=600, check=True, what=f"compiling {rel}",
        )  # fmt: skip
        print(f"compiled {lock_of(source).relative_to(root)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cicd.locks", description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="the project's folder")
    parser.add_argument("--write", action="store_true", help="compile every lock (needs uv and the index)")
    args = parser.parse_args(argv)
    if not (args.root / "cicd/pipeline.yaml").is_file():
        raise ConfigError(f"no cicd/pipeline.yaml under {args.root}; pass --root with the project's folder")
    if args.write:
        compile_all(args.root)
    return report(problems(args.root), "locks are current and hashed, the base image pinned by digest")


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
