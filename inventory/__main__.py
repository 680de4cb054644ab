from __future__ import annotations

from inventory.cli import main

main()
