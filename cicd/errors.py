"""One error base class and a class per failure, each with a message that says what to do.

Third-party exceptions (docker, git, yaml) are translated once, at the module that owns the
boundary, and carry their data (the log tail, the exit code, the command).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from contextlib import suppress


class CICDError(Exception):
    """Base: a failure the user can act on. ``python -m cicd`` prints it in one line, exit 2."""

    exit_code = 2


class ConfigError(CICDError):
    """``pipeline.yaml`` (or an environment override) cannot be used."""


class VersionError(CICDError):
    """A version or release tag that cannot be parsed or computed."""


class GitError(CICDError):
    """A git operation failed: not a repository, dirty tree, missing tag, rejected push."""


class DirtyTreeError(GitError):
    def __init__(self, paths: list[str]) -> None:
        self.paths = paths
        shown = ", ".join(paths[:5]) + (" ..." if len(paths) > 5 else "")
        super().__init__(
            f"the working tree has uncommitted changes ({shown}); commit or stash them first, "
            "so the image matches a commit"
        )


class MergeConflictError(GitError):
    def __init__(self, source: str, target: str, files: list[str]) -> None:
        self.source, self.target, self.files = source, target, files
        super().__init__(
            f"merging {source} into {target} conflicts in {', '.join(files) or 'some files'}; "
            f"the merge was aborted and {target} is unchanged: merge {target} into {source}, "
            "resolve the conflicts there and let its checks pass"
        )


class PushError(GitError):
    """A push was rejected; nothing was half-pushed (pushes are atomic)."""


class EngineUnavailableError(CICDError):
    def __init__(self, where: str, reason: str, advice: str = "") -> None:
        self.where = where
        super().__init__(
            f"no Docker engine answers at {where} ({reason}); "
            + (advice or "start dockerd or point DOCKER_HOST at a running engine")
        )


class HostAccessError(CICDError):
    """An environment's host cannot be reached as the spec says: an unset variable, a missing file."""


class BaseImageError(CICDError):
    def __init__(self, image: str, reason: str) -> None:
        self.image = image
        super().__init__(
            f"base image {image!r} is not available locally and cannot be pulled ({reason}); "
            "pull or build it, or set TRAINYARD_BASE_IMAGE / images.base in cicd/pipeline.yaml to one you have"
        )


class ImageBuildError(CICDError):
    def __init__(self, image: str, reason: str, log_tail: list[str]) -> None:
        self.image, self.log_tail = image, log_tail
        tail = "\n".join(f"    {line}" for line in log_tail)
        super().__init__(f"building {image} failed: {reason}\n  last lines of the build log:\n{tail}")


class ContainerError(CICDError):
    """A container could not be run, or timed out."""


class TestsFailedError(CICDError):
    exit_code = 1

    def __init__(self, what: str, exit_code: int, reports: str = "") -> None:
        self.container_exit_code = exit_code
        super().__init__(
            f"{what} failed (exit code {exit_code}); the failures are shown above"
            + (f", reports in {reports}" if reports else "")
        )


class NothingTestedError(CICDError):
    """Every test was skipped (or none was collected): a run that tested nothing is no pass."""

    exit_code = 1

    def __init__(self, what: str, tests: int, reports: str = "") -> None:
        super().__init__(
            f"{what} tested nothing: {tests} collected, every one skipped; a run in which no test ran is "
            "not a pass (the skip reasons are shown above" + (f" and in {reports}" if reports else "") + ")"
        )


class RegistryError(CICDError):
    """A push or pull was refused or the registry is unreachable."""


class WheelhouseError(CICDError):
    """Dependencies could not be resolved into the wheelhouse."""


class SigningError(CICDError):
    """A record could not be signed: no key, no ssh-keygen, or git refused the key."""


class RecordTrustError(CICDError):
    """Records that are unsigned or signed by a key the allowed-signers file does not list."""

    def __init__(self, tags: list[str], allowed_signers: str) -> None:
        self.tags = tags
        shown = ", ".join(tags[:5]) + (f" and {len(tags) - 5} more" if len(tags) > 5 else "")
        super().__init__(
            f"refusing to act on records that are unsigned, signed by a key not in {allowed_signers}, or "
            f"renamed since they were signed: {shown}. If your CI or you made them, add that signer's public "
            f"key to {allowed_signers} (`<name> ssh-ed25519 AAAA...`) through review; if nobody did, they "
            "are forged: delete them (`git push origin --delete TAG; git tag -d TAG`)"
        )


class ReleaseNotFoundError(CICDError):
    """No release record for the commit a stage needs one for."""


class GateError(CICDError):
    """The model failed its evaluation gate; nothing was released."""

    exit_code = 1


class DeployError(CICDError):
    """A deployment was refused or failed; the previous release keeps serving."""


class HealthCheckError(DeployError):
    def __init__(self, what: str, url: str, timeout: float, log_tail: list[str], restored: bool) -> None:
        self.log_tail = log_tail
        tail = "\n".join(f"    {line}" for line in log_tail[-20:]) or "    (no output)"
        after = "the previous release is serving again" if restored else "nothing else was changed"
        super().__init__(
            f"{what} never answered {url} within {timeout:.0f}s; it was removed and {after}. "
            f"Fix the release and deploy again. Last lines of its log:\n{tail}"
        )


class PortInUseError(DeployError):
    pass


class DeployLockedError(DeployError):
    pass


class PromotionError(DeployError):
    pass


class CommandError(CICDError):
    """A child process failed, timed out or could not start; carries the command, exit code and output tail."""

    def __init__(self, command: str, exit_code: int | None, tail: list[str], reason: str = "") -> None:
        self.command, self.code, self.tail = command, exit_code, tail
        lines = "\n".join(f"    {line}" for line in tail[-15:])
        why = reason or f"exited {exit_code}"
        super().__init__(f"{command} {why}" + (f"; its last lines:\n{lines}" if lines else ""))


class ServiceError(CICDError):
    """A deployed service could not be reached, or did not answer JSON."""

    def __init__(self, url: str, reason: str) -> None:
        self.url, self.reason = url, reason
        super().__init__(f"no usable answer from {url} ({reason}); is the service running and healthy?")


class RetrainError(CICDError):
    """The project's retrain command refused its input or failed, or its branch could not be pushed."""


class PredictionLogError(CICDError):
    """An environment's prediction log cannot be read: not enabled, nothing deployed, or not there yet."""


def report(problems: list[str], all_clear: str) -> int:
    """A checker's verdict as its entry point prints it: each problem on a line, then a summary;
    exit 1 when there is any problem, else 0."""
    for problem in problems:
        print(problem)
    print(all_clear if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


# The toolkit's own requirements (cicd/requirements.txt) by the name each is imported as: a Python
# without them (the README's venv holds nox, not these) gets one line saying how to get them.
REQUIRED = {"yaml": "PyYAML", "docker": "docker", "git": "GitPython", "semver": "semver", "requests": "requests"}


def run_cli(main: Callable[[], int]) -> int:
    """Run an entry point: a :class:`CICDError` becomes one ``error:`` line and its exit code, and
    so does a missing requirement of the toolkit's (exit 2)."""
    try:
        return main()
    except CICDError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except ModuleNotFoundError as err:
        top = (err.name or "").split(".")[0]
        if top not in REQUIRED:
            raise
        print(
            f"error: this Python ({sys.executable}) lacks the toolkit's requirements: no module {top} "
            f"({REQUIRED[top]}); install them with `pip install --require-hashes -r cicd/requirements.txt`, or run "
            "the step through nox (`nox -s <session>`), which does",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (``| head``): nothing more to say to it
        with suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
