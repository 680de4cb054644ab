"""Signature Version 4, verified as AWS verifies it: the signature is recomputed with botocore's own signer
(its canonical request, string to sign and signing key; nothing canonicalised by hand) over exactly the
headers the client signed, and compared in constant time; a request more than five minutes from the
server's clock is refused. Failures are ECR's exceptions: ``MissingAuthenticationTokenException``,
``IncompleteSignatureException``, ``InvalidSignatureException``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.compat import HTTPHeaders
from botocore.credentials import Credentials

from inventory.aws.semantics import EcrError

SKEW = timedelta(minutes=5)
"""How far a request's time may be from the server's (AWS's limit)."""
_TIMESTAMP = "%Y%m%dT%H%M%SZ"
_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256\s+Credential=(?P<key>[^/,\s]+)/(?P<date>[0-9]{8})/(?P<region>[a-z0-9-]+)/"
    r"(?P<service>[a-z0-9-]+)/aws4_request\s*,\s*SignedHeaders=(?P<headers>[a-z0-9;-]+)\s*,\s*"
    r"Signature=(?P<signature>[0-9a-f]{64})\s*"
)


@dataclass(frozen=True)
class Signed:
    """What a request's ``Authorization`` header says: who signed it, for which region and service."""

    access_key_id: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str
    timestamp: str
    """``X-Amz-Date``: the time the request was signed at."""


def signed(headers: Any) -> Signed:
    """The request's signature, parsed (``headers``: a case-insensitive mapping of its headers)."""
    header = headers.get("authorization")
    if not header:
        raise EcrError("MissingAuthenticationTokenException", "Missing Authentication Token", 403)
    found = _AUTHORIZATION.fullmatch(header.strip())
    if found is None:
        raise EcrError(
            "IncompleteSignatureException",
            "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' of AWS4-HMAC-SHA256",
        )
    timestamp = headers.get("x-amz-date") or ""
    signed_headers = tuple(found["headers"].split(";"))
    if not re.fullmatch(r"[0-9]{8}T[0-9]{6}Z", timestamp) or "x-amz-date" not in signed_headers:
        raise EcrError("IncompleteSignatureException", "the request needs a signed X-Amz-Date header")
    if "host" not in signed_headers:
        raise EcrError("IncompleteSignatureException", "the request's Host header must be signed")
    if timestamp[:8] != found["date"]:
        raise EcrError("InvalidSignatureException", "the credential's date is not the date of X-Amz-Date")
    return Signed(found["key"], found["region"], found["service"], signed_headers, found["signature"], timestamp)


class _Verifier(SigV4Auth):
    """botocore's signer over the headers the client signed (botocore picks its own when it signs)."""

    def __init__(self, credentials: Credentials, service: str, region: str, headers: Sequence[str]) -> None:
        super().__init__(credentials, service, region)
        self._names = headers

    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
        chosen = HTTPHeaders()
        for name in self._names:
            for value in request.headers.get_all(name) or ():
                chosen[name] = value
        return chosen


def verify(
    request: Signed,
    secret: str,
    *,
    method: str,
    url: str,
    headers: Sequence[tuple[str, str]],
    body: bytes,
    now: datetime | None = None,
) -> None:
    """Raise ``InvalidSignatureException`` unless ``request`` was signed with ``secret`` for this method,
    URL (as the client addressed it: scheme, host, raw path and query), headers and body, within ``SKEW``."""
    signed_at = datetime.strptime(request.timestamp, _TIMESTAMP).replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    stamp = now.strftime(_TIMESTAMP)
    if signed_at < now - SKEW:
        earliest = (now - SKEW).strftime(_TIMESTAMP)
        message = f"Signature expired: {request.timestamp} is now earlier than {earliest} ({stamp} - 5 min.)"
        raise EcrError("InvalidSignatureException", message)
    if signed_at > now + SKEW:
        latest = (now + SKEW).strftime(_TIMESTAMP)
        message = f"Signature not yet current: {request.timestamp} is still later than {latest} ({stamp} + 5 min.)"
        raise EcrError("InvalidSignatureException", message)
    given = HTTPHeaders()
    for name, value in headers:
        if name.lower() in request.signed_headers:
            given[name.lower()] = value
    claimed = given.get("x-amz-content-sha256")
    if claimed is not None and claimed != hashlib.sha256(body).hexdigest():
        raise EcrError("InvalidSignatureException", "X-Amz-Content-SHA256 is not the SHA-256 of the request's body")
    aws_request = AWSRequest(method=method, url=url, data=body)
    aws_request.headers = given
    aws_request.context["timestamp"] = request.timestamp
    signer = _Verifier(Credentials(request.access_key_id, secret), request.service, request.region,
                       request.signed_headers)  # fmt: skip
    expected = signer.signature(signer.string_to_sign(aws_request, signer.canonical_request(aws_request)), aws_request)
    if not hmac.compare_digest(expected, request.signature):
        raise EcrError(
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. Check your AWS "
            "Secret Access Key and signing method. Consult the service documentation for details.",
        )
