"""Build contexts as deterministic tar streams, and archives out of containers extracted safely (pure)."""

from __future__ import annotations

import io
import posixpath
import tarfile
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from docker.utils.build import exclude_paths

from cicd.errors import ContainerError


@dataclass
class ContextFile:
    """One entry of a build context: ``arcname`` inside the context, from ``path`` or ``data``."""

    arcname: str
    path: Path | None = None
    data: bytes | None = None


def read_ignore(path: Path) -> list[str]:
    if not path.is_file():
        return []
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def tree_files(
    root: Path, ignore_file: Path, prefix: str = "", *, only: Collection[str] | None = None
) -> list[ContextFile]:
    """Files under ``root`` that the ``.dockerignore``-style ``ignore_file`` lets through; with
    ``only`` (paths relative to ``root``, e.g. what git lists), none outside it."""
    included = exclude_paths(str(root), read_ignore(ignore_file))
    files = []
    for rel in sorted(included):
        full = root / rel
        if full.is_file() and not full.is_symlink() and (only is None or rel in only):
            files.append(ContextFile(f"{prefix}{rel}", path=full))
    return files


def normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
    # Identical content must give identical tar entries, or the builder's COPY cache misses.
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mode = 0o755 if info.mode & 0o111 or info.isdir() else 0o644
    return info


def write_context(files: Iterable[ContextFile], fileobj: IO[bytes]) -> None:
    with tarfile.open(fileobj=fileobj, mode="w") as tar:
        for f in sorted(files, key=lambda f: f.arcname):
            if f.data is not None:
                info = normalise(tarfile.TarInfo(f.arcname))
                info.size = len(f.data)
                tar.addfile(info, io.BytesIO(f.data))
            elif f.path is not None:
                info = normalise(tar.gettarinfo(str(f.path), arcname=f.arcname))
                with f.path.open("rb") as fh:
                    tar.addfile(info, fh)


def extract_safely(tar: tarfile.TarFile, dest: Path) -> None:
    """Extract an archive from a container without letting it write outside ``dest``.

    Python 3.11.4 added ``filter="data"``; Debian 12 ships 3.11.2, so the same rules (no absolute
    or ``..`` paths, no links leaving ``dest``, no devices) are checked here when it is missing.
    A path is judged by its text, so nothing may pass through a link of the archive (a member
    under one, or a link whose target goes through one): where such a path ends is known only
    after the link exists (``up -> ..`` inside ``sub/``, then ``out -> sub/up/..``).
    """
    if hasattr(tarfile, "data_filter"):
        tar.extractall(dest, filter="data")
        return
    members = tar.getmembers()
    links = {posixpath.normpath(m.name) for m in members if m.issym() or m.islnk()}

    def leaves(path: str) -> bool:  # ``path`` relative to dest, as text
        norm = posixpath.normpath(path)
        parts = norm.split("/")
        through_link = any("/".join(parts[:i]) in links for i in range(1, len(parts)))
        return posixpath.isabs(path) or norm == ".." or norm.startswith("../") or through_link

    for member in members:
        name = posixpath.normpath(member.name)
        if member.issym():
            target = posixpath.join(posixpath.dirname(name), member.linkname)
        else:
            target = member.linkname if member.islnk() else name
        unsafe = (
            leaves(member.name)
            or member.isdev()
            or ((member.issym() or member.islnk()) and (posixpath.isabs(member.linkname) or leaves(target)))
        )
        if unsafe:
            raise ContainerError(f"refused to extract {member.name!r} from a container archive: it leaves {dest}")
    tar.extractall(dest, members=members)  # noqa: S202  # nosec B202 - every member was checked above
