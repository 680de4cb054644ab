"""The CloudFormation resources of one stack of ``inventory aws-setup`` (``inventory.aws.setup``): pure.

A ``StackBuilder`` collects the resources of one account and region, each with a line saying it in
words; ``add_identities``, ``add_queue`` and ``add_forward`` add what an account, a queue and a
forwarding account-region need. Every ARN is spelled with ``${AWS::Partition}``; policies list exactly
the calls the inventory makes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from inventory.aws.events import IMAGE_ACTION, IMAGE_SCAN, SOURCE
from inventory.config import EventQueueConfig, InventoryConfig

IAM_REGION = "us-east-1"
"""The region of the stack holding an account's IAM resources (``inventory.aws.setup``)."""
STACK_NAME = "ecr-inventory"
"""The name of every stack: one per account and region, so the same name everywhere."""
FORWARD_RULE = "ecr-inventory-events"
"""The rule on each account-region's default event bus."""
QUEUE_RULE = "ecr-inventory-queue"
"""The rule on a queue's event bus."""
READ_POLICY = "ecr-inventory-read"
FORWARD_ID = "ForwardRule"
"""The logical id of the rule on the default event bus, in every stack that has one."""
INVENTORY_ACCOUNT = "InventoryAccountId"
"""The template parameter naming the account the inventory runs in, which the roles trust."""

EVENT_PATTERN = {"source": [SOURCE], "detail-type": [IMAGE_ACTION, IMAGE_SCAN]}
ECR_ACTIONS = ("ecr:DescribeImages", "ecr:DescribeRepositories")
"""What the sync calls on private ECR (``inventory.aws.paging``)."""
ECR_PUBLIC_ACTIONS = ("ecr-public:DescribeImages", "ecr-public:DescribeRepositories")
QUEUE_RETENTION_SECONDS = 4 * 86400
"""How long the queue keeps a message: SQS's default, said explicitly."""
QUEUE_ACTIONS = ("sqs:DeleteMessage", "sqs:ReceiveMessage")
"""What the workers call on a queue (``inventory.worker.events``; ``DeleteMessageBatch`` is ``sqs:DeleteMessage``)."""

_POLICY_VERSION = "2012-10-17"
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::(?P<account>[0-9]{12}):role(?P<path>/(?:.*/)?)(?P<name>[^/]+)$")

Source = tuple[str, str]
"""An (account, region) whose ECR events are forwarded."""


@dataclass(frozen=True)
class Stack:
    """One template, to be deployed as ``STACK_NAME`` in ``account_id``'s ``region``, and what it holds in words."""

    account_id: str
    region: str
    template: dict[str, Any]
    summary: tuple[str, ...]

    @property
    def key(self) -> str:
        return f"{self.account_id}/{self.region}"


def queue_parts(queue: EventQueueConfig) -> tuple[str, str]:
    """The queue's account and name, from its URL (``…/<account>/<name>``, as the config checked)."""
    _, account, name = queue.url.rsplit("/", 2)
    return account, name


def role_parts(role_arn: str) -> dict[str, str]:
    """A role ARN's ``account``, ``path`` (``/``, ``/teams/``) and ``name``."""
    found = _ROLE_ARN.match(role_arn)
    assert found is not None, role_arn  # the config checked it
    return found.groupdict()


def _bus_name(queue: EventQueueConfig) -> str:
    return f"ecr-inventory-{queue_parts(queue)[1]}"


@dataclass
class StackBuilder:
    """The resources of one stack as they are added, each with its line of the summary."""

    account_id: str
    region: str
    resources: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)
    trusts: bool = False
    """Whether a role trusts the ``INVENTORY_ACCOUNT`` parameter."""

    def add(
        self, kind: str, name: str, resource_type: str, properties: dict[str, Any], line: str, **attributes: str
    ) -> str:
        """Adds a resource (with ``attributes`` such as ``DeletionPolicy``) under a logical id made of ``kind``
        and ``name``, and ``line`` to the summary; returns the id."""
        base = kind + "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", name))
        logical, n = base, 1
        while logical in self.resources:
            n += 1
            logical = f"{base}{n}"
        self.resources[logical] = {"Type": resource_type, **attributes, "Properties": properties}
        self.lines.append(line)
        return logical

    def done(self) -> Stack:
        template: dict[str, Any] = {
            "AWSTemplateFormatVersion": "2010-09-09",
            "Description": f"ECR Inventory: account {self.account_id}, {self.region} (from `inventory aws-setup`)",
        }
        if self.trusts:
            template["Parameters"] = {
                INVENTORY_ACCOUNT: {
                    "Type": "String",
                    "AllowedPattern": "^[0-9]{12}$",
                    "Description": "The AWS account the inventory runs in: its roles are assumed from there",
                }
            }
        template["Resources"] = self.resources
        if self.outputs:
            template["Outputs"] = self.outputs
        return Stack(self.account_id, self.region, template, tuple(self.lines))


def _sub(text: str) -> dict[str, str]:
    return {"Fn::Sub": text}


def _policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": _POLICY_VERSION, "Statement": list(statements)}


@dataclass
class Needs:
    """What one identity (a role, or the ambient credentials) of an account must be allowed."""

    ecr_regions: set[str] = field(default_factory=set)
    ecr_public: bool = False
    queues: list[EventQueueConfig] = field(default_factory=list)
    external_ids: set[str | None] = field(default_factory=set)
    path: str = "/"

    def statements(self) -> list[dict[str, Any]]:
        found = []
        if self.ecr_regions:
            arns = [
                _sub(f"arn:${{AWS::Partition}}:ecr:{region}:${{AWS::AccountId}}:repository/*")
                for region in sorted(self.ecr_regions)
            ]
            found.append({"Effect": "Allow", "Action": list(ECR_ACTIONS), "Resource": arns})
        if self.ecr_public:
            arn = _sub("arn:${AWS::Partition}:ecr-public::${AWS::AccountId}:repository/*")
            found.append({"Effect": "Allow", "Action": list(ECR_PUBLIC_ACTIONS), "Resource": [arn]})
        if self.queues:
            arns = [_queue_arn(q) for q in self.queues]
            found.append({"Effect": "Allow", "Action": list(QUEUE_ACTIONS), "Resource": arns})
        return found

    def words(self) -> str:
        said = []
        if self.ecr_regions:
            said.append(f"{', '.join(ECR_ACTIONS)} in {', '.join(sorted(self.ecr_regions))}")
        if self.ecr_public:
            said.append(", ".join(ECR_PUBLIC_ACTIONS))
        if self.queues:
            names = ", ".join(f"{queue_parts(q)[1]} ({q.region})" for q in self.queues)
            said.append(f"{', '.join(QUEUE_ACTIONS)} on {names}")
        return "; ".join(said)


def _queue_arn(queue: EventQueueConfig) -> dict[str, str]:
    return _sub(f"arn:${{AWS::Partition}}:sqs:{queue.region}:${{AWS::AccountId}}:{queue_parts(queue)[1]}")


def add_identities(stack: StackBuilder, config: InventoryConfig, account: str) -> None:
    """The account's read roles and policies: one per ``role_arn`` named, one for the ambient credentials."""
    roles: dict[str, Needs] = {}
    ambient, queues = Needs(), []
    for registry in config.registries:
        if registry.account_id != account:
            continue
        needs = ambient
        if registry.role_arn is not None:
            parts = role_parts(registry.role_arn)
            needs = roles.setdefault(parts["name"], Needs(path=parts["path"]))
            needs.external_ids.add(registry.external_id)
        if registry.type == "ecr":
            needs.ecr_regions.update(registry.regions)
        else:
            needs.ecr_public = True
    for queue in config.event_queues:
        if queue_parts(queue)[0] != account:
            continue
        if queue.role_arn is None:
            queues.append(queue)
            continue
        parts = role_parts(queue.role_arn)
        needs = roles.setdefault(parts["name"], Needs(path=parts["path"]))
        needs.external_ids.add(queue.external_id)
        needs.queues.append(queue)
    for name, needs in sorted(roles.items()):
        _role(stack, name, needs)
    if ambient.statements():
        _managed_policy(stack, READ_POLICY, ambient, "the registries read without a role_arn")
    for queue in queues:
        queue_name = queue_parts(queue)[1]
        _managed_policy(stack, f"ecr-inventory-queue-{queue_name}", Needs(queues=[queue]), f"queue {queue_name}")


def _role(stack: StackBuilder, name: str, needs: Needs) -> None:
    trust: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"AWS": _sub(f"arn:${{AWS::Partition}}:iam::${{{INVENTORY_ACCOUNT}}}:root")},
        "Action": "sts:AssumeRole",
    }
    ids = sorted(i for i in needs.external_ids if i is not None)
    required = None not in needs.external_ids  # a user without one would be refused by the condition
    if required:
        trust["Condition"] = {"StringEquals": {"sts:ExternalId": ids[0] if len(ids) == 1 else ids}}
    properties = {
        "RoleName": name,
        "Path": needs.path,
        "Description": "ECR Inventory reads with this role (from `inventory aws-setup`)",
        "AssumeRolePolicyDocument": _policy(trust),
        "Policies": [{"PolicyName": READ_POLICY, "PolicyDocument": _policy(*needs.statements())}],
    }
    condition = " with its external id" if required else ""
    line = f"IAM role {name}: {needs.words()}; assumed from account {INVENTORY_ACCOUNT}{condition}"
    stack.add("Role", name, "AWS::IAM::Role", properties, line)
    stack.trusts = True


def _managed_policy(stack: StackBuilder, name: str, needs: Needs, whose: str) -> None:
    properties = {
        "ManagedPolicyName": name,
        "Description": f"ECR Inventory's ambient credentials: {whose} (from `inventory aws-setup`)",
        "PolicyDocument": _policy(*needs.statements()),
    }
    line = (
        f"IAM managed policy {name}: {needs.words()}; for the inventory's own credentials, which read it "
        "without a role: attach it to them"
    )
    logical = stack.add("Policy", name, "AWS::IAM::ManagedPolicy", properties, line)
    stack.outputs[f"{logical}Arn"] = {
        "Description": f"Attach to the inventory's credentials: {whose}",
        "Value": {"Ref": logical},
    }


def add_queue(stack: StackBuilder, queue: EventQueueConfig, sources: list[Source]) -> None:
    """The queue, its policy for the rules that send to it, and when events reach it from other account-regions
    (``sources``: those routed to it), the bus beside it and its rule."""
    queue_name = queue_parts(queue)[1]
    # SQS's defaults, said explicitly: a message is kept 4 days; deleting the stack deletes the queue (what it
    # held is repaired by the next full rounds).
    properties = {"QueueName": queue_name, "MessageRetentionPeriod": QUEUE_RETENTION_SECONDS}
    line = f"SQS queue {queue_name} (messages kept {QUEUE_RETENTION_SECONDS // 86400} days)"
    queue_id = stack.add(
        "Queue", queue_name, "AWS::SQS::Queue", properties, line, DeletionPolicy="Delete", UpdateReplacePolicy="Delete"
    )
    here = (stack.account_id, stack.region)
    remote = [source for source in sources if source != here]
    senders = [_bus(stack, queue, queue_id, remote)] if remote else []
    if here in sources:
        senders.append(FORWARD_ID)  # this account-region's own rule targets the queue directly (``add_forward``)
    if senders:
        statement = {
            "Effect": "Allow",
            "Principal": {"Service": "events.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": {"Fn::GetAtt": [queue_id, "Arn"]},
            "Condition": {"ArnEquals": {"aws:SourceArn": [{"Fn::GetAtt": [s, "Arn"]} for s in senders]}},
        }
        policy = {"Queues": [{"Ref": queue_id}], "PolicyDocument": _policy(statement)}
        line = f"queue policy of {queue_name}: sqs:SendMessage from EventBridge, for the rules above only"
        stack.add("QueuePolicy", queue_name, "AWS::SQS::QueuePolicy", policy, line)


def _bus(stack: StackBuilder, queue: EventQueueConfig, queue_id: str, remote: list[Source]) -> str:
    """The bus beside the queue that ``remote`` account-regions forward to, its policy, and its rule to the
    queue; returns the rule's logical id."""
    queue_name, bus = queue_parts(queue)[1], _bus_name(queue)
    bus_id = stack.add("Bus", queue_name, "AWS::Events::EventBus", {"Name": bus}, f"event bus {bus}")
    accounts = sorted({account for account, _ in remote if account != stack.account_id})
    if accounts:  # the bus's own account needs no resource policy: its forwarding roles' own policies suffice
        statement = {
            "Effect": "Allow",
            "Principal": {"AWS": [_sub(f"arn:${{AWS::Partition}}:iam::{a}:root") for a in accounts]},
            "Action": "events:PutEvents",
            "Resource": {"Fn::GetAtt": [bus_id, "Arn"]},
        }
        policy = {"EventBusName": {"Ref": bus_id}, "StatementId": "ecr-inventory-forwarders", "Statement": statement}
        line = f"event bus policy of {bus}: events:PutEvents from accounts {', '.join(accounts)}"
        stack.add("BusPolicy", queue_name, "AWS::Events::EventBusPolicy", policy, line)
    rule = {
        "Name": QUEUE_RULE,
        "Description": "ECR's image events forwarded here, to the inventory's queue",
        "EventBusName": {"Ref": bus_id},
        "EventPattern": EVENT_PATTERN,
        "State": "ENABLED",
        "Targets": [{"Id": "queue", "Arn": {"Fn::GetAtt": [queue_id, "Arn"]}}],
    }
    forwarded = ", ".join(f"{account}/{region}" for account, region in remote)
    line = f"rule {QUEUE_RULE} on {bus}: ECR's image events from {forwarded} -> queue {queue_name}"
    return stack.add("Rule", queue_name, "AWS::Events::Rule", rule, line)


def add_forward(stack: StackBuilder, queue: EventQueueConfig) -> None:
    """The rule taking this account-region's ECR events to ``queue``: directly when it is here, else to its bus."""
    account, queue_name = queue_parts(queue)
    rule: dict[str, Any] = {
        "Name": FORWARD_RULE,
        "Description": "ECR's image events, to the inventory's queue",
        "EventPattern": EVENT_PATTERN,
        "State": "ENABLED",
    }
    if (account, queue.region) == (stack.account_id, stack.region):
        rule["Targets"] = [{"Id": "queue", "Arn": {"Fn::GetAtt": [_queue_logical_id(stack, queue_name), "Arn"]}}]
        line = f"rule {FORWARD_RULE} on the default event bus: ECR's image events -> queue {queue_name}"
    else:
        bus = _bus_name(queue)
        bus_arn = _sub(f"arn:${{AWS::Partition}}:events:{queue.region}:{account}:event-bus/{bus}")
        role = {
            "Description": f"Puts ECR's image events on {bus} in {account}/{queue.region} (from `inventory aws-setup`)",
            "AssumeRolePolicyDocument": _policy(
                {"Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"}, "Action": "sts:AssumeRole"}
            ),
            "Policies": [
                {
                    "PolicyName": "ecr-inventory-forward",
                    "PolicyDocument": _policy({"Effect": "Allow", "Action": "events:PutEvents", "Resource": bus_arn}),
                }
            ],
        }
        line = f"IAM role for {FORWARD_RULE}: events:PutEvents on event bus {bus} of {account}/{queue.region}"
        role_id = stack.add("ForwardRole", "", "AWS::IAM::Role", role, line)
        rule["Targets"] = [{"Id": "bus", "Arn": bus_arn, "RoleArn": {"Fn::GetAtt": [role_id, "Arn"]}}]
        line = (
            f"rule {FORWARD_RULE} on the default event bus: ECR's image events -> event bus {bus} "
            f"of {account}/{queue.region}"
        )
    stack.add(FORWARD_ID, "", "AWS::Events::Rule", rule, line)


def _queue_logical_id(stack: StackBuilder, queue_name: str) -> str:
    return next(
        logical
        for logical, resource in stack.resources.items()
        if resource["Type"] == "AWS::SQS::Queue" and resource["Properties"]["QueueName"] == queue_name
    )
