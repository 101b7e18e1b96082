"""Canary secrets planted in the vault through the real `opsmith secrets set` appear in no output of
any command (every `--help`, every read, every refusal) and in no byte under the state directory
(the database, its log, the logs, the key files), in no form: not as text, hex nor base64."""

from __future__ import annotations

import fcntl
import json
import os
import select
import subprocess
import termios
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import typer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from typer.testing import CliRunner

from opsmith.bootstrap import wire
from opsmith.cli.app import app as cli_app
from opsmith.config import load_config
from opsmith.services.secrets import credential
from tests.canary import child_env, everything_stored, leaks
from tests.integration.test_cli import OPSMITH

pytestmark = pytest.mark.integration

PASSWORD = "vault-canary-3e8f1a6c9b"
TOKEN = "token-canary-a7c2e94f10"
PHRASE = "phrase-canary-0d4b7e2a91"
KEY_A = "c3" * 32
KEY_B = "d4" * 32
# What is run after the secrets are planted: every command that shows what opsmith holds, each its
# own process as a person runs it, side by side (they only read). --json where it is a second view.
READS = [
    ["secrets", "list"],
    ["secrets", "list", "--json"],
    ["audit"],
    ["audit", "--json", "--limit", "500"],
    ["audit", "verify"],
    ["plans", "--json"],
    ["tools"],
    ["servers", "status"],
    ["whoami"],
    ["inventory", "hosts", "--json"],
    ["inventory", "show", "web"],
]


class Project:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.outputs: list[str] = []

    def run(self, *args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> Any:
        done = subprocess.run(
            [OPSMITH, *args],
            cwd=self.root,
            env=child_env(**(env or {})),
            input=stdin if stdin is not None else "",
            capture_output=True,
            text=True,
            timeout=60,
        )
        self.outputs.extend((done.stdout, done.stderr))
        return done

    def ok(self, *args: str, stdin: str | None = None, code: int = 0, **env: str) -> str:
        done = self.run(*args, stdin=stdin, env=env)
        assert done.returncode == code, (args, done.stdout, done.stderr)
        return str(done.stdout) if code == 0 else str(done.stderr)


@pytest.fixture
def project(tmp_path: Path) -> Project:
    root = tmp_path / "project"
    root.mkdir()
    (root / "opsmith.yaml").write_text(
        f"state_dir: '{root / '.opsmith'}'\n"
        "mcpServers: {}\n"
        "inventory:\n"
        "  groups:\n"
        "    web: {hosts: {web1: {address: 10.0.0.1, user: deploy, credential: web-password}}}\n"
    )
    return Project(root)


def _encrypted_key(directory: Path) -> tuple[Path, Path, list[str]]:
    """An ed25519 private key encrypted with PHRASE, its passphrase file, and its PEM body's lines."""
    pem = (
        ed25519.Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(PHRASE.encode()),
        )
        .decode()
    )
    directory.mkdir()
    (directory / "deploy.pem").write_text(pem)
    (directory / "phrase").write_text(PHRASE + "\n")
    return (
        directory / "deploy.pem",
        directory / "phrase",
        [line for line in pem.splitlines() if "-----" not in line],
    )


def command_paths(command: Any = None, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command and group of the `opsmith` CLI, as the words that name it."""
    command = command or typer.main.get_command(cli_app)
    found = [prefix]
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        found.extend(command_paths(sub, (*prefix, name)))
    return found


def test_planted_secrets_appear_in_no_output_and_no_stored_byte(project: Project, tmp_path: Path) -> None:
    key_file, phrase_file, key_lines = _encrypted_key(tmp_path / "keys")
    planted = project.ok(
        "secrets", "set", "web-password", "--kind", "password", "--username", "deploy", stdin=PASSWORD + "\n"
    )
    assert "stored secret web-password (password, user deploy) under key " in planted
    key_options = ["--kind", "ssh_key", "--from-file", str(key_file)]
    project.ok("secrets", "set", "deploy-key", *key_options, "--passphrase-file", str(phrase_file))
    stored = json.loads(project.ok("secrets", "set", "api-token", "--kind", "token", "--json", stdin=TOKEN))
    assert set(stored) == {"name", "kind", "username", "created_at", "updated_at", "updated_by", "key_id"}
    # Refusals say why without quoting what they refuse; no option takes a value on the command line.
    refused = project.ok("secrets", "set", "web-password", "--kind", "certificate", stdin=PASSWORD, code=2)
    assert "not a PEM X.509 certificate" in refused
    refused = project.ok("secrets", "set", "k2", *key_options, code=2)
    assert "is encrypted, and no passphrase was given" in refused and "--passphrase-file" in refused
    refused = project.ok("secrets", "set", "k3", "--kind", "token", "--value", TOKEN, code=2)
    assert "no such option" in refused.lower() and TOKEN not in refused
    project.outputs.remove(refused)  # the test typed the token on that command line, not opsmith
    assert "re-encrypted 3 secrets under key" in project.ok("secrets", "rotate")

    # Help is the same text in or out of a process (it reads no state): read in this one, fast.
    runner = CliRunner()
    for path in command_paths():
        shown = runner.invoke(cli_app, [*path, "--help"])
        assert shown.exit_code == 0, (path, shown.output)
        project.outputs.append(shown.output)
    with ThreadPoolExecutor(max_workers=4) as pool:
        said = dict(zip(map(tuple, READS), pool.map(lambda args: project.ok(*args), READS), strict=True))
    listed = json.loads(said[("secrets", "list", "--json")])
    assert [s["name"] for s in listed] == ["api-token", "deploy-key", "web-password"]
    actions = [e["action"] for e in json.loads(said[("audit", "--json", "--limit", "500")])]
    assert actions.count("secret.set") == 3 and "secret.rotate" in actions
    assert "web-password" in said[("inventory", "hosts", "--json")]

    # The secrets are really there: what is not found was stored, encrypted.
    app = wire(load_config(project.root / "opsmith.yaml", {}), {})
    assert credential(app, "web-password").secret.get_secret_value() == PASSWORD
    deploy = credential(app, "deploy-key")
    assert deploy.passphrase is not None and deploy.passphrase.get_secret_value() == PHRASE
    assert credential(app, "api-token").secret.get_secret_value() == TOKEN

    canaries = [PASSWORD, TOKEN, PHRASE, *key_lines]
    assert leaks(canaries, project.outputs) == []
    stored_bytes = everything_stored(project.root)
    assert b"web-password" in stored_bytes, "the names are stored in the clear: the search reads text"
    assert leaks(canaries, [stored_bytes]) == []


def test_rotating_a_key_from_the_environment_names_the_variables_and_prints_no_key(project: Project) -> None:
    project.ok(
        "secrets", "set", "web-password", "--kind", "password", stdin=PASSWORD, OPSMITH_SECRET_KEY=KEY_A
    )
    refused = project.ok("secrets", "rotate", code=2, OPSMITH_SECRET_KEY=KEY_A)
    assert "OPSMITH_SECRET_KEY_NEW, which is not set" in refused and "openssl rand -hex 32" in refused
    said = project.ok("secrets", "rotate", OPSMITH_SECRET_KEY=KEY_A, OPSMITH_SECRET_KEY_NEW=KEY_B)
    assert "now set OPSMITH_SECRET_KEY to the value of OPSMITH_SECRET_KEY_NEW" in said
    wrong = project.ok(
        "secrets", "set", "db", "--kind", "password", stdin=TOKEN, code=2, OPSMITH_SECRET_KEY=KEY_A
    )
    assert "this vault was encrypted with another key" in wrong
    assert not (project.root / ".opsmith" / "secret.key").exists()
    assert leaks([KEY_A, KEY_B, PASSWORD, TOKEN], project.outputs) == []


def at_a_terminal(
    project: Project, args: list[str], answers: list[str], *, deadline: float = 60
) -> tuple[int, str]:
    """Run `opsmith` with a terminal of its own (a pty it controls, as a person's shell gives it),
    type each answer when a prompt asks (text ending in ': '), and return its exit code and
    everything the terminal showed."""
    master, slave = os.openpty()

    def own_terminal() -> None:
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    child = subprocess.Popen(
        [OPSMITH, *args],
        cwd=project.root,
        env=child_env(TERM="dumb"),
        stdin=slave,
        stdout=slave,
        stderr=slave,
        preexec_fn=own_terminal,
    )
    os.close(slave)
    shown, pending, ends, mark = b"", list(answers), time.monotonic() + deadline, 0
    try:
        while time.monotonic() < ends:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                shown += chunk
                # Each prompt answered once, after its last space shows: click writes the text,
                # then getpass drops what was typed so far and writes that space.
                line = shown[mark:].rsplit(b"\n", 1)[-1]
                if pending and line.endswith(b": ") and not line.startswith(b"note:"):
                    os.write(master, pending.pop(0).encode() + b"\n")
                    mark = len(shown)
            elif child.poll() is not None:
                break
        code = child.wait(timeout=max(1.0, ends - time.monotonic()))
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        os.close(master)
    text = shown.decode("utf-8", "replace")
    project.outputs.append(text)
    return code, text


def test_at_a_terminal_a_value_is_asked_hidden_and_twice_and_a_passphrase_when_needed(
    project: Project, tmp_path: Path
) -> None:
    code, shown = at_a_terminal(
        project, ["secrets", "set", "typed", "--kind", "password"], [PASSWORD, PASSWORD]
    )
    assert code == 0, shown
    assert "value of typed:" in shown and "Repeat for confirmation:" in shown
    assert "stored secret typed (password)" in shown
    key_file, _, key_lines = _encrypted_key(tmp_path / "keys")
    key = ["secrets", "set", "deploy-key", "--kind", "ssh_key", "--from-file", str(key_file)]
    code, shown = at_a_terminal(project, key, [PHRASE])
    assert code == 0, shown
    assert "passphrase of deploy-key:" in shown and "stored secret deploy-key (ssh_key)" in shown
    # A key has more lines than a prompt takes: at a terminal it must come from a file.
    code, shown = at_a_terminal(project, ["secrets", "set", "k", "--kind", "ssh_key"], [])
    assert code == 2 and "give it with --from-file PATH" in shown
    app = wire(load_config(project.root / "opsmith.yaml", {}), {})
    assert credential(app, "typed").secret.get_secret_value() == PASSWORD
    passphrase = credential(app, "deploy-key").passphrase
    assert passphrase is not None and passphrase.get_secret_value() == PHRASE
    assert leaks([PASSWORD, PHRASE, *key_lines], project.outputs) == [], "typed values are not echoed"
