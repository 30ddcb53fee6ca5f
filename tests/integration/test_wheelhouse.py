"""The wheelhouse for real: pip downloads the hashed lock for an image's platform, and a planted
wheel in the cache is found, said, and resolved away before anything installs from it."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from cicd.wheelhouse import Platform, ensure_wheelhouse, unlisted

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "src/requirements/default.txt"
DEBIAN_12 = Platform(python="3.11", machine="x86_64", glibc="2.36")  # the base image's


def test_a_planted_wheel_in_the_cache_is_refused(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    first = ensure_wheelhouse("runtime", [LOCK], DEBIAN_12, cache=tmp_path)
    wheels = sorted(p.name for p in first.glob("*.whl"))
    assert len(wheels) > 20 and unlisted(first, [LOCK]) == []
    planted = first / "numpy-9.9.9-cp311-cp311-manylinux_2_17_x86_64.whl"
    planted.write_bytes(b"not what the lock says")
    with caplog.at_level(logging.WARNING, logger="cicd.wheelhouse"):
        again = ensure_wheelhouse("runtime", [LOCK], DEBIAN_12, cache=tmp_path)
    assert "holds files whose hash no lock lists (numpy-9.9.9" in caplog.text
    assert again == first and not planted.exists() and sorted(p.name for p in again.glob("*.whl")) == wheels
    assert unlisted(again, [LOCK]) == []
