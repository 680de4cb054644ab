"""STS, as much of it as cross-account inventories use: AssumeRole and GetCallerIdentity.

Credentials from ``AssumeRole`` on ``arn:aws:iam::<account>:role/<name>`` act as
``<account>`` in every later call. STS speaks the query protocol and answers XML.
"""

from __future__ import annotations

import re
import secrets
from datetime import timedelta
from typing import Any
from xml.sax.saxutils import escape

from inventory.aws.semantics import EcrError
from inventory.testing.store import Store, utcnow

ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::(?P<account>[0-9]{12}):role/(?P<role>[\w+=,.@/-]+)$")
_NAMESPACE = "https://sts.amazonaws.com/doc/2011-06-15/"


def _xml(action: str, result: str) -> str:
    return (
        f'<{action}Response xmlns="{_NAMESPACE}"><{action}Result>{result}</{action}Result>'
        f"<ResponseMetadata><RequestId>{secrets.token_hex(16)}</RequestId></ResponseMetadata>"
        f"</{action}Response>"
    )


def assume_role(store: Store, caller_account: str, params: dict[str, Any]) -> str:
    match = ROLE_ARN.match(params.get("RoleArn", ""))
    if match is None:
        raise EcrError("ValidationError", f"{params.get('RoleArn')!r} is not a valid role ARN")
    session = params.get("RoleSessionName", "session")
    duration = int(params.get("DurationSeconds", 3600))
    if not 900 <= duration <= 43200:
        raise EcrError("ValidationError", "DurationSeconds must be between 900 and 43200")
    account, role = match["account"], match["role"]
    credentials = store.issue_credentials(account)
    expiration = (utcnow() + timedelta(seconds=duration)).strftime("%Y-%m-%dT%H:%M:%SZ")
    fields = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in credentials.items())
    role_id = "AROA" + secrets.token_hex(8).upper()
    return _xml(
        "AssumeRole",
        f"<Credentials>{fields}<Expiration>{expiration}</Expiration></Credentials>"
        f"<AssumedRoleUser><AssumedRoleId>{role_id}:{escape(session)}</AssumedRoleId>"
        f"<Arn>arn:aws:sts::{account}:assumed-role/{escape(role)}/{escape(session)}</Arn>"
        "</AssumedRoleUser>",
    )


def get_caller_identity(store: Store, caller_account: str, params: dict[str, Any]) -> str:
    return _xml(
        "GetCallerIdentity",
        f"<Arn>arn:aws:iam::{caller_account}:user/emulator</Arn>"
        f"<UserId>AIDA{caller_account}</UserId><Account>{caller_account}</Account>",
    )


def error_xml(error: EcrError) -> str:
    return (
        f'<ErrorResponse xmlns="{_NAMESPACE}"><Error><Type>Sender</Type>'
        f"<Code>{error.code}</Code><Message>{escape(error.message)}</Message></Error>"
        f"<RequestId>{secrets.token_hex(16)}</RequestId></ErrorResponse>"
    )


ACTIONS = {"AssumeRole": assume_role, "GetCallerIdentity": get_caller_identity}
