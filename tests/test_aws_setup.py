"""`inventory aws-setup`: real inventory files through the command line, the templates read back and checked
for what they grant and route, and every one of them validated by cfn-lint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import ManualArgs, lint
from click.testing import CliRunner

from inventory.cli import main

PATTERN = {"source": ["aws.ecr"], "detail-type": ["ECR Image Action", "ECR Image Scan"]}
BUS = "ecr-inventory-inventory-ecr-events"
BUS_ARN = {"Fn::Sub": f"arn:${{AWS::Partition}}:events:eu-west-1:111111111111:event-bus/{BUS}"}
QUEUE_ARN = {"Fn::Sub": "arn:${AWS::Partition}:sqs:eu-west-1:${AWS::AccountId}:inventory-ecr-events"}

# Four accounts: the queue's (111…, private ECR in two regions and ECR Public under one role), another with a
# role under a path (222…), one read without a role (333…), one of ECR Public only (444…).
FLEET = """\
[[registries]]
name = "prod"
account_id = "111111111111"
regions = ["us-east-1", "eu-west-1"]
role_arn = "arn:aws:iam::111111111111:role/inventory-reader"
external_id = "inventory-ext"
exclude = ["tmp/*"]

[[registries]]
name = "public"
type = "ecr-public"
account_id = "111111111111"
regions = ["us-east-1"]
role_arn = "arn:aws:iam::111111111111:role/inventory-reader"
external_id = "inventory-ext"

[[registries]]
name = "staging"
account_id = "222222222222"
regions = ["eu-west-1", "ap-southeast-2"]
role_arn = "arn:aws:iam::222222222222:role/teams/inventory-reader"

[[registries]]
name = "legacy"
account_id = "333333333333"
regions = ["eu-west-1"]

[[registries]]
name = "oss"
type = "ecr-public"
account_id = "444444444444"
regions = ["us-east-1"]
role_arn = "arn:aws:iam::444444444444:role/inventory-public"

[[event_queues]]
name = "ecr-events"
url = "https://sqs.eu-west-1.amazonaws.com/111111111111/inventory-ecr-events"
region = "eu-west-1"
role_arn = "arn:aws:iam::111111111111:role/inventory-events"
"""

# One account and region, no roles: the rule targets the queue directly, the ambient credentials get policies.
LOCAL = """\
[[registries]]
name = "prod"
account_id = "555555555555"
regions = ["us-east-1"]

[[event_queues]]
name = "events"
url = "https://sqs.us-east-1.amazonaws.com/555555555555/ecr-events"
region = "us-east-1"
"""


# The sample of README.md's Freshness section.
README_FLEET = """\
[[registries]]
name = "prod"
account_id = "111111111111"
regions = ["us-east-1", "eu-west-1"]
role_arn = "arn:aws:iam::111111111111:role/inventory-reader"

[[registries]]
name = "public"
type = "ecr-public"
account_id = "111111111111"
regions = ["us-east-1"]
role_arn = "arn:aws:iam::111111111111:role/inventory-reader"

[[registries]]
name = "staging"
account_id = "222222222222"
regions = ["eu-west-1"]
role_arn = "arn:aws:iam::222222222222:role/inventory-reader"

[[event_queues]]
name = "ecr-events"
url = "https://sqs.eu-west-1.amazonaws.com/111111111111/inventory-ecr-events"
region = "eu-west-1"
role_arn = "arn:aws:iam::111111111111:role/inventory-events"
"""
README = Path(__file__).resolve().parent.parent / "README.md"


def written(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "inventory.toml"
    path.write_text(text)
    return path


def aws_setup(path: Path, *args: str) -> str:
    result = CliRunner().invoke(main, ["aws-setup", "-c", str(path), *args])
    assert result.exit_code == 0, result.output
    return result.output


def stacks(path: Path) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = json.loads(aws_setup(path, "--format", "cloudformation"))
    return found


def resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r["Properties"] for name, r in template["Resources"].items() if r["Type"] == kind}


def role(template: dict[str, Any], name: str) -> dict[str, Any]:
    return next(r for r in resources(template, "AWS::IAM::Role").values() if r.get("RoleName") == name)


def statements(properties: dict[str, Any]) -> list[dict[str, Any]]:
    documents = [p["PolicyDocument"] for p in properties.get("Policies", [])] or [properties["PolicyDocument"]]
    return [statement for document in documents for statement in document["Statement"]]


@pytest.fixture
def fleet(tmp_path: Path) -> dict[str, dict[str, Any]]:
    return stacks(written(tmp_path, FLEET))


def test_one_stack_per_account_region_with_the_iam_of_each_account_in_us_east_1(
    fleet: dict[str, dict[str, Any]],
) -> None:
    assert list(fleet) == [
        "111111111111/eu-west-1",
        "111111111111/us-east-1",
        "222222222222/ap-southeast-2",
        "222222222222/eu-west-1",
        "222222222222/us-east-1",
        "333333333333/eu-west-1",
        "333333333333/us-east-1",
        "444444444444/us-east-1",
    ]
    for key, template in fleet.items():
        iam = {**resources(template, "AWS::IAM::ManagedPolicy"), **resources(template, "AWS::IAM::Role")}
        named = [r for r in iam.values() if "RoleName" in r or "ManagedPolicyName" in r]
        assert bool(named) == key.endswith("/us-east-1"), key  # named IAM only in the home stack


def test_the_read_role_grants_exactly_what_the_sync_calls(fleet: dict[str, dict[str, Any]]) -> None:
    reader = role(fleet["111111111111/us-east-1"], "inventory-reader")
    assert reader["Path"] == "/"
    assert statements(reader) == [
        {
            "Effect": "Allow",
            "Action": ["ecr:DescribeImages", "ecr:DescribeRepositories"],
            "Resource": [
                {"Fn::Sub": "arn:${AWS::Partition}:ecr:eu-west-1:${AWS::AccountId}:repository/*"},
                {"Fn::Sub": "arn:${AWS::Partition}:ecr:us-east-1:${AWS::AccountId}:repository/*"},
            ],
        },
        {
            "Effect": "Allow",
            "Action": ["ecr-public:DescribeImages", "ecr-public:DescribeRepositories"],
            "Resource": [{"Fn::Sub": "arn:${AWS::Partition}:ecr-public::${AWS::AccountId}:repository/*"}],
        },
    ]
    (trust,) = reader["AssumeRolePolicyDocument"]["Statement"]
    assert trust == {
        "Effect": "Allow",
        "Principal": {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${InventoryAccountId}:root"}},
        "Action": "sts:AssumeRole",
        "Condition": {"StringEquals": {"sts:ExternalId": "inventory-ext"}},
    }
    staging = role(fleet["222222222222/us-east-1"], "inventory-reader")
    assert staging["Path"] == "/teams/"
    assert "Condition" not in staging["AssumeRolePolicyDocument"]["Statement"][0]  # no external_id declared
    assert [s["Action"] for s in statements(role(fleet["444444444444/us-east-1"], "inventory-public"))] == [
        ["ecr-public:DescribeImages", "ecr-public:DescribeRepositories"]
    ]


def test_the_queue_reader_grants_exactly_what_the_workers_call(fleet: dict[str, dict[str, Any]]) -> None:
    reader = role(fleet["111111111111/us-east-1"], "inventory-events")
    assert statements(reader) == [
        {"Effect": "Allow", "Action": ["sqs:DeleteMessage", "sqs:ReceiveMessage"], "Resource": [QUEUE_ARN]}
    ]


def test_no_policy_grants_anything_but_the_calls_the_inventory_and_eventbridge_make(
    fleet: dict[str, dict[str, Any]],
) -> None:
    granted = set()
    for template in fleet.values():
        for kind in ("AWS::IAM::Role", "AWS::IAM::ManagedPolicy"):
            for properties in resources(template, kind).values():
                for statement in statements(properties):
                    action = statement["Action"]
                    granted.update([action] if isinstance(action, str) else action)
    assert granted == {
        "ecr:DescribeImages",
        "ecr:DescribeRepositories",
        "ecr-public:DescribeImages",
        "ecr-public:DescribeRepositories",
        "sqs:DeleteMessage",
        "sqs:ReceiveMessage",
        "events:PutEvents",
    }


def test_every_private_account_region_forwards_ecr_events_to_the_bus_beside_the_queue(
    fleet: dict[str, dict[str, Any]],
) -> None:
    forwarding = ["111111111111/us-east-1", "222222222222/ap-southeast-2", "222222222222/eu-west-1"]
    for key in [*forwarding, "333333333333/eu-west-1"]:
        template = fleet[key]
        rule = template["Resources"]["ForwardRule"]["Properties"]
        assert "EventBusName" not in rule  # the account-region's default bus, where ECR sends
        assert rule["EventPattern"] == PATTERN
        (target,) = rule["Targets"]
        assert target["Arn"] == BUS_ARN, key
        forward_role = template["Resources"][target["RoleArn"]["Fn::GetAtt"][0]]["Properties"]
        assert statements(forward_role) == [{"Effect": "Allow", "Action": "events:PutEvents", "Resource": BUS_ARN}]
        assert forward_role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
            "Service": "events.amazonaws.com"
        }
    # ECR Public sends no events the inventory follows: its only account has no rule at all
    assert resources(fleet["444444444444/us-east-1"], "AWS::Events::Rule") == {}


def test_the_queue_stack_holds_the_bus_its_policy_its_rule_and_the_queue_policy(
    fleet: dict[str, dict[str, Any]],
) -> None:
    template = fleet["111111111111/eu-west-1"]
    (queue_id,) = resources(template, "AWS::SQS::Queue")
    assert template["Resources"][queue_id]["Properties"]["QueueName"] == "inventory-ecr-events"
    (bus,) = resources(template, "AWS::Events::EventBus").values()
    assert bus == {"Name": BUS}
    (bus_policy,) = resources(template, "AWS::Events::EventBusPolicy").values()
    assert bus_policy["Statement"]["Action"] == "events:PutEvents"
    assert bus_policy["Statement"]["Principal"] == {
        "AWS": [
            {"Fn::Sub": "arn:${AWS::Partition}:iam::222222222222:root"},
            {"Fn::Sub": "arn:${AWS::Partition}:iam::333333333333:root"},
        ]
    }
    rules = resources(template, "AWS::Events::Rule")
    (bus_rule_id,) = [name for name, rule in rules.items() if "EventBusName" in rule]
    assert rules[bus_rule_id]["EventPattern"] == PATTERN
    assert rules[bus_rule_id]["Targets"] == [{"Id": "queue", "Arn": {"Fn::GetAtt": [queue_id, "Arn"]}}]
    # eu-west-1 of the queue's own account: its default bus's rule targets the queue directly
    assert rules["ForwardRule"]["EventPattern"] == PATTERN
    assert rules["ForwardRule"]["Targets"] == [{"Id": "queue", "Arn": {"Fn::GetAtt": [queue_id, "Arn"]}}]
    (queue_policy,) = resources(template, "AWS::SQS::QueuePolicy").values()
    assert queue_policy["Queues"] == [{"Ref": queue_id}]
    assert statements(queue_policy) == [
        {
            "Effect": "Allow",
            "Principal": {"Service": "events.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": {"Fn::GetAtt": [queue_id, "Arn"]},
            "Condition": {
                "ArnEquals": {
                    "aws:SourceArn": [{"Fn::GetAtt": [bus_rule_id, "Arn"]}, {"Fn::GetAtt": ["ForwardRule", "Arn"]}]
                }
            },
        }
    ]


def test_one_account_region_needs_no_bus_and_its_ambient_credentials_get_policies(tmp_path: Path) -> None:
    found = stacks(written(tmp_path, LOCAL))
    assert list(found) == ["555555555555/us-east-1"]
    template = found["555555555555/us-east-1"]
    assert "Parameters" not in template  # no role trusts the inventory's account
    assert resources(template, "AWS::Events::EventBus") == {}
    assert resources(template, "AWS::IAM::Role") == {}
    (queue_id,) = resources(template, "AWS::SQS::Queue")
    rule = template["Resources"]["ForwardRule"]["Properties"]
    assert rule["Targets"] == [{"Id": "queue", "Arn": {"Fn::GetAtt": [queue_id, "Arn"]}}]
    policies = resources(template, "AWS::IAM::ManagedPolicy")
    assert {p["ManagedPolicyName"]: [s["Action"] for s in statements(p)] for p in policies.values()} == {
        "ecr-inventory-read": [["ecr:DescribeImages", "ecr:DescribeRepositories"]],
        "ecr-inventory-queue-ecr-events": [["sqs:DeleteMessage", "sqs:ReceiveMessage"]],
    }
    assert sorted(template["Outputs"]) == sorted(f"{logical}Arn" for logical in policies)


def test_events_go_to_the_queue_of_their_own_region_first(tmp_path: Path) -> None:
    two = (
        LOCAL.replace('regions = ["us-east-1"]', 'regions = ["us-east-1", "eu-central-1"]')
        + '\n[[event_queues]]\nname = "frankfurt"\nregion = "eu-central-1"\n'
        'url = "https://sqs.eu-central-1.amazonaws.com/555555555555/ecr-events-fra"\n'
    )
    found = stacks(written(tmp_path, two))
    assert list(found) == ["555555555555/eu-central-1", "555555555555/us-east-1"]
    for key, queue in (("555555555555/eu-central-1", "ecr-events-fra"), ("555555555555/us-east-1", "ecr-events")):
        template = found[key]
        (queue_id,) = [n for n, q in resources(template, "AWS::SQS::Queue").items() if q["QueueName"] == queue]
        rule = template["Resources"]["ForwardRule"]["Properties"]
        assert rule["Targets"] == [{"Id": "queue", "Arn": {"Fn::GetAtt": [queue_id, "Arn"]}}]
        assert resources(template, "AWS::Events::EventBus") == {}


def lint_errors(template: dict[str, Any], region: str) -> list[str]:
    """cfn-lint's every finding, informational ones included, as ``RULE: message``."""
    matches = lint(json.dumps(template), config=ManualArgs(regions=[region], include_checks=["I"]))
    return [f"{match.rule.id}: {match.message} (line {match.linenumber})" for match in matches]


@pytest.mark.parametrize("config", [FLEET, LOCAL], ids=["fleet", "local"])
def test_every_template_passes_cfn_lint(config: str, tmp_path: Path) -> None:
    found = stacks(written(tmp_path, config))
    assert found
    for key, template in found.items():
        assert lint_errors(template, key.split("/")[1]) == [], key


def test_cfn_lint_finds_a_broken_template(fleet: dict[str, dict[str, Any]]) -> None:
    """The check above is not vacuous: the same call finds a wrong reference and a misspelt action."""
    template = json.loads(json.dumps(fleet["111111111111/eu-west-1"]))
    (policy,) = resources(template, "AWS::SQS::QueuePolicy").values()
    policy["PolicyDocument"]["Statement"][0]["Action"] = "sqs:SendMesage"
    policy["Queues"] = [{"Ref": "NoSuchQueue"}]
    found = lint_errors(template, "eu-west-1")
    assert any(line.startswith("E") for line in found) and any("sendmesage" in line for line in found), found


def test_the_summary_says_what_to_create_where_and_how_to_deploy(tmp_path: Path) -> None:
    text = aws_setup(written(tmp_path, FLEET))
    assert "Account 111111111111\n  eu-west-1 (stack ecr-inventory):\n    + SQS queue inventory-ecr-events" in text
    assert (
        "    + IAM role inventory-reader: ecr:DescribeImages, ecr:DescribeRepositories in eu-west-1, us-east-1; "
        "ecr-public:DescribeImages, ecr-public:DescribeRepositories; assumed from account InventoryAccountId "
        "with its external id\n"
    ) in text
    assert f"event bus policy of {BUS}: events:PutEvents from accounts 222222222222, 333333333333" in text
    assert (
        "  ap-southeast-2 (stack ecr-inventory):\n"
        "    + IAM role for ecr-inventory-events: events:PutEvents on event bus "
        f"{BUS} of 111111111111/eu-west-1\n"
    ) in text
    assert "IAM managed policy ecr-inventory-read: ecr:DescribeImages, ecr:DescribeRepositories in eu-west-1" in text
    assert "the queues' stacks first (111111111111/eu-west-1):" in text
    assert "aws cloudformation deploy --stack-name ecr-inventory --region REGION" in text
    assert "--parameter-overrides InventoryAccountId=<the account the inventory runs in>" in text


def test_the_readme_shows_what_the_command_prints(tmp_path: Path) -> None:
    readme = README.read_text()
    command = "$ inventory aws-setup -c inventory.toml\n"
    shown = readme[readme.index(command) + len(command) : readme.index(f"{command.strip()} --format cloudformation")]
    assert shown == aws_setup(written(tmp_path, README_FLEET))


@pytest.mark.parametrize("output", ["text", "cloudformation"])
def test_the_output_is_the_same_whatever_the_hash_seed(output: str, tmp_path: Path) -> None:
    path = written(tmp_path, FLEET)

    def run(seed: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "inventory", "aws-setup", "-c", str(path), "--format", output],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return done.stdout

    assert run("1") == run("2") == run("3")


def test_aws_setup_loads_neither_boto3_nor_the_database(tmp_path: Path) -> None:
    path = written(tmp_path, FLEET)
    code = (
        "import sys\n"
        f"sys.argv = ['inventory', 'aws-setup', '-c', {str(path)!r}]\n"
        "from inventory.cli import main\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
        "print('\\n'.join(sys.modules), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    heavy = ("boto3", "botocore", "sqlalchemy", "psycopg", "inventory.db", "inventory.sync")
    assert [m for m in done.stderr.split() if m.split(".")[0] in heavy or m.startswith(heavy)] == []


def test_what_cannot_be_set_up_is_reported_at_once(tmp_path: Path) -> None:
    path = written(
        tmp_path,
        """\
[[registries]]
name = "prod"
account_id = "111111111111"
regions = ["us-east-1"]
role_arn = "arn:aws:iam::999999999999:role/inventory-reader"

[[event_queues]]
name = "ordered"
url = "https://sqs.us-east-1.amazonaws.com/111111111111/events.fifo"
region = "us-east-1"
role_arn = "arn:aws:iam::111111111111:role/ops/inventory-reader"
""",
    )
    result = CliRunner().invoke(main, ["aws-setup", "-c", str(path)])
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        f"error: {path}: registries[0] ('prod'): role_arn: in account 999999999999, not the registry's account_id "
        "111111111111: aws-setup creates the role in the account it reads",
        f"error: {path}: event_queues[0] ('ordered'): url: a FIFO queue: EventBridge would put every event in one "
        "message group, which holds every worker behind its oldest message; aws-setup sets up a standard queue",
    ]


def test_a_role_named_with_two_paths_is_refused(tmp_path: Path) -> None:
    path = written(tmp_path, LOCAL.replace('regions = ["us-east-1"]', _roles("/", "/ops/")))
    result = CliRunner().invoke(main, ["aws-setup", "-c", str(path)])
    assert result.exit_code == 1
    assert result.output == f"error: {path}: role 'inventory' of account 555555555555 is named with paths /, /ops/\n"


def _roles(*paths: str) -> str:
    first, second = (f"arn:aws:iam::555555555555:role{path}inventory" for path in paths)
    return (
        f'regions = ["us-east-1"]\nrole_arn = "{first}"\n\n[[registries]]\nname = "public"\ntype = "ecr-public"\n'
        f'account_id = "555555555555"\nregions = ["us-east-1"]\nrole_arn = "{second}"'
    )


def test_a_file_without_registries_is_an_error(tmp_path: Path) -> None:
    path = written(tmp_path, "[[event_queues]]" + LOCAL.split("[[event_queues]]")[1])
    result = CliRunner().invoke(main, ["aws-setup", "-c", str(path), "--format", "cloudformation"])
    assert result.exit_code == 1
    assert result.output.startswith(f"error: {path}: registries: none declared: aws-setup sets up"), result.output


def test_without_queues_only_the_read_roles(tmp_path: Path) -> None:
    """Registries polled only (no [[event_queues]]): each account's read role or policy, and no rule, bus or queue."""
    path = written(tmp_path, FLEET.split("[[event_queues]]")[0])
    found = stacks(path)
    kinds = {resource["Type"] for template in found.values() for resource in template["Resources"].values()}
    assert kinds <= {"AWS::IAM::Role", "AWS::IAM::ManagedPolicy", "AWS::IAM::Policy"}, kinds
    assert sorted(found) == [
        "111111111111/us-east-1",
        "222222222222/us-east-1",
        "333333333333/us-east-1",
        "444444444444/us-east-1",
    ]
    for key, template in found.items():
        assert lint_errors(template, key.split("/")[1]) == []
    text = aws_setup(path)
    assert "No [[event_queues]] declared: what the registries are read with, nothing more" in text
    assert "queues' stacks first" not in text and "rule " not in text
