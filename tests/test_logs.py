"""Structured logs: one JSON object per record, extra fields as keys."""

from __future__ import annotations

import json
import logging

import pytest

from inventory.logs import configure


def test_json_logs_carry_the_extra_fields(capsys: pytest.CaptureFixture[str]) -> None:
    configure("json")
    try:
        logging.getLogger("inventory.worker").info(
            "%s: +%d", "prod/us-east-1/app", 3, extra={"scope": "prod/us-east-1/app", "added": 3}
        )
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            logging.getLogger("inventory.worker").exception("failed")
    finally:
        logging.getLogger().handlers.clear()
    first, second = (json.loads(line) for line in capsys.readouterr().err.splitlines())
    assert first["message"] == "prod/us-east-1/app: +3" and first["level"] == "info"
    assert first["scope"] == "prod/us-east-1/app" and first["added"] == 3 and first["logger"] == "inventory.worker"
    assert first["time"].endswith("+00:00")
    assert second["level"] == "error" and "RuntimeError: boom" in second["exception"]
