"""ECR Inventory: a declarative, Terraform-style inventory of container images."""

from __future__ import annotations

__version__ = "0.1.0"
