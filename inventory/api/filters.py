"""The inputs of the inventory's searches, and the read layer's filters they stand for (a leaf: it imports
nothing of the API's domains, which all build on it).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from datetime import datetime

import strawberry

from inventory.api.ids import RegistryType, config_type_of
from inventory.read import search
from inventory.read.keys import RepositoryKey


@strawberry.enum(description="ECR's tag status filter.")
class TagStatus(enum.Enum):
    TAGGED = "TAGGED"
    UNTAGGED = "UNTAGGED"
    ANY = "ANY"


@strawberry.enum(description="ECR's image status; ANY in filters only.")
class ImageStatus(enum.Enum):
    ACTIVE = "ACTIVE"
    ARCHIVED = "ARCHIVED"
    ACTIVATING = "ACTIVATING"
    ANY = "ANY"


@strawberry.enum(description="Finding severities, worst first.")
class Severity(enum.Enum):
    CRITICAL = "CRITICAL"
    HIGH = "HIGH"
    MEDIUM = "MEDIUM"
    LOW = "LOW"
    INFORMATIONAL = "INFORMATIONAL"
    UNDEFINED = "UNDEFINED"


@strawberry.enum(description="Orders of the image search; every order is newest, largest or latest first.")
class ImageOrder(enum.Enum):
    PUSHED_AT = "PUSHED_AT"
    SIZE = "SIZE"
    LAST_PULL = "LAST_PULL"


def _config_types(given: Sequence[RegistryType] | None) -> list[str] | None:
    return None if given is None else [config_type_of(t) for t in given]


@strawberry.input(name="ImageFilter", description="Cross-account image search; every field narrows the result.")
class ImageFilterInput:
    registry_types: list[RegistryType] | None = None
    registry_ids: list[str] | None = None
    regions: list[str] | None = None
    repository_names: list[str] | None = strawberry.field(default=None, description="Shell-style globs.")
    tags: list[str] | None = strawberry.field(default=None, description="Images with any of these tags.")
    digests: list[str] | None = None
    tag_status: TagStatus = TagStatus.ANY
    image_status: ImageStatus = ImageStatus.ANY
    pushed_after: datetime | None = None
    pushed_before: datetime | None = None
    min_severity: Severity | None = strawberry.field(
        default=None, description="Images with at least one finding of this severity or worse."
    )
    include_removed: bool = False


def image_filter(given: ImageFilterInput | None, repository: RepositoryKey | None = None) -> search.ImageFilter:
    """The read layer's filter of ``given``, limited to ``repository`` if given (checked by the read)."""
    f = given or ImageFilterInput()
    return search.ImageFilter(
        registry_types=_config_types(f.registry_types),
        registry_ids=f.registry_ids,
        regions=f.regions,
        repository_names=f.repository_names,
        tags=f.tags,
        digests=f.digests,
        tag_status=f.tag_status.value,
        image_status=f.image_status.value,
        pushed_after=f.pushed_after,
        pushed_before=f.pushed_before,
        min_severity=f.min_severity.value if f.min_severity else None,
        include_removed=f.include_removed,
        repository=repository,
    )


@strawberry.input(name="RepositoryFilter")
class RepositoryFilterInput:
    registry_names: list[str] | None = None
    registry_types: list[RegistryType] | None = None
    registry_ids: list[str] | None = None
    regions: list[str] | None = None
    repository_names: list[str] | None = strawberry.field(default=None, description="Shell-style globs.")
    include_removed: bool = False

    def read(self) -> search.RepositoryFilter:
        """The read layer's filter."""
        return search.RepositoryFilter(
            registry_names=self.registry_names,
            registry_types=_config_types(self.registry_types),
            registry_ids=self.registry_ids,
            regions=self.regions,
            repository_names=self.repository_names,
            include_removed=self.include_removed,
        )


@strawberry.input(name="ImageIdInput")
class ImageIdInput:
    image_digest: str | None = None
    image_tag: str | None = None


@strawberry.input
class DescribeImagesFilter:
    tag_status: TagStatus | None = None
    image_status: ImageStatus | None = None
