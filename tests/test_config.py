"""The declarative inventory file: every key, every problem at once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from inventory.config import (
    EventQueueConfig,
    RegistryConfig,
    RetentionConfig,
    Settings,
    WebhookConfig,
    load_config,
    webhook_secrets,
)
from inventory.errors import ConfigError

FULL = """
[[registries]]
name = "prod"
type = "ecr"
account_id = "111111111111"
regions = ["us-east-1", "eu-west-1"]
role_arn = "arn:aws:iam::111111111111:role/inventory-reader"
external_id = "s3cr3t-id"
repositories = ["*"]
exclude = ["tmp/*"]
endpoint_url = "http://127.0.0.1:5000"

[[registries]]
name = "public"
type = "ecr-public"
account_id = "111111111111"
regions = ["us-east-1"]
"""

BROKEN = """
colour = "blue"

[[registries]]
name = "prod"
account_id = "1234"
regions = ["us-east-1"]
flavour = "vanilla"

[[registries]]
name = "prod"
type = "ecr-public"
account_id = "222222222222"
regions = ["eu-west-1"]

[[registries]]
name = "third"
type = "gcr"
regions = ["moon-1"]
role_arn = "not-an-arn"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "inventory.toml"
    path.write_text(text)
    return path


def test_every_key_is_read(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, FULL))
    prod, public = config.registries
    assert prod == RegistryConfig(
        name="prod",
        type="ecr",
        account_id="111111111111",
        regions=("us-east-1", "eu-west-1"),
        role_arn="arn:aws:iam::111111111111:role/inventory-reader",
        external_id="s3cr3t-id",
        repositories=("*",),
        exclude=("tmp/*",),
        endpoint_url="http://127.0.0.1:5000",
    )
    assert public.type == "ecr-public"
    assert public.repositories == ("*",)
    assert public.exclude == ()
    assert public.role_arn is None
    assert config.registry("public") is public


def test_models_are_frozen(tmp_path: Path) -> None:
    prod = load_config(write(tmp_path, FULL)).registries[0]
    with pytest.raises(ValueError, match="frozen"):
        prod.name = "other"  # type: ignore[misc]


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, BROKEN)
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    problems = exc.value.problems
    expected = [
        "unknown key 'colour'",
        "registries[0] ('prod'): account_id: must be a string of 12 digits, got '1234'",
        "registries[0] ('prod'): flavour: unknown key",
        "registries[1] ('prod'): regions: ECR Public exists only in us-east-1",
        "registries[2] ('third'): type: must be one of 'ecr' or 'ecr-public', got 'gcr'",
        "registries[2] ('third'): account_id: required key is missing",
        "registries[2] ('third'): regions: Value error, not an AWS region: 'moon-1'",
        "registries[2] ('third'): role_arn: not an IAM role ARN",
        "registries: name 'prod' is used by 2 registries",
    ]
    for fragment in expected:
        matching = [p for p in problems if fragment.replace("Value error, ", "") in p]
        assert matching, f"no problem mentions {fragment!r} in {problems}"
        assert all(p.startswith(f"{path}: ") for p in matching)
    assert len(problems) == len(expected)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("registries = [", "not valid TOML"),
        ("registries = 3", "must be an array of tables"),
        ('[[registries]]\nname="a"\naccount_id="111111111111"\nregions=[]', "regions: must not be empty"),
        (
            '[[registries]]\nname="a"\naccount_id="111111111111"\nregions=["us-east-1","us-east-1"]',
            "listed more than once",
        ),
        (
            '[[registries]]\nname="a"\naccount_id="111111111111"\nregions=["us-east-1"]\nexternal_id="xy"',
            "external_id: only meaningful together with role_arn",
        ),
        (
            '[[registries]]\nname="a"\naccount_id="111111111111"\nregions=["us-east-1"]\nexclude=[""]',
            "exclude[0]: a glob must not be empty",
        ),
        (
            '[[registries]]\nname="a"\naccount_id=111111111111\nregions=["us-east-1"]',
            "account_id: must be a string of 12 digits, got 111111111111",
        ),
        (
            '[[registries]]\nname="a"\naccount_id="111111111111"\nregions=["us-east-1"]\nendpoint_url="ftp://x"',
            "endpoint_url: not an http(s) URL",
        ),
    ],
)
def test_single_problems(tmp_path: Path, text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(write(tmp_path, text))
    assert any(fragment.replace("Value error, ", "") in p for p in exc.value.problems), exc.value.problems


def test_missing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INVENTORY_HOME", raising=False)
    path = tmp_path / "absent.toml"
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert exc.value.problems == [
        f"{path}: no such file; name one with -c FILE or $INVENTORY_CONFIG "
        "(`inventory demo` writes a sample to .inventory/demo-inventory.toml)"
    ]


REGISTRY = '[[registries]]\nname = "a"\naccount_id = "111111111111"\nregions = ["us-east-1"]\n'
WEBHOOK = '[[webhooks]]\nname = "w"\nurl = "https://example.com"\nsecret_env = "S"\n'
R, W = "registries[0] ('a'): ", "webhooks[0] ('w'): "
ROLE = "arn:aws:iam::111111111111:role/r"


def problems_of(tmp_path: Path, text: str) -> list[str]:
    """The problems of ``text`` as a file, without the file's name; none if it is valid."""
    path = write(tmp_path, text)
    try:
        load_config(path)
    except ConfigError as exc:
        assert all(p.startswith(f"{path}: ") for p in exc.problems)
        return [p.removeprefix(f"{path}: ") for p in exc.problems]
    return []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            REGISTRY.replace('["us-east-1"]', '["us-east-1", "us-east-1", "mars-1"]'),
            [
                "registries[0] ('a'): regions: not an AWS region: 'mars-1'",
                "registries[0] ('a'): regions: listed more than once: 'us-east-1'",
            ],
        ),
        (
            REGISTRY.replace('["us-east-1"]', "[]") + 'external_id = "xyz"',
            [
                "registries[0] ('a'): regions: must not be empty",
                "registries[0] ('a'): external_id: only meaningful together with role_arn",
            ],
        ),
        (
            REGISTRY.replace('["us-east-1"]', '["moon-1"]')
            + 'type = "ecr-public"\nexternal_id = "xyz"\nrole_arn = "nope"',
            [
                "registries[0] ('a'): role_arn: not an IAM role ARN (arn:aws:iam::<account>:role/<name>): 'nope'",
                "registries[0] ('a'): regions: not an AWS region: 'moon-1'",
                "registries[0] ('a'): regions: ECR Public exists only in us-east-1, got ['moon-1']",
            ],
        ),
    ],
)
def test_every_problem_of_a_registry_is_reported(tmp_path: Path, text: str, expected: list[str]) -> None:
    assert problems_of(tmp_path, text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (REGISTRY + 'repositories = "app/*"', f"{R}repositories: must be a list of globs, got a string"),
        (REGISTRY + "exclude = [3]", f"{R}exclude[0]: must be a string, got an integer"),
        (REGISTRY.replace('["us-east-1"]', '"us-east-1"'), f"{R}regions: must be a list of regions, got a string"),
        (REGISTRY.replace('"a"', "3"), "registries[0]: name: must be a string, got an integer"),
        (REGISTRY + "endpoint_url = true", f"{R}endpoint_url: must be a string, got a boolean"),
        (REGISTRY + "role_arn = { arn = 1 }", f"{R}role_arn: must be a string, got a table"),
        (REGISTRY + f'external_id = "x"\nrole_arn = "{ROLE}"', f"{R}external_id: must be at least 2 characters long"),
        (REGISTRY.replace('"111111111111"', "[1]"), f"{R}account_id: must be a string of 12 digits, got an array"),
        (REGISTRY + "type = 2024-01-01", f"{R}type: must be one of 'ecr' or 'ecr-public', got a date"),
        (WEBHOOK + 'concurrency = "4"', f"{W}concurrency: must be an integer, got a string"),
        (WEBHOOK + "concurrency = 4.0", f"{W}concurrency: must be an integer, got a float"),
        (WEBHOOK + "concurrency = 65", f"{W}concurrency: must be at most 64, got 65"),
        (WEBHOOK + 'backfill = "yes"', f"{W}backfill: must be a boolean (true or false), got a string"),
        (WEBHOOK + 'types = "image.added"', f"{W}types: must be a list of event types, got a string"),
        (WEBHOOK + "types = [1]", f"{W}types[0]: must be one of 'image.added', 'image.changed', 'image.restored', "
         "'image.removed', 'repository.added', 'repository.removed' or 'scope.backfilled', got 1"),
        (WEBHOOK + 'registries = "prod"', f"{W}registries: must be a list of registry names, got a string"),
        (WEBHOOK.replace('"https://example.com"', "1"), f"{W}url: must be a string, got an integer"),
        ("[retention]\nevents = 30", 'retention: events: must be a duration string such as "30d", got 30'),
        ("retention = 3", "retention: must be a table ([retention]), got an integer"),
        ("registries = 3", "registries: must be an array of tables ([[registries]]), got an integer"),
        ('registries = ["prod"]', "registries[0]: must be a table, got a string"),
    ],
)  # fmt: skip
def test_a_wrong_type_is_named_in_toml_words(tmp_path: Path, text: str, expected: str) -> None:
    assert problems_of(tmp_path, text) == [expected]


WRONG = {"a string": '"x"', "an integer": "7", "a float": "1.5", "a boolean": "true", "an array": "[[1]]",
         "a table": "{ k = 1 }", "a date-time": "1979-05-27T07:32:00Z"}  # fmt: skip
TABLES = {"registries": REGISTRY, "webhooks": WEBHOOK, "retention": "[retention]\n"}
KEYS = [
    *(("registries", key) for key in RegistryConfig.model_fields),
    *(("webhooks", key) for key in WebhookConfig.model_fields),
    *(("retention", key) for key in RetentionConfig.model_fields),
]


@pytest.mark.parametrize(("table", "key"), KEYS, ids=[f"{table}.{key}" for table, key in KEYS])
def test_no_wrong_value_is_described_in_pydantic_words(tmp_path: Path, table: str, key: str) -> None:
    for given, value in WRONG.items():
        lines = [line for line in TABLES[table].splitlines() if not line.startswith(f"{key} =")]
        if key == "role_arn":  # an external_id with it, so that every problem is about role_arn
            lines.append('external_id = "xyz"')
        problems = problems_of(tmp_path, "\n".join([*lines, f"{key} = {value}"]))
        for problem in problems:
            assert problem.split(": ")[1].startswith(key), problems
            assert not any(words in problem for words in ("Input should", "Value error", "valid tuple")), problems
        if problems and given != "a string" and key != "role_arn":
            assert any(problem.endswith((f"got {given}", f"got {value}")) for problem in problems), problems


def test_include_and_exclude_globs() -> None:
    registry = RegistryConfig(
        name="r",
        account_id="111111111111",
        regions=("us-east-1",),
        repositories=("team-*/*", "base"),
        exclude=("team-b/*", "*/tmp-*"),
    )
    assert registry.covers("team-a/api")
    assert registry.covers("base")
    assert not registry.covers("team-b/api")
    assert not registry.covers("team-a/tmp-1")
    assert not registry.covers("other/api")


def test_config_path_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INVENTORY_CONFIG", raising=False)
    assert Settings().config_path() == Path("inventory.toml")
    monkeypatch.setenv("INVENTORY_CONFIG", str(tmp_path / "env.toml"))
    assert Settings().config_path() == tmp_path / "env.toml"
    assert Settings().config_path(tmp_path / "flag.toml") == tmp_path / "flag.toml"


def run_inventory(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "inventory", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_validate_command_reports_and_exits_1(tmp_path: Path) -> None:
    path = write(tmp_path, BROKEN)
    result = run_inventory("validate", "-c", str(path), cwd=tmp_path)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 9
    assert all(line.startswith(f"error: {path}: ") for line in lines)
    assert "registries[0] ('prod'): account_id" in result.stderr
    assert list(tmp_path.iterdir()) == [path]  # nothing written anywhere


def test_validate_command_accepts_a_good_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, FULL)
    env = {k: v for k, v in __import__("os").environ.items() if k != "INVENTORY_CONFIG"}
    result = run_inventory("validate", cwd=tmp_path, env=env)  # ./inventory.toml by default
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "inventory.toml: valid (2 registries, 3 regions)"
    env["INVENTORY_CONFIG"] = str(tmp_path / "missing.toml")
    result = run_inventory("validate", cwd=tmp_path, env=env)
    assert result.returncode == 1
    assert result.stderr.strip().startswith(f"error: {tmp_path / 'missing.toml'}: no such file; name one with -c FILE")
    assert len(result.stderr.strip().splitlines()) == 1


WEBHOOKS = """
[[registries]]
name = "prod"
account_id = "111111111111"
regions = ["us-east-1"]

[[webhooks]]
name = "security"
url = "https://hooks.example.com/inventory"
secret_env = "SECURITY_WEBHOOK_SECRET"
types = ["image.added", "image.changed"]
registries = ["prod"]
repositories = ["payments/*"]
min_severity = "HIGH"

[[webhooks]]
name = "bad"
url = "ftp://hooks.example.com"
secret_env = "1NOT-A-NAME"
types = ["image.exploded"]
registries = ["prd"]
min_severity = "SEVERE"
concurrency = 0
colour = "red"

[[webhooks]]
name = "security"
url = "http://localhost:8080/"
secret_env = "UNSET_SECRET"
"""
GOOD_SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def test_webhooks_are_validated_with_the_rest_of_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, WEBHOOKS)
    environ = {"SECURITY_WEBHOOK_SECRET": GOOD_SECRET}
    with pytest.raises(ConfigError) as exc:
        load_config(path, environ=environ)
    problems = [p.removeprefix(f"{path}: ") for p in exc.value.problems]
    assert problems == [
        "webhooks[1] ('bad'): url: not an http(s) URL: 'ftp://hooks.example.com'",
        "webhooks[1] ('bad'): secret_env: not an environment variable name: '1NOT-A-NAME'",
        "webhooks[1] ('bad'): types[0]: must be one of 'image.added', 'image.changed', 'image.restored', "
        "'image.removed', 'repository.added', 'repository.removed' or 'scope.backfilled', got 'image.exploded'",
        "webhooks[1] ('bad'): min_severity: must be one of 'CRITICAL', 'HIGH', 'MEDIUM', 'LOW', 'INFORMATIONAL' "
        "or 'UNDEFINED', got 'SEVERE'",
        "webhooks[1] ('bad'): concurrency: must be at least 1, got 0",
        "webhooks[1] ('bad'): colour: unknown key",
        "webhooks: name 'security' is used by 2 webhooks",
        "webhooks[2] ('security'): secret_env: variable UNSET_SECRET is not set",
    ]
    broken = WEBHOOKS.replace('registries = ["prod"]\n', 'registries = ["prd"]\n', 1)
    with pytest.raises(ConfigError) as exc:
        load_config(write(tmp_path, broken), environ=environ)
    assert any("webhooks[0] ('security'): registries: no registry named 'prd' (declared: prod)" in p
               for p in exc.value.problems)  # fmt: skip


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "variable S: not a whsec_ secret (whsec_ then base64)"),
        (f"{GOOD_SECRET} base64!", "variable S: secret 2 of 2: not a whsec_ secret (whsec_ then base64)"),
        ("whsec_!!!!", "variable S: not a whsec_ secret (whsec_ then base64)"),
        ("whsec_YWJj", "variable S: a whsec_ secret holds 24 to 64 bytes, this one 3"),
        ("   ", "variable S is empty"),
    ],
)
def test_a_bad_secret_is_named_never_shown(value: str, message: str) -> None:
    hook = WebhookConfig(name="w", url="https://example.com", secret_env="S")
    with pytest.raises(ValueError) as exc:
        webhook_secrets(hook, {"S": value})
    assert str(exc.value) == message
    assert "MfKQ9r8" not in str(exc.value) and "YWJj" not in str(exc.value)


def test_secrets_are_checked_only_when_asked(tmp_path: Path) -> None:
    text = WEBHOOKS.split('[[webhooks]]\nname = "bad"')[0]
    config = load_config(write(tmp_path, text))  # plan, status, serve: no secret needed
    assert config.webhook("security").min_severity == "HIGH"
    assert webhook_secrets(config.webhook("security"), {"SECURITY_WEBHOOK_SECRET": f"{GOOD_SECRET} {GOOD_SECRET}"})


QUEUES = """
[[event_queues]]
name = "ecr-events"
url = "https://sqs.eu-west-1.amazonaws.com/111111111111/inventory-ecr-events"
region = "eu-west-1"
role_arn = "arn:aws:iam::111111111111:role/inventory-events"
external_id = "s3cr3t-id"
endpoint_url = "http://127.0.0.1:5000"

[[event_queues]]
name = "local"
url = "http://127.0.0.1:5000/123456789012/ecr-events"
region = "us-east-1"
"""


def test_event_queues_are_read(tmp_path: Path) -> None:
    central, local = load_config(write(tmp_path, FULL + QUEUES)).event_queues
    assert central == EventQueueConfig(
        name="ecr-events",
        url="https://sqs.eu-west-1.amazonaws.com/111111111111/inventory-ecr-events",
        region="eu-west-1",
        role_arn="arn:aws:iam::111111111111:role/inventory-events",
        external_id="s3cr3t-id",
        endpoint_url="http://127.0.0.1:5000",
    )
    assert (local.role_arn, local.external_id, local.endpoint_url) == (None, None, None)
    assert load_config(write(tmp_path, FULL)).event_queues == ()


def test_every_problem_of_the_event_queues_is_reported_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, BROKEN + """
[[event_queues]]
name = "q"
url = "https://sqs.eu-west-1.amazonaws.com/111111111111/events"
region = "us-east-1"
external_id = "orphan"
colour = "blue"

[[event_queues]]
name = "q"
url = "ftp://example.com/queue"
region = "mars"
role_arn = "nope"

[[event_queues]]
url = 3
""")  # fmt: skip
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    problems = [p.removeprefix(f"{path}: ") for p in exc.value.problems]
    expected = [
        "event_queues[0] ('q'): colour: unknown key",
        "event_queues[0] ('q'): external_id: only meaningful together with role_arn",
        "event_queues[0] ('q'): region: the queue's URL is in eu-west-1, not us-east-1",
        "event_queues[1] ('q'): url: not an SQS queue URL (https://sqs.<region>.amazonaws.com/<account>/<name>): "
        "'ftp://example.com/queue'",
        "event_queues[1] ('q'): region: not an AWS region: 'mars'",
        "event_queues[1] ('q'): role_arn: not an IAM role ARN (arn:aws:iam::<account>:role/<name>): 'nope'",
        "event_queues[2]: name: required key is missing",
        "event_queues[2]: url: must be a string, got an integer",
        "event_queues[2]: region: required key is missing",
        "event_queues: name 'q' is used by 2 event_queues",
    ]
    for line in expected:
        assert line in problems, f"{line!r} not in {problems}"
    assert any(p.startswith("registries[0]") for p in problems)  # the registries' problems too, in one report


def test_event_queues_must_be_an_array_of_tables(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(write(tmp_path, 'event_queues = "q"'))
    assert exc.value.problems == [
        f"{tmp_path / 'inventory.toml'}: event_queues: must be an array of tables ([[event_queues]]), got a string"
    ]
