"""The one gate every write to git, a Docker engine or a registry passes through.

:class:`cicd.gitops.Repo` and :class:`cicd.images.Engine` ask :meth:`Writes.allow` before each
write (a tag, a note, a push, a merge; a build, a container, a pull, a push). With ``--dry-run``
it logs what would be done and says no, so a dry run changes nothing anywhere. Either way the
write is logged with every known secret masked and kept in :attr:`Writes.journal`, which
``--json`` prints, so a run can be audited afterwards.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("cicd.writes")


def mask(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every non-empty secret replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def names_a_file(value: str, *, or_folder: bool = False) -> bool:
    """``value`` is the path of an existing file (``or_folder``: or folder). A value that cannot be
    a path at all (a secret pasted in its place, a database URL: a part of it longer than a file
    name may be) is none, not an ``OSError`` whose message would carry the value."""
    try:
        return Path(value).exists() if or_folder else Path(value).is_file()
    except (OSError, ValueError):  # ENAMETOOLONG and the like; a NUL byte
        return False


def shown_path(value: str) -> str:
    """How an error names a variable's value that should have been a file's path but may be a
    secret (a key pasted without its first line): the path itself when it looks like one (starts
    with ``/``, ``./``, ``../`` or ``~/``; one short word), else only its length, never its text."""
    if value.startswith(("/", "./", "../", "~/")) and len(value) <= 255 and not any(c.isspace() for c in value):
        return value
    return f"a value of {len(value)} characters (not shown: it may be the secret itself)"


@dataclass
class Writes:
    dry_run: bool = False
    secrets: list[str] = field(default_factory=list)  # masked in every logged write
    journal: list[str] = field(default_factory=list)  # what was written (or would have been), in order

    def allow(self, action: str, *secrets: str | None) -> bool:
        """Log ``action`` (e.g. ``"push refs/tags/v1.0.0 to origin"``); True if it may be done now."""
        text = mask(action, [*self.secrets, *secrets])
        if self.dry_run:
            self.journal.append(f"[dry-run] {text}")
            log.warning("[dry-run] would %s", text)
            return False
        self.journal.append(text)
        log.debug("%s", text)
        return True
