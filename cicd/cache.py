"""Where the toolkit keeps what it may reuse between runs (``TRAINYARD_CACHE``, default
``~/.cache/trainyard``): wheelhouses, built wheels, image platforms, deploy locks."""

from __future__ import annotations

import os
from pathlib import Path

CACHE = Path(os.environ.get("TRAINYARD_CACHE") or Path.home() / ".cache" / "trainyard")
