"""Shapes of the sample data: an app is a sequence of commits, some of them released."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SampleCommit:
    message: str
    files: dict[str, str | None]
    # A released commit is built, pushed under this tag and rolled out at seeding time.
    release: str | None = None


@dataclass(frozen=True)
class SampleApp:
    name: str
    description: str
    commits: list[SampleCommit]
    replicas: dict[str, int] = field(
        default_factory=lambda: {"production": 2, "staging": 1, "development": 1}
    )
