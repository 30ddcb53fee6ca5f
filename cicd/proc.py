"""Every child process the toolkit starts goes through :func:`run`: a timeout, output streamed
as it comes (to stderr by default, so stdout stays free for ``--json`` results), every known
secret masked in what is shown and kept, and failures raised as :class:`CommandError` with the
command, the exit code and the last lines of output."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from cicd.errors import CommandError
from cicd.writes import mask

TAIL = 40


@dataclass(frozen=True)
class Completed:
    command: str  # as shown, secrets masked
    exit_code: int
    output: str = ""  # stdout, masked (kept only with ``keep_output``)
    tail: list[str] = field(default_factory=list)  # the last lines shown (stderr only with ``keep_output``)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


def run(
    cmd: Sequence[str],
    *,
    timeout: float,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    input: str | None = None,
    stream: IO[str] | bool | None = True,
    secrets: Iterable[str | None] = (),
    check: bool = False,
    what: str | None = None,
    keep_output: bool = False,
) -> Completed:
    """Run ``cmd``; its output is echoed as it comes (``stream``: True for stderr, a file object, or
    False for nowhere), masked, and its last lines kept in ``tail``.

    ``keep_output`` keeps stdout apart, in ``output`` (say, a JSON result), and echoes only stderr.
    ``check`` raises :class:`CommandError` on a non-zero exit; a timeout or a program that cannot
    start always raises it. ``env`` replaces the environment (default: this process's).
    """
    hidden = [s for s in secrets if s]
    shown = mask(" ".join(str(c) for c in cmd), hidden)
    label = what or shown
    out: IO[str] | None = sys.stderr if stream is True else (stream or None)
    tail: deque[str] = deque(maxlen=TAIL)
    kept: list[str] = []
    try:
        child = subprocess.Popen(
            list(cmd),
            cwd=cwd,
            env=dict(os.environ if env is None else env),
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE if keep_output else subprocess.STDOUT,
            text=True,
            errors="replace",
        )
    except OSError as err:
        raise CommandError(label, None, [], f"cannot start {cmd[0]}: {err.strerror or err}") from None
    shown_pipe = child.stderr if keep_output else child.stdout

    def echo() -> None:
        assert shown_pipe is not None
        for line in shown_pipe:
            line = mask(line, hidden)
            if out is not None:
                out.write(line)
                out.flush()
            if line.strip():
                tail.append(line.rstrip("\n"))

    def keep() -> None:
        assert child.stdout is not None
        kept.append(mask(child.stdout.read(), hidden))

    readers = [threading.Thread(target=echo, daemon=True)]
    if keep_output:
        readers.append(threading.Thread(target=keep, daemon=True))
    for reader in readers:
        reader.start()
    if input is not None and child.stdin is not None:
        try:
            child.stdin.write(input)
            child.stdin.close()
        except BrokenPipeError:
            pass
    try:
        code = child.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
        raise CommandError(label, None, list(tail), f"took longer than {timeout:.0f} s and was stopped") from None
    finally:
        for reader in readers:
            reader.join(timeout=5)
        for pipe in (child.stdout, child.stderr):
            if pipe is not None:
                pipe.close()
    result = Completed(shown, code, "".join(kept), list(tail))
    if check and code != 0:
        raise CommandError(label, code, list(tail))
    return result
