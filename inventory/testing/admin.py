"""The emulator's admin API: set what the public API cannot, and arm faults.

    POST   /_admin/reset                  forget everything
    POST   /_admin/seed       {"seed": "demo"}
    POST   /_admin/images     {registryType?, registryId, region, repositoryName, images: [...]}
    PATCH  /_admin/images     {registryType?, registryId, region, repositoryName, imageDigest, set: {...}}
    POST   /_admin/faults     {"fault": "throttle"|"server_error"|"malformed", "operation", "count"}
                              (malformed, with "how": "identity" (default): the first item without its
                               imageDigest/repositoryName; "shape": a string; "type": a text size)
                              {"fault": "deny", "registryId"}
                              {"fault": "expire_tokens"}        every token handed out so far
                              {"fault": "expire_next_token"}    the next token, as soon as it is issued
                              {"fault": "delete_repository_after_page", registryType?, registryId,
                               region, repositoryName}
                              {"fault": "latency", "seconds"}
                              {"fault": "rate_limit", "registryId", "perSecond"}   calls as or on that
                                                  account beyond perSecond in any second are throttled
                              {"fault": "drop_events", "fraction", "seed"?}   lose that fraction (0..1)
                                                  of the ECR events on their way to the queues
    DELETE /_admin/faults                 disarm every fault
    POST   /_admin/event_queues   {registryId?, region, name, visibilityTimeout?}
                                  create an SQS queue that receives every ECR event from now on;
                                  answers {"queueUrl"}
    GET    /_admin/event_queues           per queue: messages sent, deleted, held; events emitted, dropped
    GET    /_admin/calls                  API calls served, per operation
    GET    /_admin/summary                repositories and images per registry

Image fields use ECR's names; timestamps are ISO-8601 strings or epoch seconds. Adding images,
and setting their tags, status or scan, emits the ECR events AWS would (``inventory.testing.events``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from inventory.testing import events, seed
from inventory.testing.sqs import queue_url
from inventory.testing.store import (
    DEFAULT_ACCOUNT,
    SETTABLE_FIELDS,
    TIMESTAMP_FIELDS,
    Image,
    RegistryType,
    Repository,
    Store,
    synthetic_digest,
)


class AdminError(Exception):
    """A bad admin request; answered with HTTP 400."""


def _timestamp(key: str, value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise AdminError(f"{key}: not an ISO-8601 timestamp: {value!r}") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise AdminError(f"{key}: not a timestamp: {value!r}")


def image_fields(values: dict[str, Any]) -> dict[str, Any]:
    """Admin input as stored ImageDetail fields (timestamps parsed, unknown keys refused)."""
    unknown = set(values) - SETTABLE_FIELDS - {"imageDigest"}
    if unknown:
        raise AdminError(f"unknown image fields: {', '.join(sorted(unknown))}")
    fields = dict(values)
    for key, value in values.items():
        if key in TIMESTAMP_FIELDS:
            fields[key] = _timestamp(key, value)
    summary = fields.get("imageScanFindingsSummary")
    if isinstance(summary, dict):
        fields["imageScanFindingsSummary"] = {
            k: _timestamp(k, v) if k in TIMESTAMP_FIELDS else v for k, v in summary.items()
        }
    return fields


def _repository(store: Store, body: dict[str, Any], *, create: bool) -> Repository:
    try:
        registry_type: RegistryType = body.get("registryType", "ecr")
        key = (registry_type, body["registryId"], body.get("region", "us-east-1"))
        name = body["repositoryName"]
    except KeyError as exc:
        raise AdminError(f"missing key {exc.args[0]!r}") from None
    repository = store.repository(*key, name)
    if repository is None:
        if not create:
            raise AdminError(f"no repository {name!r} in {key}")
        repository = store.create_repository(*key, name)
    return repository


def put_images(store: Store, body: dict[str, Any]) -> dict[str, Any]:
    repository = _repository(store, body, create=True)
    digests = []
    for index, values in enumerate(body.get("images", [])):
        fields = image_fields(values)
        fields.setdefault("imageDigest", synthetic_digest(repository.registry_id, repository.name, index))
        image = store.add_image(repository, fields)
        digests.append(image.image_digest)
        tags: list[str | None] = [*image.tags] or [None]
        for tag in tags:
            events.pushed(store, repository, image, tag)
    return {"imageDigests": digests}


def set_image(store: Store, body: dict[str, Any]) -> dict[str, Any]:
    repository = _repository(store, body, create=False)
    image = repository.images.get(body.get("imageDigest", ""))
    if image is None:
        raise AdminError(f"no image {body.get('imageDigest')!r} in {repository.name!r}")
    changes = image_fields(body.get("set", {}))
    tags_before, status_before = list(image.tags), image.status
    if "imageTags" in changes:
        image = store.add_image(repository, {**image.detail, **changes})
    else:
        image.detail.update(changes)
    _announce(store, repository, image, tags_before, status_before, changes)
    return {"imageDigest": image.image_digest}


def _announce(
    store: Store,
    repository: Repository,
    image: Image,
    tags_before: list[str],
    status_before: str,
    changes: dict[str, Any],
) -> None:
    """The events ECR sends for what ``set_image`` did: a tag put on (a push of the manifest with it), a tag
    deleted, an archive or restore, a scan. A tag moved away from another image is announced by no event."""
    for tag in image.tags:
        if tag not in tags_before:
            events.pushed(store, repository, image, tag)
    for tag in tags_before:
        if tag not in image.tags:
            events.deleted(store, repository, image.image_digest, tag)
    if image.status != status_before and image.status in ("ARCHIVED", "ACTIVE"):
        events.storage_class_changed(store, repository, image)
    if "imageScanStatus" in changes or "imageScanFindingsSummary" in changes:
        events.scanned(store, repository, image)


def arm_fault(store: Store, body: dict[str, Any]) -> dict[str, Any]:
    faults = store.faults
    kind = body.get("fault")
    if kind in ("throttle", "server_error", "malformed"):
        if kind == "malformed":
            faults.malformed_how = str(body.get("how", "identity"))
        armed = getattr(faults, kind)
        operation = body.get("operation", "*")
        armed[operation] = armed.get(operation, 0) + int(body.get("count", 1))
    elif kind == "deny":
        faults.denied_accounts.add(str(body["registryId"]))
    elif kind == "expire_tokens":
        return {"expired": store.expire_tokens()}
    elif kind == "expire_next_token":
        faults.expire_next_token = True
    elif kind == "delete_repository_after_page":
        repository = _repository(store, body, create=False)
        faults.delete_after_page.add(
            (repository.registry_type, repository.registry_id, repository.region, repository.name)
        )
    elif kind == "rate_limit":
        faults.rate_limits[str(body["registryId"])] = float(body["perSecond"])
    elif kind == "drop_events":
        fraction = float(body.get("fraction", 0))
        if not 0 <= fraction <= 1:
            raise AdminError(f"fraction: must be between 0 and 1, got {fraction}")
        faults.drop_events = fraction
        if body.get("seed") is not None:
            store.random.seed(body["seed"])
    elif kind == "latency":
        faults.latency_seconds = float(body.get("seconds", 0))
    else:
        raise AdminError(f"unknown fault {kind!r}")
    return {"armed": kind}


def summary(store: Store) -> dict[str, Any]:
    registries: dict[str, dict[str, int]] = {}
    for (kind, account, region, _), repository in sorted(store.repositories.items()):
        entry = registries.setdefault(f"{kind}/{account}/{region}", {"repositories": 0, "images": 0})
        entry["repositories"] += 1
        entry["images"] += len(repository.images)
    return {"registries": registries}


def event_queue(store: Store, body: dict[str, Any], base_url: str) -> dict[str, Any]:
    try:
        region, name = str(body["region"]), str(body["name"])
    except KeyError as exc:
        raise AdminError(f"missing key {exc.args[0]!r}") from None
    account = str(body.get("registryId", DEFAULT_ACCOUNT))
    events.subscribe(store, account, region, name)
    if body.get("visibilityTimeout") is not None:
        store.queues[(account, region, name)].visibility_timeout = int(body["visibilityTimeout"])
    return {"queueUrl": queue_url(base_url, store.queues[(account, region, name)])}


def event_queues(store: Store) -> dict[str, Any]:
    queues = {
        f"{account}/{region}/{name}": {"sent": queue.sent, "deleted": queue.deleted, "held": len(queue.messages)}
        for (account, region, name), queue in sorted(store.queues.items())
    }
    return {"queues": queues, "emitted": store.events_emitted, "dropped": store.events_dropped}


async def _event_queue(request: Request) -> Response:
    body = await request.json() if await request.body() else {}
    store: Store = request.app.state.store
    with store.locked():
        try:
            return JSONResponse(event_queue(store, body, str(request.base_url)))
        except AdminError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)


def _endpoint(
    action: Callable[[Store, dict[str, Any]], dict[str, Any]],
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        body = await request.json() if await request.body() else {}
        store: Store = request.app.state.store
        with store.locked():
            try:
                return JSONResponse(action(store, body))
            except AdminError as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)

    return endpoint


def _reset(store: Store, _: dict[str, Any]) -> dict[str, Any]:
    store.reset()
    return {}


def _seed(store: Store, body: dict[str, Any]) -> dict[str, Any]:
    name = body.get("seed", "demo")
    if name not in seed.SEEDS:
        raise AdminError(f"unknown seed {name!r}; known: {', '.join(seed.SEEDS)}")
    seed.SEEDS[name](store)
    return summary(store)


def _clear_faults(store: Store, _: dict[str, Any]) -> dict[str, Any]:
    store.faults = type(store.faults)()
    return {}


routes = [
    Route("/_admin/reset", _endpoint(_reset), methods=["POST"]),
    Route("/_admin/seed", _endpoint(_seed), methods=["POST"]),
    Route("/_admin/images", _endpoint(put_images), methods=["POST"]),
    Route("/_admin/images", _endpoint(set_image), methods=["PATCH"]),
    Route("/_admin/faults", _endpoint(arm_fault), methods=["POST"]),
    Route("/_admin/faults", _endpoint(_clear_faults), methods=["DELETE"]),
    Route("/_admin/calls", _endpoint(lambda store, _: dict(store.calls)), methods=["GET"]),
    Route("/_admin/summary", _endpoint(lambda store, _: summary(store)), methods=["GET"]),
    Route("/_admin/event_queues", _event_queue, methods=["POST"]),
    Route("/_admin/event_queues", _endpoint(lambda store, _: event_queues(store)), methods=["GET"]),
]
