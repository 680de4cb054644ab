"""The exceptions of ECR Inventory.

    InventoryError              -- anything the CLI reports as one clear line and exit code 1
     ├── ConfigError            -- the declarative file is missing or invalid (all problems at once)
     ├── DatabaseUrlInvalid     -- the database URL is not a PostgreSQL URL
     ├── DatabaseUnavailable    -- the server cannot be reached (refused, timed out, shutting down)
     ├── TargetError            -- a --target names nothing the config or the inventory knows
     ├── PlanFileError          -- a saved plan cannot be read (missing, truncated, another version)
     └── ScopeFailed            -- one scope could not be synced; recorded as a failed sync run
          │                        with ``code``, its rows left as they were, the others go on
          ├── ScopeUnobservable -- AWS or the network said so (access denied, throttled past the
          │    │                   retries, ServerException, an expired nextToken, a timeout...)
          │    └── MalformedResponse -- AWS answered something that is not what its API documents
          ├── StalePlan         -- a saved plan's scope changed since the plan was made
          ├── ScopeLocked       -- another apply held the scope past --lock-timeout
          ├── LeaseLost         -- a worker's lease on the region lapsed before it wrote (rolled back)
          └── RegionUndeclared  -- an event's region is no longer declared (its last sync sweeps it)

Anything else raised during a sync is a defect of ours: ``plan``/``apply`` stop
with the traceback (exit 1); a worker records the scope as failed with code
``InternalError``, logs the traceback and carries on with other scopes.

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


class DatabaseUrlInvalid(InventoryError):
    """The inventory database URL is not valid."""


class DatabaseUnavailable(InventoryError):
    """The inventory database cannot be reached."""


class TargetError(InventoryError):
    """A --target matches nothing."""


class PlanFileError(InventoryError):
    """The plan file cannot be used."""


class ScopeFailed(InventoryError):
    """A scope could not be synced."""

    code = "ScopeFailed"

    def __init__(self, message: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code or type(self).code
        self.message = str(self)


class ScopeUnobservable(ScopeFailed):
    """A scope could not be fully observed."""


class MalformedResponse(ScopeUnobservable):
    """AWS answered with a response its API does not document."""

    code = "MalformedResponse"


class StalePlan(ScopeFailed):
    """the inventory changed since this plan was made"""

    code = "StalePlan"


class ScopeLocked(ScopeFailed):
    """another apply holds this scope"""

    code = "LockTimeout"


class LeaseLost(ScopeFailed):
    """this worker's lease on the region lapsed before the scope was written; nothing was written"""

    code = "LeaseLost"


class RegionUndeclared(ScopeFailed):
    """the region is no longer declared by the inventory file; nothing was written"""

    code = "RegionUndeclared"
