"""``engine.registry``: push an image and get its digest; pull by digest. Credentials never show."""

from __future__ import annotations

import logging

import requests
from docker.errors import APIError, DockerException

from cicd.errors import RegistryError
from cicd.images.base import Part, reason
from cicd.writes import mask

log = logging.getLogger(__name__)


class RegistryClient(Part):
    def push(self, repository: str, tag: str, credentials: tuple[str, str] | None) -> str:
        """Push ``repository:tag``; the pushed reference by digest (``repository@sha256:...``), or
        ``repository:tag`` when a dry run only said it would push."""
        secrets = credentials or ()
        if not self.writes.allow(f"push {repository}:{tag} (credentials: {'set' if credentials else 'none'})"):
            return f"{repository}:{tag}"
        auth = {"username": credentials[0], "password": credentials[1]} if credentials else None
        digest = ""
        try:
            for chunk in self.client.api.push(repository, tag=tag, auth_config=auth, stream=True, decode=True):
                if "error" in chunk:
                    raise RegistryError(
                        f"the registry refused {repository}:{tag}: {mask(str(chunk['error']), secrets)}; "
                        "check the registry URL and the TRAINYARD_REGISTRY_* credentials"
                    )
                status = chunk.get("status")
                if status and chunk.get("id") is None:
                    log.info("%s", mask(str(status), secrets))
                aux = chunk.get("aux") or {}
                if "Digest" in aux:
                    digest = str(aux["Digest"])
        except (APIError, DockerException, requests.RequestException) as err:
            raise RegistryError(
                f"pushing {repository}:{tag} failed: {mask(reason(err), secrets)}; "
                "is the registry running and reachable?"
            ) from None
        if not digest:
            raise RegistryError(f"the registry did not return a digest for {repository}:{tag}")
        return f"{repository}@{digest}"

    def pull(self, reference: str, credentials: tuple[str, str] | None) -> str:
        """Pull an image by digest reference; the local image id (the reference itself in a dry run)."""
        if not self.writes.allow(f"pull {reference}"):
            return reference
        auth = {"username": credentials[0], "password": credentials[1]} if credentials else None
        try:
            image = self.client.images.pull(reference, auth_config=auth)
        except (APIError, DockerException, requests.RequestException) as err:
            raise RegistryError(
                f"cannot pull {reference}: {mask(reason(err), credentials or ())}; "
                "is the registry running, and does it still hold that digest?"
            ) from None
        return str(image.id)
