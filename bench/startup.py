"""Startup benchmark: what ``inventory --help`` and ``inventory validate`` cost as processes ÷ a bare Python.

    python bench/startup.py [--repeat 20]

Runs, as processes and ``--repeat`` times each (interleaved, so that a busy moment of the
machine falls on all of them alike): ``python -c pass`` (the floor), ``python -c "import
inventory.config"`` (what ``validate`` cannot avoid: pydantic and pydantic-settings),
``inventory --help`` and ``inventory validate -c FILE`` on a small valid inventory file.
Prints the median CPU seconds (user + system, from ``getrusage(RUSAGE_CHILDREN)`` deltas)
and wall seconds of each, and each median ÷ the floor's, all measured in this run.
Goal: at most 0.3 s of wall time for both commands. Touches no database and no network.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SMALL_FILE = """\
[[registries]]
name = "prod"
account_id = "111111111111"
regions = ["us-east-1", "eu-west-1"]
role_arn = "arn:aws:iam::111111111111:role/inventory-reader"
"""
GOAL = 0.3


def inventory_command() -> list[str]:
    """The ``inventory`` script beside this Python, else ``python -m inventory``."""
    script = Path(sys.executable).parent / "inventory"
    return [str(script)] if script.exists() else [sys.executable, "-m", "inventory"]


def run_once(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """CPU and wall seconds of one run of ``argv``, which must exit 0."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.decode().strip()}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=20, help="runs of each command (default: 20)")
    args = parser.parse_args()

    inventory = inventory_command()
    with tempfile.TemporaryDirectory(prefix="inventory-bench-startup-") as scratch:
        cwd = Path(scratch)
        (cwd / "inventory.toml").write_text(SMALL_FILE)
        # Nothing of the caller's environment picks another file, database or home.
        env = {k: v for k, v in os.environ.items() if not k.startswith("INVENTORY_")}
        env["INVENTORY_HOME"] = str(cwd / "home")
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "import inventory.config": [sys.executable, "-c", "import inventory.config"],
            "inventory --help": [*inventory, "--help"],
            "inventory validate -c FILE": [*inventory, "validate", "-c", str(cwd / "inventory.toml")],
        }
        for argv in commands.values():  # warm the page cache and the bytecode caches
            run_once(argv, cwd, env)
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
        for _ in range(args.repeat):
            for name, argv in commands.items():
                samples[name].append(run_once(argv, cwd, env))

    medians = {
        name: (statistics.median(cpu for cpu, _ in runs), statistics.median(wall for _, wall in runs))
        for name, runs in samples.items()
    }
    floor_cpu, floor_wall = medians["python -c pass"]
    print(f"{args.repeat} runs each, medians; ratios ÷ python -c pass of this run (goal: wall <= {GOAL:g} s)")
    print(f"{'':28} {'CPU s':>7} {'÷ floor':>8} {'wall s':>7} {'÷ floor':>8}")
    for name, (cpu, wall) in medians.items():
        mark = ""
        if name.startswith("inventory "):
            mark = "  ok" if wall <= GOAL else "  over the goal"
        print(f"{name:28} {cpu:7.3f} {cpu / floor_cpu:7.1f}x {wall:7.3f} {wall / floor_wall:7.1f}x{mark}")


if __name__ == "__main__":
    main()
