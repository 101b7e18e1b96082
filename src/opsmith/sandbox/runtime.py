"""A container runtime that 'starts' a Node image by resolving what the process would load.

It reads the image's files: the start command's entry file and every local require() it reaches
must exist (and parse), and every package require must be installed under node_modules. The first
failure becomes the crash a real node process would print. The container's environment is the
image's ENV overlaid with what the cluster sets (APP_ENV), so a require of
`./config/${process.env.APP_ENV}.json` loads a different file in each namespace.
"""

from __future__ import annotations

import json
import posixpath
import re
import shlex
from dataclasses import dataclass, field

from opsmith.sandbox.images import NODE_BINARY, ImageConfig
from opsmith.sandbox.jssource import NODE_BUILTINS, Require, requires, syntax_error

_RESOLVE_STACK = [
    "    at Function.Module._resolveFilename (node:internal/modules/cjs/loader:1077:15)",
    "    at Function.Module._load (node:internal/modules/cjs/loader:922:27)",
    "    at Module.require (node:internal/modules/cjs/loader:1143:19)",
    "    at require (node:internal/modules/cjs/helpers:121:18)",
]


@dataclass
class StartOutcome:
    healthy: bool
    reason: str | None
    exit_code: int | None
    logs: list[str]
    port: int | None
    loaded: list[str] = field(default_factory=list)

    @property
    def error(self) -> str | None:
        for line in self.logs:
            if line.startswith(("Error", "SyntaxError", "npm ERR!", "exec")):
                return line
        return None


class _Crash(Exception):
    def __init__(self, lines: list[str], code: int = 1) -> None:
        super().__init__(lines[0] if lines else "crash")
        self.lines = lines
        self.code = code


def _catch_message(text: str, line: int) -> str | None:
    """If the failing require sits in a try whose catch logs a message, node prints it first."""
    lines = text.splitlines()
    for i in range(line, min(line + 4, len(lines))):
        if "catch" in lines[i]:
            for follow in lines[i : i + 4]:
                match = re.search(r"console\.(?:error|log|warn)\(\s*['\"]([^'\"]+)['\"]", follow)
                if match:
                    return match.group(1)
            return None
    return None


class _Loader:
    def __init__(self, files: dict[str, bytes], workdir: str, env: dict[str, str]) -> None:
        self.files = files
        self.workdir = workdir
        self.env = env
        self.loaded: list[str] = []
        self.configs: list[tuple[str, object]] = []

    def resolve(self, base_dir: str, spec: str) -> str | None:
        target = posixpath.normpath(posixpath.join(base_dir, spec))
        for candidate in (target, f"{target}.js", f"{target}.json", f"{target}/index.js"):
            if candidate in self.files:
                return candidate
        return None

    def package_installed(self, from_dir: str, package: str) -> bool:
        current = from_dir
        while True:
            if posixpath.join(current, "node_modules", package, "package.json") in self.files:
                return True
            if current == "/":
                return False
            current = posixpath.dirname(current)

    def load(self, path: str, stack: list[str]) -> None:
        if path in self.loaded:
            return
        self.loaded.append(path)
        text = self.files[path].decode("utf-8", errors="replace")
        if path.endswith(".json"):
            try:
                self.configs.append((path, json.loads(text)))
            except ValueError as exc:
                raise _Crash([f"{path}: Unexpected token in JSON", f"SyntaxError: {path}: {exc}"]) from exc
            return
        problem = syntax_error(text)
        if problem:
            line, message = problem.split(": ", 1)
            raise _Crash([f"{path}:{line}", message])
        for req in requires(text):
            self._require(path, text, req.in_env(self.env), [*stack, path])

    def _require(self, path: str, text: str, req: Require, stack: list[str]) -> None:
        base_dir = posixpath.dirname(path)
        if req.relative:
            target = self.resolve(base_dir, req.spec)
            if target is not None:
                self.load(target, stack)
                return
        elif (
            req.package in NODE_BUILTINS
            or req.spec.startswith("node:")
            or self.package_installed(base_dir, req.package)
        ):
            return
        column = text.splitlines()[req.line - 1].find("require") + 1
        lines = []
        message = _catch_message(text, req.line)
        if message:
            lines.append(message)
        lines += [
            "node:internal/modules/cjs/loader:1080",
            "  throw err;",
            "  ^",
            "",
            f"Error: Cannot find module '{req.spec}'",
            "Require stack:",
            *(f"- {p}" for p in reversed(stack)),
            *_RESOLVE_STACK,
            f"    at Object.<anonymous> ({path}:{req.line}:{column})",
            "{",
            "  code: 'MODULE_NOT_FOUND',",
            f"  requireStack: [ {', '.join(repr(p) for p in reversed(stack))} ]",
            "}",
        ]
        raise _Crash(lines)


def _command(files: dict[str, bytes], config: ImageConfig, logs: list[str]) -> list[str]:
    argv = [*config.entrypoint, *config.cmd]
    if not argv:
        raise _Crash(["Error: no command specified for the container (set CMD in the Dockerfile)"], 127)
    if argv[0] == "npm" and len(argv) >= 2:
        script = argv[2] if argv[1] == "run" and len(argv) > 2 else argv[1]
        manifest = posixpath.join(config.workdir, "package.json")
        if manifest not in files:
            raise _Crash([f"npm ERR! enoent Could not read package.json at {manifest}"], 254)
        package = json.loads(files[manifest])
        command = (package.get("scripts") or {}).get(script)
        if not command:
            raise _Crash([f'npm ERR! Missing script: "{script}"'], 1)
        logs += [f"> {package.get('name')}@{package.get('version')} {script}", f"> {command}", ""]
        return shlex.split(command)
    return argv


def start(files: dict[str, bytes], config: ImageConfig, env: dict[str, str] | None = None) -> StartOutcome:
    """Start the image's command; `env` is what the cluster adds to the image's ENV."""
    environment = {**config.env, **(env or {})}
    logs: list[str] = []
    loader = _Loader(files, config.workdir, environment)
    try:
        argv = _command(files, config, logs)
        if argv[0] != "node":
            raise _Crash([f'exec: "{argv[0]}": the sandbox runtime only runs node processes'], 126)
        if NODE_BINARY not in files:
            raise _Crash(['exec: "node": executable file not found in $PATH'], 127)
        if len(argv) < 2:
            raise _Crash(["Error: node started without an entry file"], 1)
        entry = posixpath.normpath(posixpath.join(config.workdir, argv[1]))
        resolved = loader.resolve(config.workdir, argv[1])
        if resolved is None:
            raise _Crash([f"Error: Cannot find module '{entry}'", *_RESOLVE_STACK], 1)
        loader.load(resolved, [])
    except _Crash as crash:
        return StartOutcome(
            healthy=False,
            reason="CrashLoopBackOff",
            exit_code=crash.code,
            logs=logs + crash.lines,
            port=None,
            loaded=loader.loaded,
        )
    sources = [files[p].decode("utf-8", errors="replace") for p in loader.loaded if p.endswith(".js")]
    if not any(".listen(" in s for s in sources):
        logs.append("(process exited with code 0: nothing keeps it running)")
        return StartOutcome(False, "CrashLoopBackOff", 0, logs, None, loader.loaded)
    port = _port(loader.configs, sources, config, environment)
    for path, _doc in loader.configs:
        logs.append(f"Configuration loaded from {path}")
    logs.append(f"Server started on port {port}")
    return StartOutcome(True, None, None, logs, port, loader.loaded)


def _port(
    configs: list[tuple[str, object]], sources: list[str], config: ImageConfig, env: dict[str, str]
) -> int:
    env_port = env.get("PORT")
    if env_port and env_port.isdigit():
        return int(env_port)
    for _path, doc in configs:
        if isinstance(doc, dict) and isinstance(doc.get("port"), int):
            return int(doc["port"])
    for source in sources:
        match = re.search(r"process\.env\.PORT\)?\s*\|\|\s*(\d{2,5})", source)
        if match:
            return int(match.group(1))
    return config.exposed_ports[0] if config.exposed_ports else 3000
