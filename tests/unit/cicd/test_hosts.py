"""How an environment's host is reached: its address, and the files (or their text) that open it."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from cicd.errors import HostAccessError
from cicd.images.hosts import host_access, variable

BODY = "b3BlbnNzaC1rZXktdjEAAAAA" * 40  # longer than a file name may be
KEY = f"-----BEGIN OPENSSH PRIVATE KEY-----\n{BODY}\n-----END OPENSSH PRIVATE KEY-----\n"
KNOWN = "[ssh.example.com]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample"


def test_the_variables_are_named_for_the_environment() -> None:
    assert variable("staging", "SSH_KEY") == "TRAINYARD_STAGING_SSH_KEY"
    assert variable("eu-prod.2", "TLS_CA") == "TRAINYARD_EU_PROD_2_TLS_CA"


def test_tls_takes_three_files_by_path(tmp_path: Path) -> None:
    files = {what: tmp_path / f"{what}.pem" for what in ("TLS_CA", "TLS_CERT", "TLS_KEY")}
    for path in files.values():
        path.write_text("x")
    env = {variable("staging", what): str(path) for what, path in files.items()}
    access = host_access("staging", "tcp://engine.example.com:2376", env)
    assert access.tls == (str(files["TLS_CA"]), str(files["TLS_CERT"]), str(files["TLS_KEY"]))


def test_ssh_takes_the_key_and_known_hosts_as_text_in_private_files() -> None:
    env = {"TRAINYARD_PRODUCTION_SSH_KEY": KEY, "TRAINYARD_PRODUCTION_SSH_KNOWN_HOSTS": KNOWN}
    access = host_access("production", "ssh://deploy@ssh.example.com:2222", env)
    assert access.ssh_key and access.known_hosts
    for path, text in ((access.ssh_key, KEY), (access.known_hosts, KNOWN)):
        assert Path(path).read_text().strip() == text.strip()
        assert stat.S_IMODE(Path(path).stat().st_mode) == 0o600
        assert stat.S_IMODE(Path(path).parent.stat().st_mode) == 0o700


def test_ssh_without_files_uses_the_agent_and_the_users_known_hosts() -> None:
    access = host_access("production", "ssh://deploy@ssh.example.com", {})
    assert access.ssh_key is None and access.known_hosts is None


@pytest.mark.parametrize(
    ("host", "env", "says"),
    [
        ("tcp://e:2376", {}, "TRAINYARD_STAGING_TLS_CA is not set"),
        ("ssh://d@e", {"TRAINYARD_STAGING_SSH_KEY": "/nope/key"}, "names /nope/key, which is not a file"),
        # a key pasted without its first line: its length is said, never its text
        (
            "ssh://d@e",
            {"TRAINYARD_STAGING_SSH_KEY": "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ"},
            r"names a value of 42 characters \(not shown: it may be the secret itself\), which is not a file",
        ),
        # one word longer than a file name may be: no OSError carrying it
        ("ssh://d@e", {"TRAINYARD_STAGING_SSH_KEY": "A" * 300}, r"names a value of 300 characters \(not shown"),
        ("$STAGING_HOST", {}, r"reads \$STAGING_HOST, which is not set"),
        ("$STAGING_HOST", {"STAGING_HOST": "staging.example.com"}, "must be ssh://user@host"),
    ],
)
def test_what_cannot_open_the_host_is_one_clear_line(host: str, env: dict[str, str], says: str) -> None:
    with pytest.raises(HostAccessError, match=says):
        host_access("staging", host, env)


def test_an_address_in_a_variable_is_read_when_deploying() -> None:
    access = host_access("staging", "${STAGING_HOST}", {"STAGING_HOST": "ssh://deploy@staging.example.com"})
    assert access.address == "ssh://deploy@staging.example.com" and access.where.startswith("staging's host")
