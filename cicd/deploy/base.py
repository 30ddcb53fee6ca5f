"""The interface every deploy target implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Live:
    """What an environment is running right now, as its target reports it."""

    environment: str
    reference: str
    digest: str
    version: str
    url: str
    healthy: bool
    detail: str = ""
    colour: str = ""  # behind a proxy: the colour that serves (blue or green)
    host: str = ""  # the engine it runs on, as the toolkit reaches it


class Target(Protocol):
    def deploy(self, reference: str, image: str, digest: str, version: str, commit: str) -> Live:
        """Run ``reference`` and make it serve; on failure leave the previous release serving and raise."""
        ...

    def live(self) -> Live | None:
        """The release that serves now, or None."""
        ...

    def has(self, digest: str) -> bool:
        """``digest`` can be served again without fetching its image (a colour kept stopped)."""
        ...
