"""Images, containers and registries through the docker SDK: the only package that imports ``docker``.

Build contexts are sent through the API as tar streams and files move in and out of
containers with ``get_archive``, so a remote engine (``DOCKER_HOST``) works the same as a
local one: nothing is bind-mounted. :class:`Engine` is split by concern (``engine.images``,
``engine.containers``, ``engine.registry``); every docker exception is translated in
:mod:`cicd.images.base` and every write asks :class:`cicd.writes.Writes` first.
"""

import sys

# docker imports its SSH transport, and with it paramiko (and invoke), whenever paramiko is
# installed: about 0.3 s of every command, though only an ssh:// engine uses it. It is held back
# while docker is imported, and imported with the transport when an ssh:// engine is opened
# (cicd.images.engine._ssh_transport).
if "docker" not in sys.modules and "paramiko" not in sys.modules:
    sys.modules["paramiko"] = None  # type: ignore[assignment]  # `import paramiko` raises ImportError
    try:
        import docker  # noqa: F401
    finally:
        del sys.modules["paramiko"]

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
