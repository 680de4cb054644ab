"""A small client of the emulator's admin API (see ``admin.py`` for the routes)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


class AdminClient:
    """Calls the admin API of the emulator at ``url``."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"{self.url}/_admin/{path}",
            data=data,
            method=method,
            headers={"content-type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"emulator admin {method} {path}: {exc.read().decode()}") from None

    def reset(self) -> None:
        self._call("POST", "reset", {})

    def seed(self, name: str = "demo") -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", "seed", {"seed": name})
        return result

    def put_images(
        self,
        registry_id: str,
        region: str,
        repository_name: str,
        images: list[dict[str, Any]],
        registry_type: str = "ecr",
    ) -> list[str]:
        """Create the repository if needed and add ``images`` (ImageDetail fields); their digests."""
        body = {
            "registryType": registry_type,
            "registryId": registry_id,
            "region": region,
            "repositoryName": repository_name,
            "images": images,
        }
        digests: list[str] = self._call("POST", "images", body)["imageDigests"]
        return digests

    def set_image(
        self,
        registry_id: str,
        region: str,
        repository_name: str,
        image_digest: str,
        registry_type: str = "ecr",
        **fields: Any,
    ) -> None:
        """Set ImageDetail fields of one image (``None`` removes a field)."""
        body = {
            "registryType": registry_type,
            "registryId": registry_id,
            "region": region,
            "repositoryName": repository_name,
            "imageDigest": image_digest,
            "set": fields,
        }
        self._call("PATCH", "images", body)

    def fault(self, fault: str, **options: Any) -> dict[str, Any]:
        """Arm a fault: throttle, server_error, deny, expire_tokens, delete_repository_after_page."""
        result: dict[str, Any] = self._call("POST", "faults", {"fault": fault, **options})
        return result

    def event_queue(
        self, region: str, name: str, registry_id: str = "123456789012", visibility_timeout: int | None = None
    ) -> str:
        """Create an SQS queue that receives every ECR event from now on; its URL."""
        body = {"registryId": registry_id, "region": region, "name": name, "visibilityTimeout": visibility_timeout}
        url: str = self._call("POST", "event_queues", body)["queueUrl"]
        return url

    def event_queues(self) -> dict[str, Any]:
        """Per queue: messages sent, deleted and held; ECR events emitted and dropped."""
        result: dict[str, Any] = self._call("GET", "event_queues")
        return result

    def clear_faults(self) -> None:
        self._call("DELETE", "faults")

    def calls(self) -> dict[str, int]:
        result: dict[str, int] = self._call("GET", "calls")
        return result

    def summary(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "summary")
        return result
