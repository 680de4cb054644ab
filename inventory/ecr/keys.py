"""AWS access keys for the ECR-compatible endpoint.

A key is an API token (``api_tokens``) with an access key id: ``INVA`` and 16 random base32 characters,
as long as AWS's. Its secret access key is never stored: it is derived from the id and the server key
``INVENTORY_SECRET_KEY`` (32 random bytes, URL-safe base64), by HMAC-SHA256. ``inventory tokens create
--aws`` and ``inventory serve`` must see the same server key; changing it invalidates every access key
(create them again).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets

from inventory.errors import InventoryError

SECRET_KEY_VARIABLE = "INVENTORY_SECRET_KEY"
ACCESS_KEY_PREFIX = "INVA"
_BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
HOW_TO_MAKE_ONE = (
    f"make one with: export {SECRET_KEY_VARIABLE}=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))') "
    "(the same value for `inventory tokens create --aws` and `inventory serve`)"
)


class SecretKeyMissing(InventoryError):
    """INVENTORY_SECRET_KEY is not set."""


def server_key(environ: dict[str, str] | None = None) -> bytes:
    """The server key from ``INVENTORY_SECRET_KEY``; ``InventoryError`` saying how to make one when it is
    unset or not 32 bytes of URL-safe base64."""
    value = (os.environ if environ is None else environ).get(SECRET_KEY_VARIABLE)
    if not value:
        raise SecretKeyMissing(
            f"{SECRET_KEY_VARIABLE} is not set; AWS access keys are derived from it: {HOW_TO_MAKE_ONE}"
        )
    try:
        key = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 32:
        raise InventoryError(
            f"{SECRET_KEY_VARIABLE} must be 32 random bytes in URL-safe base64 (43 characters); {HOW_TO_MAKE_ONE}"
        )
    return key


def new_access_key_id() -> str:
    """``INVA`` and 16 random base32 characters (80 bits): 20 characters, as AWS's are."""
    return ACCESS_KEY_PREFIX + "".join(secrets.choice(_BASE32) for _ in range(16))


def secret_for(key: bytes, access_key_id: str) -> str:
    """The secret access key of ``access_key_id`` under the server key ``key``: 40 characters, as AWS's."""
    digest = hmac.new(key, b"inventory-aws-secret:" + access_key_id.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()[:40]


def is_access_key_id(value: str) -> bool:
    return len(value) == 20 and value.startswith(ACCESS_KEY_PREFIX) and all(c in _BASE32 for c in value[4:])
