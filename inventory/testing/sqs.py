"""An SQS queue as the SQS API documents it, in the AWS JSON 1.0 protocol that current boto3 speaks.

``X-Amz-Target: AmazonSQS.<Operation>``, ``application/x-amz-json-1.0``. Errors carry the
shape name in ``__type`` (``com.amazonaws.sqs#QueueDoesNotExist``) and the query protocol's
code in the ``x-amzn-query-error`` header, which botocore turns into the error code its
users know (``AWS.SimpleQueueService.NonExistentQueue``).

Messages are delivered at least once: a received message is invisible for the queue's
``VisibilityTimeout`` (or the request's), then visible again unless deleted with a receipt
handle it was given. ``ReceiveMessage`` returns at most ``MaxNumberOfMessages`` (1..10) of
the visible ones, oldest first; with ``WaitTimeSeconds`` (0..20) the server holds the
request until one arrives (the long poll, ``poll``), else it answers at once, possibly empty.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

DEFAULT_VISIBILITY_TIMEOUT = 30
MAX_MESSAGES = 10
MAX_WAIT_SECONDS = 20
MAX_BODY_BYTES = 262_144
QUEUE_ATTRIBUTES = (
    "VisibilityTimeout",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "CreatedTimestamp",
    "LastModifiedTimestamp",
    "QueueArn",
    "ApproximateNumberOfMessagesDelayed",
    "DelaySeconds",
    "ReceiveMessageWaitTimeSeconds",
)
_QUERY_CODES = {
    "QueueDoesNotExist": "AWS.SimpleQueueService.NonExistentQueue",
    "ReceiptHandleIsInvalid": "ReceiptHandleIsInvalid",
    "InvalidParameterValue": "InvalidParameterValue",
    "InvalidAttributeName": "InvalidAttributeName",
    "EmptyBatchRequest": "AWS.SimpleQueueService.EmptyBatchRequest",
    "TooManyEntriesInBatchRequest": "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
    "BatchEntryIdsNotDistinct": "AWS.SimpleQueueService.BatchEntryIdsNotDistinct",
    "InvalidMessageContents": "InvalidMessageContents",
    "QueueNameExists": "QueueAlreadyExists",
    "MissingParameter": "MissingParameter",
}


class SqsError(Exception):
    """An error as SQS answers it: the shape name, a message, the HTTP status (400: the sender's fault)."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status

    @property
    def query_error(self) -> str:
        """The ``x-amzn-query-error`` header: the query protocol's code, and whose fault it was."""
        return f"{_QUERY_CODES.get(self.code, self.code)};{'Sender' if self.status < 500 else 'Receiver'}"


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


@dataclass
class Message:
    message_id: str
    body: str
    sent_at: float
    visible_at: float
    receive_count: int = 0
    first_received_at: float | None = None
    receipt_handle: str | None = None
    """The handle of its latest receipt (earlier ones still delete it, as in SQS)."""


@dataclass
class Queue:
    """One queue: its messages in send order, and its attributes."""

    account: str
    region: str
    name: str
    created_at: float = field(default_factory=time.time)
    visibility_timeout: int = DEFAULT_VISIBILITY_TIMEOUT
    wait_seconds: int = 0
    messages: list[Message] = field(default_factory=list)
    handles: dict[str, str] = field(default_factory=dict)
    """receipt handle → message id, for every receipt of a message still held."""
    sent: int = 0
    deleted: int = 0

    @property
    def arn(self) -> str:
        return f"arn:aws:sqs:{self.region}:{self.account}:{self.name}"

    def send(self, body: str, delay: float = 0.0, now: float | None = None) -> Message:
        now = time.time() if now is None else now
        message = Message(str(uuid.uuid4()), body, now, now + delay)
        self.messages.append(message)
        self.sent += 1
        return message

    def receive(self, limit: int, visibility: int, now: float | None = None) -> list[Message]:
        """Up to ``limit`` visible messages, oldest first, now hidden for ``visibility`` seconds."""
        now = time.time() if now is None else now
        chosen = [m for m in self.messages if m.visible_at <= now][:limit]
        for message in chosen:
            message.receive_count += 1
            message.first_received_at = message.first_received_at or now
            message.visible_at = now + visibility
            message.receipt_handle = secrets.token_urlsafe(64)
            self.handles[message.receipt_handle] = message.message_id
        return chosen

    def delete(self, receipt_handle: str) -> None:
        """Delete the message a receipt handle was given for; a handle this queue never gave is invalid."""
        message_id = self.handles.get(receipt_handle)
        if message_id is None:
            if "deleted:" + receipt_handle in self.handles:
                return
            raise SqsError(
                "ReceiptHandleIsInvalid", f'The input receipt handle "{receipt_handle}" is not a valid receipt handle.'
            )
        kept = [m for m in self.messages if m.message_id != message_id]
        self.deleted += len(self.messages) - len(kept)
        self.messages = kept
        for handle in [h for h, m in self.handles.items() if m == message_id]:
            del self.handles[handle]
        self.handles["deleted:" + receipt_handle] = message_id  # deleting it again succeeds, as in SQS

    def attributes(self, now: float | None = None) -> dict[str, str]:
        now = time.time() if now is None else now
        shown = sum(1 for m in self.messages if m.visible_at <= now)
        return {
            "VisibilityTimeout": str(self.visibility_timeout),
            "MaximumMessageSize": str(MAX_BODY_BYTES),
            "MessageRetentionPeriod": "345600",
            "ApproximateNumberOfMessages": str(shown),
            "ApproximateNumberOfMessagesNotVisible": str(len(self.messages) - shown),
            "CreatedTimestamp": str(int(self.created_at)),
            "LastModifiedTimestamp": str(int(self.created_at)),
            "QueueArn": self.arn,
            "ApproximateNumberOfMessagesDelayed": "0",
            "DelaySeconds": "0",
            "ReceiveMessageWaitTimeSeconds": str(self.wait_seconds),
        }


@dataclass(frozen=True)
class Caller:
    """The account of the credentials, the signed region, and the URL the request reached."""

    account: str
    region: str
    base_url: str


Queues = dict[tuple[str, str, str], Queue]
"""(account, region, name) → queue."""


def queue_url(base_url: str, queue: Queue) -> str:
    return f"{base_url.rstrip('/')}/{queue.account}/{queue.name}"


def _queue(queues: Queues, caller: Caller, params: dict[str, Any]) -> Queue:
    url = params.get("QueueUrl")
    if not isinstance(url, str):
        raise SqsError("MissingParameter", "The request must contain the parameter QueueUrl.")
    parts = url.rstrip("/").split("/")
    queue = queues.get((parts[-2], caller.region, parts[-1])) if len(parts) >= 2 else None
    if queue is None:
        raise SqsError("QueueDoesNotExist", "The specified queue does not exist.")
    return queue


def _integer(params: dict[str, Any], name: str, low: int, high: int, default: int) -> int:
    value = params.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise SqsError(
            "InvalidParameterValue",
            f"Value {value} for parameter {name} is invalid. Reason: Must be between {low} and {high}, if provided.",
        )
    return value


def create_queue(queues: Queues, caller: Caller, params: dict[str, Any]) -> dict[str, Any]:
    name = params.get("QueueName")
    if not isinstance(name, str) or not name:
        raise SqsError("MissingParameter", "The request must contain the parameter QueueName.")
    key = (caller.account, caller.region, name)
    attributes = params.get("Attributes") or {}
    if key not in queues:
        queue = Queue(caller.account, caller.region, name)
        queue.visibility_timeout = int(attributes.get("VisibilityTimeout", DEFAULT_VISIBILITY_TIMEOUT))
        queue.wait_seconds = int(attributes.get("ReceiveMessageWaitTimeSeconds", 0))
        queues[key] = queue
    return {"QueueUrl": queue_url(caller.base_url, queues[key])}


def get_queue_url(queues: Queues, caller: Caller, params: dict[str, Any]) -> dict[str, Any]:
    account = params.get("QueueOwnerAWSAccountId") or caller.account
    queue = queues.get((account, caller.region, str(params.get("QueueName"))))
    if queue is None:
        raise SqsError("QueueDoesNotExist", "The specified queue does not exist.")
    return {"QueueUrl": queue_url(caller.base_url, queue)}


def send_message(queues: Queues, caller: Caller, params: dict[str, Any]) -> dict[str, Any]:
    queue = _queue(queues, caller, params)
    body = params.get("MessageBody")
    if not isinstance(body, str) or not body:
        raise SqsError("MissingParameter", "The request must contain the parameter MessageBody.")
    if len(body.encode()) > MAX_BODY_BYTES:
        raise SqsError(
            "InvalidParameterValue",
            f"One or more parameters are invalid. Reason: Message must be shorter than {MAX_BODY_BYTES} bytes.",
        )
    message = queue.send(body, _integer(params, "DelaySeconds", 0, 900, 0))
    return {"MessageId": message.message_id, "MD5OfMessageBody": _md5(body)}


def receive_message(queues: Queues, caller: Caller, params: dict[str, Any]) -> dict[str, Any]:
    """One attempt of a receive: the messages visible now (the server repeats it while long polling)."""
    queue = _queue(queues, caller, params)
    limit = _integer(params, "MaxNumberOfMessages", 1, MAX_MESSAGES, 1)
    visibility = _integer(params, "VisibilityTimeout", 0, 43200, queue.visibility_timeout)
    wanted = set(params.get("MessageSystemAttributeNames") or []) | set(params.get("AttributeNames") or [])
    messages = []
    for message in queue.receive(limit, visibility):
        assert message.receipt_handle is not None and message.first_received_at is not None
        answer: dict[str, Any] = {
            "MessageId": message.message_id,
            "ReceiptHandle": message.receipt_handle,
            "MD5OfBody": _md5(message.body),
            "Body": message.body,
        }
        attributes = {
            "SenderId": caller.account,
            "SentTimestamp": str(int(message.sent_at * 1000)),
            "ApproximateReceiveCount": str(message.receive_count),
            "ApproximateFirstReceiveTimestamp": str(int(message.first_received_at * 1000)),
        }
        chosen = {k: v for k, v in attributes.items() if "All" in wanted or k in wanted}
        if chosen:
            answer["Attributes"] = chosen
        messages.append(answer)
    return {"Messages": messages} if messages else {}


def wait_seconds(queues: Queues, caller: Caller, params: dict[str, Any]) -> int:
    """How long a receive may wait for a message: the request's ``WaitTimeSeconds``, else the queue's."""
    queue = _queue(queues, caller, params)
    return _integer(params, "WaitTimeSeconds", 0, MAX_WAIT_SECONDS, queue.wait_seconds)


def delete_message(queues: Queues, caller: Caller, params: dict[str, Any]) -> dict[str, Any]:
    queue = _queue(queues, caller, params)
    handle = params.get("ReceiptHandle")
    if not isinstance(handle, str):
        raise SqsError("MissingParameter", "The request must contain the parameter ReceiptHandle.")
    queue.delete(handle)
    return {}


def delete_message_batch(queues: Queues, caller: Caller, params: dict[str, Any]) -> dict[str, Any]:
    queue = _queue(queues, caller, params)
    entries = params.get("Entries") or []
    if not entries:
        raise SqsError(
            "EmptyBatchRequest", "There should be at least one DeleteMessageBatchRequestEntry in the request."
        )
    if len(entries) > MAX_MESSAGES:
        raise SqsError(
            "TooManyEntriesInBatchRequest",
            f"Maximum number of entries per request are {MAX_MESSAGES}. You have sent {len(entries)}.",
        )
    ids = [entry.get("Id") for entry in entries]
    if len(set(ids)) < len(ids):
        raise SqsError("BatchEntryIdsNotDistinct", "Id values must be unique within a batch request.")
    successful, failed = [], []
    for entry in entries:
        try:
            queue.delete(str(entry.get("ReceiptHandle")))
            successful.append({"Id": entry["Id"]})
        except SqsError as exc:
            failed.append({"Id": entry["Id"], "SenderFault": True, "Code": exc.code, "Message": exc.message})
    return {"Successful": successful, "Failed": failed}


def get_queue_attributes(queues: Queues, caller: Caller, params: dict[str, Any]) -> dict[str, Any]:
    queue = _queue(queues, caller, params)
    names = params.get("AttributeNames") or []
    unknown = [name for name in names if name != "All" and name not in QUEUE_ATTRIBUTES]
    if unknown:
        raise SqsError("InvalidAttributeName", f"Unknown Attribute {unknown[0]}.")
    attributes = queue.attributes()
    chosen = attributes if "All" in names else {k: v for k, v in attributes.items() if k in names}
    return {"Attributes": chosen} if chosen else {}


Handler = Callable[[Queues, Caller, dict[str, Any]], dict[str, Any]]

OPERATIONS: dict[str, Handler] = {
    "CreateQueue": create_queue,
    "GetQueueUrl": get_queue_url,
    "SendMessage": send_message,
    "ReceiveMessage": receive_message,
    "DeleteMessage": delete_message,
    "DeleteMessageBatch": delete_message_batch,
    "GetQueueAttributes": get_queue_attributes,
}
