"""Images, containers and registries through the docker SDK: the only package that imports ``docker``.

Build contexts are sent through the API as tar streams and files move in and out of
containers with ``get_archive``, so a remote engine (``DOCKER_HOST``) works the same as a
local one: nothing is bind-mounted. :class:`Engine` is split by concern (``engine.images``,
``engine.containers``, ``engine.registry``); every docker exception is translated in
:mod:`cicd.images.base` and every write asks :class:`cicd.writes.Writes` first.
"""

from cicd.images.builds import BuildResult, Images
from cicd.images.containers import Container, Containers, RunResult
from cicd.images.context import ContextFile, extract_safely, read_ignore, tree_files, write_context
from cicd.images.engine import Engine
from cicd.images.registry import RegistryClient
from cicd.wheelhouse import Platform

__all__ = [
    "BuildResult",
    "Container",
    "Containers",
    "ContextFile",
    "Engine",
    "Images",
    "Platform",
    "RegistryClient",
    "RunResult",
    "extract_safely",
    "read_ignore",
    "tree_files",
    "write_context",
]
