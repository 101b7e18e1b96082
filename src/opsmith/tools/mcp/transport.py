"""Turn a server's configuration into an SDK transport, resolving `${VAR}` references late."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import IO, Any, TextIO, cast

import httpx2
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

from opsmith.config import HttpServerConfig, ServerConfig, StdioServerConfig, referenced_variables, resolve
from opsmith.errors import ConfigError

Transport = AbstractAsyncContextManager[Any]


@dataclass(frozen=True)
class ResolvedServer:
    """A server's connection parameters with variables substituted; never stored or printed."""

    spec: ServerConfig
    command: str | None = None
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()


def resolve_server(name: str, spec: ServerConfig, environ: Mapping[str, str]) -> ResolvedServer:
    """Substitute variables and locate the command; raises ConfigError naming the key at fault."""
    where = f"mcpServers.{name}"
    if isinstance(spec, StdioServerConfig):
        env = {k: resolve(v, environ, where=f"{where}.env.{k}") for k, v in spec.env.items()}
        args = [resolve(a, environ, where=f"{where}.args[{i}]") for i, a in enumerate(spec.args)]
        command = _locate(resolve(spec.command, environ, where=f"{where}.command"), environ, where)
        cwd = resolve(spec.cwd, environ, where=f"{where}.cwd") if spec.cwd else None
        if cwd is not None and not os.path.isdir(cwd):
            raise ConfigError(f"{where}.cwd: directory {cwd} does not exist", hint="fix or remove 'cwd'")
        secrets = _referenced_values(spec, environ) + tuple(v for k, v in env.items() if _looks_secret(k))
        return ResolvedServer(spec=spec, command=command, args=args, env=env, cwd=cwd, secrets=secrets)
    assert isinstance(spec, HttpServerConfig)
    url = resolve(spec.url, environ, where=f"{where}.url")
    headers = {k: resolve(v, environ, where=f"{where}.headers.{k}") for k, v in spec.headers.items()}
    secrets = _referenced_values(spec, environ) + tuple(headers.values())
    return ResolvedServer(spec=spec, url=url, headers=headers, secrets=secrets)


def open_transport(server: ResolvedServer, errlog: IO[str] | None) -> Transport:
    """An SDK transport context for the server (not yet entered)."""
    if server.command is not None:
        params = StdioServerParameters(
            command=server.command, args=server.args, env=server.env, cwd=server.cwd
        )
        return stdio_client(params, errlog=cast(TextIO, errlog or sys.stderr))
    assert server.url is not None
    http = httpx2.AsyncClient(headers=server.headers, timeout=httpx2.Timeout(30.0, read=300.0))
    return _HttpTransport(server.url, http)


class _HttpTransport:
    """streamable_http_client plus the lifetime of the httpx2 client that carries our headers."""

    def __init__(self, url: str, http: httpx2.AsyncClient) -> None:
        self._url = url
        self._http = http
        self._inner: AbstractAsyncContextManager[Any] | None = None

    async def __aenter__(self) -> Any:
        await self._http.__aenter__()
        self._inner = streamable_http_client(self._url, http_client=self._http)
        try:
            return await self._inner.__aenter__()
        except BaseException:
            await self._http.__aexit__(None, None, None)
            raise

    async def __aexit__(self, *exc: Any) -> bool | None:
        try:
            assert self._inner is not None
            return await self._inner.__aexit__(*exc)
        finally:
            await self._http.__aexit__(None, None, None)


def _locate(command: str, environ: Mapping[str, str], where: str) -> str:
    # Commands installed beside opsmith (its virtualenv's bin) are found even when that
    # directory is not on PATH, e.g. when opsmith runs as .venv/bin/opsmith.
    search = os.pathsep.join(p for p in (environ.get("PATH", ""), os.path.dirname(sys.executable)) if p)
    found = shutil.which(command, path=search)
    if found is None:
        raise ConfigError(
            f"{where}.command: {command!r} was not found or is not executable",
            hint="install it, put it on PATH, or give its absolute path",
        )
    return found


def _referenced_values(spec: ServerConfig, environ: Mapping[str, str]) -> tuple[str, ...]:
    """Values substituted from the environment: treated as secrets wherever text is shown."""
    texts = spec.model_dump_json()
    return tuple(environ[name] for name in referenced_variables(texts) if environ.get(name))


def _looks_secret(key: str) -> bool:
    upper = key.upper()
    return any(word in upper for word in ("TOKEN", "SECRET", "PASSWORD", "KEY", "AUTH", "CREDENTIAL"))
