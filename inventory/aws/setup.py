"""What each AWS account needs for the declared registries and queues, as CloudFormation: pure, no I/O.

``setup_stacks`` turns an ``InventoryConfig`` into one template per (account, region) that needs
anything, each to be deployed as the stack ``ecr-inventory`` in that account and region
(CloudFormation stacks are regional; IAM is global, so an account's IAM roles and policies live in
one of its stacks: that of us-east-1, which every account then has). In them:

- the read role of each ``role_arn`` the registries name (in the registry's account):
  ``ecr:DescribeRepositories`` and ``ecr:DescribeImages`` on the repositories of its private
  registries' regions, ``ecr-public:DescribeRepositories`` and ``ecr-public:DescribeImages`` for
  ECR Public, trusting the account the inventory runs in (the ``InventoryAccountId`` parameter: the
  file does not say it), with the ``external_id`` as a condition when every user of the role passes
  one. A registry without ``role_arn`` is read with the ambient credentials: a managed policy
  (``ecr-inventory-read``) holds the same permissions, for them to be attached to;
- for each private registry's account-region, a rule on the default event bus taking ECR's image
  events (``source`` ``aws.ecr``, ``ECR Image Action`` and ``ECR Image Scan``) to the queue they are
  routed to. EventBridge delivers to SQS only in its own region, so unless the queue is in that very
  account and region, the rule forwards to an event bus beside the queue (``ecr-inventory-<queue>``),
  through a role allowed ``events:PutEvents`` on it. ECR Public emits no events the inventory
  follows (the workers apply events of private registries only): it gets no rule;
- in the queue's account and region: the queue (named as in its URL), that bus with a policy letting
  the forwarding accounts put events on it, its rule targeting the queue, the queue's policy letting
  EventBridge ``sqs:SendMessage`` for those rules only (``aws:SourceArn``), and the queue's reader:
  the role its ``role_arn`` names (else the managed policy ``ecr-inventory-queue-<queue>``) with
  ``sqs:ReceiveMessage`` and ``sqs:DeleteMessage``, the calls the workers make.

Each account-region's events go to the first declared queue of that account and region, else of
that region, else to the first declared queue. What cannot be set up this way is a ``ConfigError``
listing every problem.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from itertools import groupby

from inventory.aws.templates import (
    IAM_REGION,
    INVENTORY_ACCOUNT,
    STACK_NAME,
    Source,
    Stack,
    StackBuilder,
    add_forward,
    add_identities,
    add_queue,
    queue_parts,
    role_parts,
)
from inventory.config import EventQueueConfig, InventoryConfig, RegistryConfig
from inventory.errors import ConfigError


def setup_stacks(config: InventoryConfig, where: str) -> list[Stack]:
    """The stacks the declared registries and queues need, by account then region; ``ConfigError``
    naming every problem (``where`` is the file) when the file does not say enough to set them up."""
    problems = list(_problems(config, where))
    if problems:
        raise ConfigError(where, problems)
    # without queues, only the roles the registries are read with (the sync's polling needs no more)
    queues = config.event_queues
    routes = {source: _route(source, queues) for source in _sources(config.registries)} if queues else {}
    accounts = sorted({r.account_id for r in config.registries} | {queue_parts(q)[0] for q in config.event_queues})
    stacks = []
    for account in accounts:
        declared = {region for r in config.registries if r.account_id == account for region in r.regions} | {
            q.region for q in config.event_queues if queue_parts(q)[0] == account
        }
        home = _home_region(declared)
        regions = sorted(
            {region for (a, region) in routes if a == account}
            | {q.region for q in config.event_queues if queue_parts(q)[0] == account}
            | {home}
        )
        for region in regions:
            stack = StackBuilder(account, region)
            if region == home:
                add_identities(stack, config, account)
            for queue in config.event_queues:
                if queue_parts(queue)[0] == account and queue.region == region:
                    add_queue(stack, queue, sorted(s for s, q in routes.items() if q == queue))
            if (account, region) in routes:
                add_forward(stack, routes[(account, region)])
            stacks.append(stack.done())
    return stacks


def templates_json(stacks: Iterable[Stack]) -> str:
    """Every template in one JSON object keyed ``ACCOUNT/REGION``, in the order of ``setup_stacks``."""
    return json.dumps({stack.key: stack.template for stack in stacks}, indent=2)


def summary(stacks: Sequence[Stack]) -> str:
    """What each stack creates, account by account and region by region, then how to deploy them."""
    lines: list[str] = []
    for account, of_account in groupby(stacks, key=lambda stack: stack.account_id):
        lines.append(f"Account {account}")
        for stack in of_account:
            lines.append(f"  {stack.region} (stack {STACK_NAME}):")
            lines.extend(f"    + {line}" for line in stack.summary)
    queues = [s.key for s in stacks if any(r["Type"] == "AWS::SQS::Queue" for r in s.template["Resources"].values())]
    trusting = any("Parameters" in s.template for s in stacks)
    overrides = (
        f" \\\n    --parameter-overrides {INVENTORY_ACCOUNT}=<the account the inventory runs in>" if trusting else ""
    )
    first = f", the queues' stacks first ({', '.join(queues)})" if queues else ""
    if not queues:
        lines += [
            "",
            "No [[event_queues]] declared: what the registries are read with, nothing more "
            "(ECR's events: see Freshness in the README).",
        ]
    lines += [
        "",
        f"Deploy each as the stack {STACK_NAME} in its account and region{first}:",
        "  inventory aws-setup --format cloudformation > stacks.json",
        "  jq '.\"ACCOUNT/REGION\"' stacks.json > template.json",
        f"  aws cloudformation deploy --stack-name {STACK_NAME} --region REGION --template-file template.json \\",
        f"    --capabilities CAPABILITY_NAMED_IAM{overrides}",
    ]
    if trusting:
        lines.append("The credentials the inventory runs with need sts:AssumeRole on the roles it trusts.")
    return "\n".join(lines)


# The checks ---------------------------------------------------------------------------


def _problems(config: InventoryConfig, where: str) -> Iterator[str]:
    if not config.registries:
        yield f"{where}: registries: none declared: aws-setup sets up the roles that read them"
    roles: dict[tuple[str, str], set[str]] = {}
    for index, registry in enumerate(config.registries):
        label = f"{where}: registries[{index}] ({registry.name!r})"
        yield from _role_problems(label, registry.role_arn, registry.account_id, "the registry's account_id", roles)
    for index, queue in enumerate(config.event_queues):
        label = f"{where}: event_queues[{index}] ({queue.name!r})"
        account, name = queue_parts(queue)
        if name.endswith(".fifo"):
            yield (
                f"{label}: url: a FIFO queue: EventBridge would put every event in one message group, which "
                "holds every worker behind its oldest message; aws-setup sets up a standard queue"
            )
        yield from _role_problems(label, queue.role_arn, account, "the queue's account (in its url)", roles)
    for (account, name), paths in sorted(roles.items()):
        if len(paths) > 1:
            yield f"{where}: role {name!r} of account {account} is named with paths {', '.join(sorted(paths))}"


def _role_problems(
    label: str, role_arn: str | None, account: str, whose: str, roles: dict[tuple[str, str], set[str]]
) -> Iterator[str]:
    if role_arn is None:
        return
    parts = role_parts(role_arn)
    if parts["account"] != account:
        yield (
            f"{label}: role_arn: in account {parts['account']}, not {whose} {account}: "
            "aws-setup creates the role in the account it reads"
        )
    roles.setdefault((parts["account"], parts["name"]), set()).add(parts["path"])


# Routing --------------------------------------------------------------------------------


def _sources(registries: Iterable[RegistryConfig]) -> list[Source]:
    """The account-regions of the private registries (ECR Public sends no events the inventory follows)."""
    return sorted({(r.account_id, region) for r in registries if r.type == "ecr" for region in r.regions})


def _home_region(regions: Iterable[str]) -> str:
    """Where an account's IAM resources live (IAM is global, a stack regional): us-east-1, whatever regions
    are declared, so that declaring one more never moves them; in another partition (GovCloud, China, ISO),
    where us-east-1 does not exist, the account's first region in alphabetical order."""
    elsewhere = sorted(r for r in regions if r.startswith("cn-") or "-gov-" in r or "-iso" in r)
    return elsewhere[0] if elsewhere else IAM_REGION


def _route(source: Source, queues: tuple[EventQueueConfig, ...]) -> EventQueueConfig:
    """The queue ``source``'s events go to: the first declared in its account and region, else in its
    region, else the first declared."""
    here = [q for q in queues if (queue_parts(q)[0], q.region) == source]
    return next(iter(here), next((q for q in queues if q.region == source[1]), queues[0]))
