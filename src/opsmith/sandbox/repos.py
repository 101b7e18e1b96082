"""Real git repositories for the sample applications, driven through the git CLI."""

from __future__ import annotations

import fcntl
import os
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

from pydantic import BaseModel

from opsmith.sandbox.errors import SandboxError

AUTHOR_NAME = "Dev Team"
AUTHOR_EMAIL = "dev@example.com"


class CommitInfo(BaseModel):
    sha: str
    short_sha: str
    author: str
    email: str
    date: str
    message: str


class FileChange(BaseModel):
    status: str
    path: str


def _git_env(date: datetime | None = None) -> dict[str, str]:
    # Only PATH is inherited (to find git); user and system git config are ignored so
    # every machine produces the same objects and SHAs.
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",
        "LC_ALL": "C",
    }
    if date is not None:
        stamp = date.strftime("%Y-%m-%dT%H:%M:%S+00:00")
        env["GIT_AUTHOR_DATE"] = stamp
        env["GIT_COMMITTER_DATE"] = stamp
    return env


class RepoStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, app: str) -> Path:
        return self.root / app

    def apps(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / ".git").is_dir())

    def _run(
        self, app: str, *args: str, date: datetime | None = None, input_bytes: bytes | None = None
    ) -> bytes:
        proc = subprocess.run(
            ["git", *args],
            cwd=self.path(app),
            env=_git_env(date),
            input=input_bytes,
            capture_output=True,
            check=False,
        )
        if proc.returncode != 0:
            raise SandboxError(
                f"git {args[0]} failed in {app}: {proc.stderr.decode(errors='replace').strip()}"
            )
        return proc.stdout

    @contextmanager
    def _locked(self, app: str) -> Iterator[None]:
        # Commits move HEAD and the index; serialise them across processes.
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / f".{app}.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def init(self, app: str) -> None:
        path = self.path(app)
        path.mkdir(parents=True, exist_ok=True)
        self._run(app, "init", "-q", "-b", "main")
        self._run(app, "config", "user.name", AUTHOR_NAME)
        self._run(app, "config", "user.email", AUTHOR_EMAIL)
        self._run(app, "config", "commit.gpgsign", "false")

    def commit(
        self,
        app: str,
        files: Mapping[str, str | None],
        message: str,
        date: datetime | None = None,
        branch: str = "main",
    ) -> str:
        """Write (or delete, for None) files on `branch` and commit; dates follow the history."""
        with self._locked(app):
            root = self.path(app)
            if self._has_commits(app):
                self._run(app, "checkout", "-q", branch)
                if date is None:
                    date = self._last_date(app) + timedelta(hours=1)
            elif date is None:
                raise SandboxError(f"the first commit of {app} needs an explicit date")
            for rel, content in files.items():
                target = self._inside(root, rel)
                if content is None:
                    if target.exists():
                        target.unlink()
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(content, encoding="utf-8")
            self._run(app, "add", "-A")
            self._run(app, "commit", "-q", "--allow-empty", "-m", message, date=date)
            return self._run(app, "rev-parse", "HEAD").decode().strip()

    def tag(self, app: str, name: str, sha: str) -> None:
        self._run(app, "tag", "-f", name, sha)

    @staticmethod
    def _inside(root: Path, rel: str) -> Path:
        target = (root / rel).resolve()
        if root.resolve() not in target.parents:
            raise SandboxError(f"path {rel!r} escapes the repository")
        return target

    def _has_commits(self, app: str) -> bool:
        proc = subprocess.run(
            ["git", "rev-parse", "--verify", "-q", "HEAD"],
            cwd=self.path(app),
            env=_git_env(),
            capture_output=True,
            check=False,
        )
        return proc.returncode == 0

    def _last_date(self, app: str) -> datetime:
        out = self._run(app, "log", "-1", "--all", "--format=%cI", "--date-order").decode().strip()
        return datetime.fromisoformat(out)

    def branches(self, app: str) -> list[str]:
        out = self._run(app, "for-each-ref", "--format=%(refname:short)", "refs/heads/")
        return sorted(line for line in out.decode().splitlines() if line)

    def tags(self, app: str) -> list[str]:
        out = self._run(app, "tag", "--list")
        return sorted(line for line in out.decode().splitlines() if line)

    def resolve(self, app: str, ref: str) -> str:
        proc = subprocess.run(
            ["git", "rev-parse", "--verify", "-q", f"{ref}^{{commit}}"],
            cwd=self.path(app),
            env=_git_env(),
            capture_output=True,
            check=False,
        )
        if proc.returncode != 0 or not ref or ref.startswith("-"):
            raise SandboxError(
                f"unknown branch or commit {ref!r} in {app}; branches: {', '.join(self.branches(app))}"
            )
        return proc.stdout.decode().strip()

    def tree(self, app: str, sha: str) -> dict[str, bytes]:
        """Every file at a commit, read through one `git cat-file --batch` process."""
        listing = self._run(app, "ls-tree", "-r", "-z", sha).decode()
        entries: list[tuple[str, str]] = []
        for record in listing.split("\0"):
            if not record:
                continue
            meta, path = record.split("\t", 1)
            _mode, kind, obj = meta.split(" ")
            if kind == "blob":
                entries.append((path, obj))
        if not entries:
            return {}
        out = self._run(
            app, "cat-file", "--batch", input_bytes="".join(f"{o}\n" for _, o in entries).encode()
        )
        files: dict[str, bytes] = {}
        pos = 0
        for path, _obj in entries:
            header_end = out.index(b"\n", pos)
            size = int(out[pos:header_end].split(b" ")[2])
            start = header_end + 1
            files[path] = out[start : start + size]
            pos = start + size + 1
        return files

    def commit_info(self, app: str, sha: str) -> CommitInfo:
        out = self._run(app, "show", "-s", "--format=%H%x00%h%x00%an%x00%ae%x00%cI%x00%s", sha).decode()
        full, short, author, email, date, message = out.rstrip("\n").split("\0")
        return CommitInfo(sha=full, short_sha=short, author=author, email=email, date=date, message=message)

    def log(self, app: str, ref: str, limit: int = 20) -> list[CommitInfo]:
        out = self._run(app, "log", f"-{limit}", "--format=%H", ref).decode()
        return [self.commit_info(app, sha) for sha in out.split()]

    def changes(self, app: str, base: str, head: str) -> list[FileChange]:
        out = self._run(app, "diff", "--name-status", "--no-renames", base, head).decode()
        changes = []
        for line in out.splitlines():
            status, path = line.split("\t", 1)
            changes.append(
                FileChange(
                    status={"A": "added", "M": "modified", "D": "deleted"}.get(status, status), path=path
                )
            )
        return changes

    def commits_between(self, app: str, base: str, head: str) -> list[CommitInfo]:
        out = self._run(app, "log", "--format=%H", f"{base}..{head}").decode()
        return [self.commit_info(app, sha) for sha in out.split()]
