"""Progress of a plan: a live display on a terminal, one log line per scope otherwise."""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Protocol, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as Bars


class Progress(Protocol):
    def scope_started(self, label: str) -> None: ...
    def images_fetched(self, count: int) -> None: ...
    def scope_finished(self, label: str, summary: str) -> None: ...


class LogProgress:
    """One line per scope on stderr, for logs and CI."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr

    def scope_started(self, label: str) -> None:
        pass

    def images_fetched(self, count: int) -> None:
        pass

    def scope_finished(self, label: str, summary: str) -> None:
        print(f"{label}: {summary}", file=self.stream, flush=True)

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *_: object) -> None:
        pass


class TerminalProgress:
    """Scopes planned and images fetched, live, on stderr."""

    def __init__(self) -> None:
        self._progress = Bars(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._scopes = self._progress.add_task("scopes planned", total=None)
        self._images = self._progress.add_task("images fetched", total=None)

    def scope_started(self, label: str) -> None:
        self._progress.update(self._scopes, description=f"planning {label}")

    def images_fetched(self, count: int) -> None:
        self._progress.advance(self._images, count)

    def scope_finished(self, label: str, summary: str) -> None:
        self._progress.advance(self._scopes)

    def __enter__(self) -> TerminalProgress:
        self._progress.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self._progress.stop()


def progress_for(interactive: bool) -> LogProgress | TerminalProgress:
    return TerminalProgress() if interactive else LogProgress()
