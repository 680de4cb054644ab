"""An ECR emulator faithful to the AWS documentation, for tests and the demo.

from inventory.testing import Emulator
with Emulator() as emulator:
    boto3.client("ecr", endpoint_url=emulator.url, ...)
"""

from __future__ import annotations

from inventory.testing.client import AdminClient
from inventory.testing.server import Emulator, create_app
from inventory.testing.store import Store

__all__ = ["AdminClient", "Emulator", "Store", "create_app"]
