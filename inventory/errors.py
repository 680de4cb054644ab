"""The exceptions of ECR Inventory.

    InventoryError            -- anything the CLI reports as one clear line and exit code 1
     ├── ConfigError          -- the declarative file is missing or invalid (all problems at once)
     └── DatabaseUnavailable  -- the database URL is wrong or the server cannot be reached

Each class's docstring is its default message.
"""

from __future__ import annotations


class InventoryError(Exception):
    """ECR Inventory failed."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class ConfigError(InventoryError):
    """The inventory configuration is invalid."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__("\n".join(problems))


class DatabaseUnavailable(InventoryError):
    """The inventory database cannot be reached."""
