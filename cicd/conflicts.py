"""What a merge left unresolved: ``python -m cicd.conflicts`` (``nox -s update`` runs it after
``copier update``, which exits 0 even when it wrote conflict markers).

One line naming every file git reports as unmerged or that holds conflict markers (``<<<<<<<``
and ``>>>>>>>`` lines), with what to do; exit 1. No conflict: one line, exit 0. Only the standard
library and git: it runs in the venv that has copier, before the toolkit's own dependencies.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

MARKERS = r"^(<{7}|>{7})( |$)"


class _Unusable(Exception):
    pass


def _git(root: Path, *args: str) -> list[str]:
    try:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)
    except OSError as err:  # no git, or no such folder
        raise _Unusable(f"cannot run git in {root} ({err.strerror or err})") from None
    if done.returncode not in (0, 1):  # git grep: 1 = nothing found
        why = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[0]
        raise _Unusable(f"git {args[0]} failed in {root}: {why}; run it in the project's folder (or pass --root)")
    return [line for line in done.stdout.splitlines() if line]


def conflicted(root: Path) -> list[str]:
    """Files with unresolved conflicts: unmerged in git's index, or holding conflict markers."""
    unmerged = _git(root, "diff", "--name-only", "--diff-filter=U")
    # tracked and new files (an update may add files), git's ignores respected
    marked = _git(root, "grep", "-l", "-I", "-E", "--untracked", MARKERS)
    return sorted(set(unmerged) | set(marked))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cicd.conflicts", description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("."), help="the project (default: here)")
    root: Path = parser.parse_args(argv).root
    try:
        files = conflicted(root)
    except _Unusable as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if files:
        print(
            f"error: conflicts in {', '.join(files)}: in each, keep the side you want and delete the "
            "<<<<<<< ======= >>>>>>> lines; then `nox -s contract`, the unit tests, and commit "
            "(`git checkout -- .` and `git clean -fd` undo the whole update)",
            file=sys.stderr,
        )
        return 1
    print("no conflicts: review `git diff`, run the tests, and commit", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
