"""Git, through GitPython: the only module that imports ``git``.

Reads the branch (from CI variables or the repository), checks the tree is clean, reads and
writes (signed) annotated tags, pushes atomically, merges.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import git
from git.exc import GitCommandError, InvalidGitRepositoryError, NoSuchPathError
from gitdb.exc import BadName, BadObject

from cicd.errors import DirtyTreeError, GitError, MergeConflictError, PushError, SigningError
from cicd.signing import Signing, strip_signature
from cicd.writes import Writes


def branch_from_env(env: Mapping[str, str]) -> str | None:
    """The branch a CI run is for, None outside CI. A pull request is named from the base
    repository's point of view, ``pull/<number>``: never its source branch's name, so a fork's
    pull request from a branch it called ``main`` is a feature branch here, not ``main``."""
    if env.get("GITHUB_ACTIONS") == "true" or "GITHUB_REF" in env:
        ref = env.get("GITHUB_REF", "")
        if env.get("GITHUB_HEAD_REF") or ref.startswith("refs/pull/"):
            return _pull_request(ref)
        if ref.startswith("refs/heads/"):
            return ref.removeprefix("refs/heads/")
        if env.get("GITHUB_REF_TYPE") == "branch" and env.get("GITHUB_REF_NAME"):
            return env["GITHUB_REF_NAME"]
    if env.get("TF_BUILD") == "True" or "BUILD_SOURCEBRANCH" in env:
        ref = env.get("BUILD_SOURCEBRANCH", "")
        if env.get("SYSTEM_PULLREQUEST_SOURCEBRANCH") or ref.startswith("refs/pull/"):
            number = env.get("SYSTEM_PULLREQUEST_PULLREQUESTNUMBER") or env.get("SYSTEM_PULLREQUEST_PULLREQUESTID")
            return f"pull/{number}" if number else _pull_request(ref)
        if ref.startswith("refs/heads/"):
            return ref.removeprefix("refs/heads/")
    return None


def _pull_request(ref: str) -> str:
    """``refs/pull/7/merge`` → ``pull/7``."""
    parts = ref.split("/")
    return f"pull/{parts[2]}" if len(parts) > 2 and parts[1] == "pull" and parts[2].isdigit() else "pull/unknown"


def event_from_env(env: Mapping[str, str]) -> str | None:
    """``push``, ``pull_request``, ``manual`` or ``schedule`` from the CI's variables."""
    github = env.get("GITHUB_EVENT_NAME")
    if github:
        return {"workflow_dispatch": "manual", "pull_request_target": "pull_request"}.get(github, github)
    azure = env.get("BUILD_REASON")
    if azure:
        return {
            "PullRequest": "pull_request",
            "Manual": "manual",
            "Schedule": "schedule",
            "IndividualCI": "push",
            "BatchedCI": "push",
        }.get(azure, "push")
    return None


@dataclass(frozen=True)
class TagInfo:
    name: str
    commit: str
    message: str


class Repo:
    """A thin wrapper whose methods raise :class:`GitError` subclasses, never GitPython's."""

    def __init__(self, path: str | Path = ".", *, writes: Writes | None = None, signing: Signing | None = None) -> None:
        """``writes``: the gate every write asks first (``--dry-run`` says no); default: writes allowed.
        ``signing``: how tags are signed and verified; None: unsigned and unverified (``signing.required: false``)."""
        self.writes = writes or Writes()
        self.signing = signing
        try:
            self.repo = git.Repo(path, search_parent_directories=True)
        except (InvalidGitRepositoryError, NoSuchPathError) as err:
            raise GitError(f"{path} is not inside a git repository; run this from your project's clone") from err
        if self.repo.bare:
            raise GitError(f"{path} is a bare repository; run this from a working clone")
        self.root = Path(self.repo.working_tree_dir or path)
        self._default_identity()

    def close(self) -> None:
        """End GitPython's helper processes (``git cat-file``) and their pipes."""
        self.repo.close()

    def __enter__(self) -> Repo:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _default_identity(self) -> None:
        # CI machines often have no git identity; tags and merges still need one.
        reader = self.repo.config_reader()
        if not reader.has_option("user", "email") and "GIT_COMMITTER_EMAIL" not in os.environ:
            self.repo.git.update_environment(
                GIT_AUTHOR_NAME="Trainyard",
                GIT_AUTHOR_EMAIL="trainyard@localhost",
                GIT_COMMITTER_NAME="Trainyard",
                GIT_COMMITTER_EMAIL="trainyard@localhost",
            )

    def _git(self, *args: str) -> str:
        try:
            return str(self.repo.git.execute(["git", *args]))
        except GitCommandError as err:
            raise GitError(f"git {' '.join(args)} failed: {(err.stderr or '').strip() or err}") from err

    # --- reading -------------------------------------------------------------------------------
    def head(self) -> str:
        try:
            return self.repo.head.commit.hexsha
        except ValueError as err:
            raise GitError("the repository has no commits yet; commit something first") from err

    def _commit(self, rev: str) -> Any:
        """The commit ``rev`` names; GitPython's errors (``BadName`` and friends) become :class:`GitError`."""
        try:
            return self.repo.commit(rev)
        except (ValueError, GitCommandError, BadName, BadObject) as err:
            raise GitError(f"no branch, tag or commit named {rev!r} here; check the name, or git fetch") from err

    def tree(self, rev: str = "HEAD") -> str:
        return str(self._commit(rev).tree.hexsha)

    def commit_time(self, rev: str = "HEAD") -> int:
        return int(self._commit(rev).committed_date)

    def branch(self, env: Mapping[str, str]) -> str:
        """The branch from CI variables, else the checked-out branch; refuses a bare detached HEAD."""
        from_env = branch_from_env(env)
        if from_env:
            return from_env
        if self.repo.head.is_detached:
            raise GitError("HEAD is detached and no CI branch variable is set; pass --branch NAME")
        return self.repo.active_branch.name

    def dirty_paths(self) -> list[str]:
        changed = {d.a_path for d in self.repo.index.diff(None)} | {d.a_path for d in self.repo.index.diff("HEAD")}
        return sorted({p for p in changed if p} | set(self.repo.untracked_files))

    def listed_files(self) -> set[str]:
        """What may go into a build context or a wheel: tracked files, and new files git does not
        ignore (so a leftover ``build/lib/`` never does). On a clean tree, what ``git archive`` gives."""
        out = self._git("ls-files", "--cached", "--others", "--exclude-standard", "-z")
        return {p for p in out.split("\0") if p and (self.root / p).is_file()}

    def ensure_clean(self) -> None:
        paths = self.dirty_paths()
        if paths:
            raise DirtyTreeError(paths)

    def tags(self) -> list[str]:
        return [t.name for t in self.repo.tags]

    def tag_infos(self) -> list[TagInfo]:
        """Every tag with its commit and message (empty for a lightweight tag), in one pass."""
        out = []
        for ref in self.repo.tags:
            try:
                message = strip_signature(ref.tag.message) if ref.tag is not None else ""
                out.append(TagInfo(ref.name, ref.commit.hexsha, message))
            except ValueError:  # a tag that points at a tree or blob, not a commit
                continue
        return out

    def tag(self, name: str) -> TagInfo | None:
        try:
            ref = self.repo.tags[name]
        except IndexError:
            return None
        message = strip_signature(ref.tag.message) if ref.tag is not None else ""
        return TagInfo(name=name, commit=ref.commit.hexsha, message=message)

    def _configured_key(self) -> str | None:
        """git's own ``user.signingkey`` (a key file, or ``key::<public key>`` with the agent), if set."""
        return str(self.repo.config_reader().get_value("user", "signingkey", default="")) or None

    def can_sign(self) -> bool:
        """Whether a tag written now would be signed (or signing is off): a key and ssh-keygen are here."""
        if self.signing is None:
            return True
        return bool(self.signing.key or self._configured_key()) and shutil.which("ssh-keygen") is not None

    def check_can_sign(self) -> None:
        """Refuse now, before minutes of work, what would refuse the record later: no key, no
        ssh-keygen, no allowed-signers file, or a key whose public half that file does not list."""
        if self.signing is None:
            return
        self.signing.check_allowed_signers()
        configured = self._configured_key()
        with self.signing.sign_args(configured) as args:
            key = next((a.split("=", 1)[1] for a in args if a.startswith("user.signingkey=")), None)
            public = configured.removeprefix("key::") if configured and configured.startswith("key::") else None
            if key is not None:  # a private key file: its public half, as ssh-keygen derives it
                derived = subprocess.run(
                    ["ssh-keygen", "-y", "-f", key], capture_output=True, text=True, timeout=10,
                    stdin=subprocess.DEVNULL, check=False,
                )  # fmt: skip
                public = derived.stdout.strip() if derived.returncode == 0 else None
        listed = self.signing.allowed_signers.read_text(encoding="utf-8", errors="replace")
        if public and " ".join(public.split()[:2]) not in listed:
            raise SigningError(
                f"the signing key ({self.signing.key_env} or git's user.signingkey) is not listed in "
                f"{self.signing.allowed_signers}, so every stage would refuse its records; add its public half "
                "there through review (`<name> ssh-ed25519 AAAA...`), or sign with a listed key"
            )

    def verified(self, names: Sequence[str]) -> set[str]:
        """The tags among ``names`` signed by an allowed signer under that very name (a signed tag
        pushed under another name is not). All of them when signing is off
        (``signing.required: false``). One ``git verify-tag`` for them all."""
        if self.signing is None or not names:
            return set(names)
        _status, out, _err = self.repo.git.execute(  # the status is non-zero when any tag fails
            ["git", *self.signing.verify_args(), "verify-tag", "--format=%(refname) %(tag)"]
            + [f"refs/tags/{name}" for name in names],
            with_exceptions=False,
            with_extended_output=True,
        )
        good = set()
        for line in str(out).splitlines():  # one line per tag that verified: its ref, the name it was signed as
            ref, _, signed_as = line.partition(" ")
            if ref.removeprefix("refs/tags/") == signed_as:
                good.add(signed_as)
        return good

    def messages_since(self, tag: str | None, rev: str = "HEAD") -> list[str]:
        # Both ends are resolved first: a failing ``git rev-list`` would leave GitPython's pipe open.
        end = self._commit(rev).hexsha
        spec = f"{self._commit(tag).hexsha}..{end}" if tag else end
        return [str(c.message) for c in self.repo.iter_commits(spec)]

    def branches(self) -> list[str]:
        return [h.name for h in self.repo.heads]

    def is_ancestor(self, commit: str, rev: str = "HEAD") -> bool:
        """``commit`` is in the history of ``rev`` (False when it is unknown here)."""
        try:
            self.repo.git.merge_base("--is-ancestor", commit, rev)
        except GitCommandError:
            return False
        return True

    def rev(self, name: str) -> str:
        return str(self._commit(name).hexsha)

    def has_remote(self, name: str = "origin") -> bool:
        return name in [r.name for r in self.repo.remotes]

    def remote_url(self, name: str = "origin") -> str | None:
        """The remote's URL without credentials, or None when there is no such remote."""
        if not self.has_remote(name):
            return None
        return re.sub(r"//[^/@]+@", "//", str(self.repo.remotes[name].url))

    # --- writing -------------------------------------------------------------------------------
    def create_tag(self, name: str, message: str, rev: str = "HEAD", *, force: bool = False) -> None:
        if not force and name in self.tags():
            raise GitError(f"tag {name!r} already exists; records are immutable, choose a new name")
        sha = self.rev(rev)
        if not self.writes.allow(f"tag {sha[:12]} as {name}"):
            return
        if self.signing is None:
            try:
                self.repo.create_tag(name, ref=rev, message=message, force=force)
            except GitCommandError as err:
                raise GitError(f"cannot create tag {name!r}: {(err.stderr or '').strip()}") from err
            return
        with self.signing.sign_args(self._configured_key()) as args:
            try:
                self.repo.git.execute(["git", *args, "tag", "-s", *(["-f"] if force else []), "-m", message, name, sha])
            except GitCommandError as err:
                raise SigningError(
                    f"cannot sign tag {name!r}: {(err.stderr or '').strip()}; check the key in "
                    f"{self.signing.key_env} or git's user.signingkey"
                ) from err
        if name not in self.verified([name]):  # what every reader will check: refuse it here, before a push
            self._git("tag", "-d", name)
            raise SigningError(
                f"tag {name!r} was signed with a key that {self.signing.allowed_signers} does not list, so every "
                "stage would refuse it; it was removed. Add the key's public half to that file through review "
                "(`<name> ssh-ed25519 AAAA...`), or sign with a listed key"
            )

    def tag_object(self, name: str) -> str | None:
        """The sha the tag ref points at (the tag object for an annotated tag), or None."""
        try:
            return self._git("rev-parse", "--verify", "--quiet", f"refs/tags/{name}").strip() or None
        except GitError:
            return None

    def delete_tag(self, name: str) -> None:
        if name in self.tags() and self.writes.allow(f"delete tag {name}"):
            self.repo.delete_tag(self.repo.tags[name])

    def push(self, refspecs: Sequence[str], remote: str = "origin", *, extra: Sequence[str] = ()) -> None:
        """Push all ``refspecs`` in one atomic transaction: all land or none do."""
        if not self.has_remote(remote):
            raise PushError(f"no remote named {remote!r}; add it (git remote add {remote} URL) or push by hand")
        if not self.writes.allow(f"push {' '.join(refspecs)} to {remote} atomically"):
            return
        try:
            self.repo.git.push("--atomic", "--porcelain", *extra, remote, *refspecs)
        except GitCommandError as err:
            raise PushError(
                f"pushing {', '.join(refspecs)} to {remote} was refused, nothing was pushed: "
                f"{(err.stderr or '').strip()}; fetch, check what changed, and run again"
            ) from err

    # --- branches ------------------------------------------------------------------------------
    def branch_exists(self, name: str, remote: str = "origin") -> bool:
        """``name`` exists here or on ``remote`` (asked live, so a branch pushed elsewhere counts)."""
        if name in self.branches():
            return True
        if not self.has_remote(remote):
            return False
        return bool(self._git("ls-remote", "--heads", remote, f"refs/heads/{name}").strip())

    def commit_to_new_branch(self, branch: str, files: Mapping[str, Path], message: str, base: str = "HEAD") -> str:
        """Commit ``files`` (repository path → source file) on a new ``branch`` from ``base``, in a
        temporary worktree: the checkout you are on, its index and its files are never touched.
        Returns the new commit; on any failure the branch is not created."""
        import tempfile

        base_sha = self.rev(base)
        if not self.writes.allow(f"commit {', '.join(files)} on a new branch {branch} from {base_sha[:12]}"):
            return base_sha

        with tempfile.TemporaryDirectory(prefix="trainyard-branch-") as tmp:
            tree = Path(tmp) / "tree"
            self._git("worktree", "add", "--quiet", "--detach", str(tree), base_sha)
            try:
                work = Repo(tree).repo  # with the default identity when the machine has none
                for rel, source in files.items():
                    target = tree / rel
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(source, target)
                work.git.add("--", *files)
                if not work.git.diff("--cached", "--name-only").strip():
                    raise GitError(f"nothing to commit on {branch}: the files equal those at {base}")
                work.git.commit("--quiet", "-m", message)
                commit = work.head.commit.hexsha
            finally:
                self._git("worktree", "remove", "--force", str(tree))
        self._git("branch", branch, commit)
        return commit

    def switch(self, branch: str, *, pull: str | None = None) -> None:
        """Check out ``branch``; with ``pull`` (a remote), fast-forward it to the remote's copy."""
        if not self.writes.allow(f"check out {branch}" + (f" and fast-forward it from {pull}" if pull else "")):
            return
        self._git("checkout", "--quiet", branch)
        if pull and self.has_remote(pull):
            self._git("pull", "--quiet", "--ff-only", pull, branch)

    def commit_all(self, message: str) -> str:
        """Commit every tracked change (with the default identity when the machine has none)."""
        if not self.writes.allow(f"commit all tracked changes: {message.splitlines()[0] if message else ''}"):
            return self.head()
        self._git("commit", "--quiet", "--all", "-m", message)
        return self.head()

    # --- merging -------------------------------------------------------------------------------
    def merge(self, source: str, target: str, *, remote: str | None = "origin") -> str:
        """Merge ``source`` into ``target`` (no fast-forward), push target; abort cleanly on conflict."""
        start = self.repo.active_branch.name if not self.repo.head.is_detached else self.head()
        self.ensure_clean()
        self.rev(source)
        if not self.writes.allow(f"merge {source} into {target}"):
            return self.head()
        try:
            self._git("checkout", "--quiet", target)
            try:
                self.repo.git.merge("--no-ff", "--no-edit", "-m", f"Merge branch '{source}' into {target}", source)
            except GitCommandError as err:
                conflicts = sorted({str(p) for p in self.repo.index.unmerged_blobs()})
                self._git("merge", "--abort")
                raise MergeConflictError(source, target, [str(c) for c in conflicts]) from err
            merged = self.head()
            if remote and self.has_remote(remote):
                self.push([f"refs/heads/{target}"], remote)
            return merged
        finally:
            self._git("checkout", "--quiet", start)


def _project_files(source: Path) -> list[str]:
    """``source``'s files as git sees them (tracked and new, not ignored). A folder that is no
    repository yet (a project right after ``copier copy``) is read through an empty git directory
    of its own, so its ``.gitignore`` still applies and the folder itself is untouched."""
    args = ["ls-files", "--cached", "--others", "--exclude-standard", "-z"]
    try:
        out = git.Repo(source).git.execute(["git", *args])
    except (InvalidGitRepositoryError, NoSuchPathError):
        with tempfile.TemporaryDirectory(prefix="trainyard-ls-") as empty:
            git.Repo.init(empty, bare=True)
            out = git.Git().execute(["git", f"--git-dir={empty}", f"--work-tree={source}", *args])
    return [rel for rel in str(out).split("\0") if rel]


def throwaway_clone(
    source: Path,
    dest: Path,
    *,
    main: str = "main",
    develop: str = "develop",
    allowed_signer: tuple[str, str] | None = None,
    unsigned: bool = False,
) -> tuple[Path, Path]:
    """A new repository holding ``source``'s files as they are now (tracked and new, not ignored),
    with a bare ``origin`` beside it, ``main`` and ``develop`` pushed. The source is untouched.

    ``allowed_signer``: (the allowed-signers file, a line) added to the copy, so the throwaway
    key that line names may sign its records. ``unsigned``: the copy's spec says
    ``signing.required: false`` instead."""
    origin, work = dest / "origin.git", dest / "work"
    git.Repo.init(origin, bare=True, initial_branch=main)
    listed = _project_files(source)
    git.Repo.init(work, initial_branch=main)
    for rel in filter(None, listed):
        src = source / rel
        if src.is_file() and not src.is_symlink():
            (work / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, work / rel)
    if unsigned:
        spec = work / "cicd" / "pipeline.yaml"
        spec.write_text(re.sub(r"(?m)^(signing:.*\n(?:[ #].*\n)*?\s+required:) true", r"\1 false", spec.read_text()))
    if allowed_signer is not None:
        signers = work / allowed_signer[0]
        signers.parent.mkdir(parents=True, exist_ok=True)
        with signers.open("a") as out:
            out.write(allowed_signer[1] + "\n")
    repo = Repo(work).repo  # with a default identity when the machine has none
    repo.git.add("-A")
    repo.git.commit("--quiet", "-m", "feat: the project, copied for a throwaway run")
    repo.create_remote("origin", str(origin))
    repo.git.push("--quiet", "origin", main)
    repo.git.checkout("--quiet", "-b", develop)
    repo.git.push("--quiet", "origin", develop)
    return work, origin


def signed_throwaway_clone(source: Path, dest: Path) -> tuple[Path, Path, dict[str, str]]:
    """:func:`throwaway_clone` with signing ready: a new key in ``dest`` that only the copy allows,
    and the environment variable that names it (to pass to the runs in the copy). Where ssh-keygen
    is missing, the copy says ``signing.required: false`` instead, and this says so on stderr."""
    from cicd.config import load_config
    from cicd.signing import new_key

    settings = load_config(source / "cicd" / "pipeline.yaml", env={}).signing
    if not settings.required:
        return (*throwaway_clone(source, dest), {})
    if shutil.which("ssh-keygen") is None:
        print(
            "no ssh-keygen here (Debian/Ubuntu: apt install openssh-client), so this throwaway copy says "
            "signing.required: false and its records are unsigned; a real project's are signed",
            file=sys.stderr,
        )
        return (*throwaway_clone(source, dest, unsigned=True), {})
    key, line = new_key(dest / "signer", "trainyard-throwaway")
    work, origin = throwaway_clone(source, dest, allowed_signer=(settings.allowed_signers, line))
    return work, origin, {settings.key_env: str(key)}
