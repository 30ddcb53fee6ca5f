"""Hashed locks: current, hashed, and a wheelhouse checked file by file against them."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from cicd.locks import LOCKS, allowed_hashes, pins, problems
from cicd.wheelhouse import unlisted

ROOT = Path(__file__).resolve().parents[3]
H1, H2 = "a" * 64, "b" * 64


def test_the_repositorys_locks_are_current_and_hashed() -> None:
    assert problems(ROOT) == []


def test_every_lock_pins_what_its_source_pins() -> None:
    for rel in LOCKS:
        source = pins(ROOT / rel)
        locked = pins((ROOT / rel).with_suffix(".txt"))
        assert source and all(locked[name] == version for name, version in source.items()), rel


def _copy(tmp_path: Path) -> Path:
    files = [ROOT / "cicd/pipeline.yaml", *(ROOT / r for r in LOCKS), *((ROOT / r).with_suffix(".txt") for r in LOCKS)]
    for path in files:
        target = tmp_path / path.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    return tmp_path


@pytest.mark.parametrize(
    ("path", "old", "new", "says"),
    [
        ("src/requirements/default.in", "numpy==", "numpy==0.0.1\n# was ", "pins numpy"),  # a stale lock
        ("cicd/requirements.txt", "\\\n    --hash=sha256:", "\n#", "has no hashes"),  # hashes dropped
        ("cicd/pipeline.yaml", "@sha256:", "\n  # @sha256:", "images.base python:3.11-slim-bookworm is not pinned"),
    ],
)
def test_a_stale_or_unhashed_lock_is_caught(tmp_path: Path, path: str, old: str, new: str, says: str) -> None:
    root = _copy(tmp_path)
    target = root / path
    text = target.read_text()
    assert old in text
    target.write_text(text.replace(old, new, 1))
    found = problems(root)
    assert any(says in p for p in found), found


def test_a_planted_wheel_is_found(tmp_path: Path) -> None:
    lock = tmp_path / "r.txt"
    good = tmp_path / "house" / "good-1.0-py3-none-any.whl"
    good.parent.mkdir()
    good.write_bytes(b"the real wheel")
    real = hashlib.sha256(b"the real wheel").hexdigest()
    lock.write_text(f"good==1.0 \\\n    --hash=sha256:{real} \\\n    --hash=sha256:{H1}\nother==2 --hash=sha256:{H2}\n")
    assert allowed_hashes([lock]) == {real, H1, H2}
    (good.parent / ".complete").write_text("key\n")
    assert unlisted(good.parent, [lock]) == []
    (good.parent / "evil-1.0-py3-none-any.whl").write_bytes(b"planted")
    good.write_bytes(b"swapped")
    assert unlisted(good.parent, [lock]) == ["evil-1.0-py3-none-any.whl", "good-1.0-py3-none-any.whl"]
