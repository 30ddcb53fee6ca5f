"""What the parts of :class:`cicd.images.Engine` share: the client, the write gate, and the one
place docker's exceptions become :mod:`cicd.errors` classes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import requests
from docker.errors import APIError, DockerException, NotFound

from cicd.errors import CICDError, ContainerError, EngineUnavailableError
from cicd.writes import Writes

LOG_TAIL = 25


def reason(err: BaseException) -> str:
    if isinstance(err, APIError) and err.explanation:
        return str(err.explanation)
    text = str(err).strip().splitlines()
    return text[-1] if text else type(err).__name__


class Part:
    """What every concern shares: the client, where it connects, the write gate."""

    def __init__(self, client: Any, where: str, writes: Writes) -> None:
        self.client, self.where, self.writes = client, where, writes

    @contextmanager
    def translated(self, what: str, missing: str | None = None) -> Iterator[None]:
        """Docker's exceptions → ours, once: a missing object, an engine gone, a refused call."""
        try:
            yield
        except CICDError:
            raise
        except NotFound as err:
            raise ContainerError(f"{what}: {missing or reason(err)} on {self.where}") from None
        except APIError as err:  # the engine answered (it is also a requests error: before that)
            raise ContainerError(f"{what}: {reason(err)}") from None
        except requests.RequestException as err:
            raise EngineUnavailableError(self.where, reason(err)) from None
        except DockerException as err:
            raise ContainerError(f"{what}: {reason(err)}") from None
