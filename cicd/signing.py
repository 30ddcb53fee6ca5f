"""Signed records: git's SSH signing for every record tag, verified against a committed file.

Release, deploy and acceptance records and the environments' moving tags are annotated tags
signed with an SSH key (``git -c gpg.format=ssh tag -s``). Before a stage acts on a record it
verifies the tag against ``signing.allowed_signers`` (a file in the repository, reviewed like
code) with ``git verify-tag``; an unsigned record, or one signed by a key that file does not
list, is refused. The key comes from the environment variable ``signing.key_env`` (a private
key in OpenSSH format, as a CI secret holds it, or the path of one), else from git's own
``user.signingkey`` (a key file, or ``key::<public key>`` with the key in the SSH agent).

``signing.required: false`` in the spec is the explicit choice for local experiments: records
are then written unsigned and read unverified, and every command says so once.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cicd.errors import ConfigError, SigningError
from cicd.proc import run
from cicd.writes import names_a_file, shown_path

SIGNATURE_MARKERS = ("-----BEGIN SSH SIGNATURE-----", "-----BEGIN PGP SIGNATURE-----")
HOW_TO_ADD = (
    "add the signer's public key to {file} as a line `<name> <key type> <key>` "
    "(e.g. `ci@example.com ssh-ed25519 AAAA...`), commit it through review, and sign again"
)


def strip_signature(message: str) -> str:
    """A tag message without the signature git appends to it."""
    cut = min((i for m in SIGNATURE_MARKERS if (i := message.find(m)) >= 0), default=len(message))
    return message[:cut]


@dataclass(frozen=True)
class Signing:
    """How this run signs and verifies record tags."""

    allowed_signers: Path  # absolute
    key_env: str  # the variable that may hold the private key (text or path)
    key: str | None  # its value, or None: git's own user.signingkey

    @classmethod
    def from_spec(cls, root: Path, allowed_signers: str, key_env: str, env: dict[str, str]) -> Signing:
        return cls((root / allowed_signers).resolve(), key_env, env.get(key_env) or None)

    def check_allowed_signers(self) -> None:
        if not self.allowed_signers.is_file():
            raise ConfigError(
                f"no allowed-signers file at {self.allowed_signers}: records cannot be verified; "
                + HOW_TO_ADD.format(file=self.allowed_signers)
                + " (or set signing.required: false in cicd/pipeline.yaml for unsigned local use)"
            )

    def verify_args(self) -> list[str]:
        self.check_allowed_signers()
        if shutil.which("ssh-keygen") is None:  # git verifies SSH signatures with it
            raise SigningError(
                "records are verified with ssh-keygen, which is not installed (Debian/Ubuntu: apt install "
                "openssh-client); or set signing.required: false in cicd/pipeline.yaml for unsigned local use"
            )
        return ["-c", f"gpg.ssh.allowedSignersFile={self.allowed_signers}"]

    @contextmanager
    def sign_args(self, configured_key: str | None) -> Iterator[list[str]]:
        """``git -c`` arguments that make ``tag -s`` sign with SSH; a key given as text lives in a
        0600 temporary file for the duration, then is removed."""
        if shutil.which("ssh-keygen") is None:
            raise SigningError(
                "records are signed with ssh-keygen, which is not installed (Debian/Ubuntu: apt install "
                "openssh-client); or set signing.required: false in cicd/pipeline.yaml for unsigned local use"
            )
        if self.key is None:
            if not configured_key:
                raise SigningError(
                    f"no key to sign records with: set {self.key_env} to an SSH private key (a CI secret) or "
                    "its path, or `git config user.signingkey` to your key (`key::ssh-ed25519 ...` with the "
                    "SSH agent); its public key must be in "
                    f"{self.allowed_signers} (or set signing.required: false for unsigned local use)"
                )
            yield ["-c", "gpg.format=ssh"]
            return
        if "PRIVATE KEY-----" not in self.key:
            if not names_a_file(self.key):
                raise SigningError(
                    f"{self.key_env} names {shown_path(self.key)}, which is not a key file: set it to the "
                    "private key's text (from its -----BEGIN line) or the path of a key file"
                )
            yield ["-c", "gpg.format=ssh", "-c", f"user.signingkey={self.key}"]
            return
        folder = tempfile.mkdtemp(prefix="trainyard-key-")
        path = Path(folder) / "key"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(self.key.strip() + "\n")
            yield ["-c", "gpg.format=ssh", "-c", f"user.signingkey={path}"]
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def new_key(folder: Path, principal: str = "trainyard-demo") -> tuple[Path, str]:
    """A new ed25519 key (no passphrase) in ``folder``: its path and its allowed-signers line.

    For throwaway copies (the demo, tests); a real project's keys are made by people.
    """
    folder.mkdir(parents=True, exist_ok=True)
    key = folder / "signing_key"
    if shutil.which("ssh-keygen") is None:
        raise SigningError("ssh-keygen is not installed (Debian/Ubuntu: apt install openssh-client)")
    run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", principal, "-f", str(key)],
        timeout=30,
        stream=False,
        check=True,
        what="ssh-keygen",
    )
    public = (folder / "signing_key.pub").read_text().split()
    return key, f"{principal} {public[0]} {public[1]}"
