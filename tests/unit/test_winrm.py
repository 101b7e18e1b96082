"""The WinRM executor's PowerShell text (the bootstrap and the script on its stdin, quoting, CLIXML
and plain stderr), its settings, and what it refuses before connecting to anything."""

from __future__ import annotations

import base64
import importlib.util

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr, ValidationError

from opsmith.config import WinrmConfig
from opsmith.domain.hosts import Credential, Host, HostFailure
from opsmith.errors import ConfigError
from opsmith.tools.hosts.winrm import (
    _BOOTSTRAP,
    _CHUNK_BYTES,
    _PREAMBLE,
    _STDIN_LINE,
    WinrmExecutor,
    _bootstrap_arguments,
    _quoted,
    _remote_path_problem,
    _stderr_text,
    _stdin,
    _write_part_script,
)
from tests.fleet import powershell
from tests.fleet.wsman import MAX_COMMAND_LINE, SimulatedWindows, clixml

QUOTES = "'\u2018\u2019\u201a\u201b"
# What can travel in XML 1.0 at all (PowerShell escapes control characters itself).
xml_text = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\ufffe\uffff\r"))
CREDENTIAL = Credential(name="win", kind="password", username="ops", secret=SecretStr("s3cret-value"))


def unquote(literal: str) -> str:
    """Read a PowerShell single-quoted string literal the way PowerShell does."""
    assert literal[0] in QUOTES and literal[-1] in QUOTES
    out, at, body = [], 0, literal[1:-1]
    while at < len(body):
        if body[at] in QUOTES:
            assert at + 1 < len(body) and body[at + 1] in QUOTES, f"the literal ends early at {at}"
            at += 1
        out.append(body[at])
        at += 1
    return "".join(out)


@given(st.text())
def test_quoted_text_is_read_back_by_powershell_exactly(text: str) -> None:
    assert unquote(_quoted(text)) == text


def test_the_command_line_is_the_bootstrap_encoded_whatever_the_script() -> None:
    arguments = _bootstrap_arguments()

    assert arguments[:3] == ["-NoProfile", "-NonInteractive", "-EncodedCommand"]
    assert base64.b64decode(arguments[3], validate=True).decode("utf-16-le") == _BOOTSTRAP
    assert _BOOTSTRAP.startswith(_PREAMBLE)
    assert len(" ".join(["powershell.exe", *arguments])) < MAX_COMMAND_LINE // 8  # far from cmd.exe's limit


@given(st.text())
def test_stdin_is_short_ascii_lines_of_base64_of_the_scripts_utf8(script: str) -> None:
    lines = _stdin(script).decode("ascii").split("\r\n")

    assert lines[-1] == "" and all(0 < len(line) <= _STDIN_LINE for line in lines[:-1])
    assert base64.b64decode("".join(lines), validate=True).decode("utf-8") == script


printable = st.text(st.characters(exclude_categories=["Cs", "Cc"]), max_size=300)


@given(printable)
def test_the_bootstrap_runs_the_script_it_reads_on_stdin_whole(text: str) -> None:
    # In the simulated host's interpreter: what the script prints, and its exit code, come back.
    script = f"function Say($what) {{ Write-Output $what }}\nSay {_quoted(text)}\nexit 3"

    ran = powershell.run(_BOOTSTRAP, SimulatedWindows(), _stdin(script).decode("ascii"))

    assert (ran.stdout, ran.exit_code, ran.unsupported) == (f"{text}\n", 3, None)


@given(xml_text)
def test_clixml_errors_read_back_as_their_text(text: str) -> None:
    expected = "".join(f"{line}\n" for line in text.split("\n")) if text else ""

    assert _stderr_text(clixml(text)) == expected


@given(st.text())
def test_clixml_reading_never_fails(text: str) -> None:
    assert isinstance(_stderr_text("#< CLIXML\r\n" + text), str)
    assert _stderr_text(text.lstrip("#")) == text.lstrip("#")  # not CLIXML: as it is


plain_lines = st.text(
    st.characters(exclude_categories=["Cs", "Cc"], exclude_characters="<#"), min_size=1, max_size=80
).filter(str.strip)


@given(
    errors=xml_text.filter(str.strip),
    before=st.lists(plain_lines, max_size=3),
    after=st.lists(plain_lines, max_size=3),
)
def test_plain_stderr_text_is_kept_after_the_decoded_clixml_errors(
    errors: str, before: list[str], after: list[str]
) -> None:
    # [Console]::Error.WriteLine (or a program's own stderr) lands before or after the CLIXML.
    lines = "".join(f"{line}\n" for line in before), "".join(f"{line}\n" for line in after)
    raw = lines[0] + clixml(errors) + "\n" + lines[1]

    text = _stderr_text(raw)

    decoded = "".join(f"{line}\n" for line in errors.split("\n"))
    assert text.startswith(decoded)
    assert text[len(decoded) :].split("\n")[:-1] == [*before, *after]
    assert "CLIXML" not in text[len(decoded) :] and "<Objs" not in text[len(decoded) :]


def test_clixml_progress_records_are_left_out() -> None:
    text = (
        '#< CLIXML\r\n<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">'
        '<Obj S="progress" RefId="0"><TN RefId="0"><T>System.Management.Automation.PSCustomObject</T></TN>'
        '<MS><I64 N="SourceId">1</I64></MS></Obj><S S="Error">Access is denied._x000D__x000A_</S></Objs>'
    )
    assert _stderr_text(text) == "Access is denied.\n"


paths = st.text(
    st.characters(exclude_characters="\0\r\n", exclude_categories=["Cs"]), min_size=1, max_size=300
)


@given(paths)
def test_a_part_of_any_path_is_written_by_a_script_that_says_that_path(name: str) -> None:
    # No path is too long any more: the script goes on stdin, not on cmd.exe's command line.
    part = rf"C:\Program Files\{name}.opsmith-0123abcd.part"
    script = _write_part_script(part, b"\xff" * _CHUNK_BYTES, first=False)

    assert _quoted(part) in script and len(script) > _CHUNK_BYTES


@pytest.mark.parametrize("path", [r"C:\Temp\app.exe", r"\\fileserver\share\app.exe", "D:/builds/app.exe"])
def test_absolute_windows_paths_are_accepted(path: str) -> None:
    assert _remote_path_problem(path) is None


@pytest.mark.parametrize("path", ["", "app.exe", r"Temp\app.exe", r"C:\Temp\\", "C:\\a\nb", r"\\"])
def test_other_remote_paths_are_refused(path: str) -> None:
    assert _remote_path_problem(path) is not None


# -- settings ---------------------------------------------------------------------------------------


def test_settings_default_to_verified_https_and_ntlm() -> None:
    settings = WinrmConfig()

    assert (settings.scheme, settings.transport, settings.cert_validation) == ("https", "ntlm", True)
    assert (settings.deadline, settings.max_threads) == (300.0, 20)


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"transport": "basic", "scheme": "http"}, "needs scheme 'https'"),
        ({"transport": "basic", "cert_validation": False}, "needs cert_validation"),
        ({"ca_bundle": "ca.pem", "cert_validation": False}, "keep one of them"),
    ],
)
def test_settings_that_would_expose_the_password_are_refused(values: dict[str, object], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        WinrmConfig.model_validate(values)


# -- refused before connecting ---------------------------------------------------------------------


def windows(**fields: object) -> Host:
    # Port 9 (discard): a test that connected anyway would fail as UNREACHABLE, not pass.
    return Host.model_validate(
        {"name": "win01", "address": "127.0.0.1", "port": 9, "connection": "winrm", **fields}
    )


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("host", "credential", "reason"),
    [
        (windows(connection="ssh"), CREDENTIAL, "use the SSH executor"),
        (windows(vars={"ansible_winrm_transport": "plaintext"}), CREDENTIAL, "is not one of"),
        (windows(vars={"ansible_winrm_scheme": "ftp"}), CREDENTIAL, "neither https nor http"),
        (
            windows(vars={"ansible_winrm_transport": "basic", "ansible_winrm_scheme": "http"}),
            CREDENTIAL,
            "plain HTTP",
        ),
        (windows(), CREDENTIAL.model_copy(update={"kind": "ssh_key"}), "is a ssh_key"),
        (windows(), CREDENTIAL.model_copy(update={"username": None}), "no user name"),
    ],
)
async def test_what_cannot_be_sent_safely_is_refused(host: Host, credential: Credential, reason: str) -> None:
    result = await WinrmExecutor(WinrmConfig()).run(host, credential, "exit 0")

    assert result.failure is HostFailure.REFUSED
    assert result.reason is not None and reason in result.reason
    assert "s3cret-value" not in result.reason


@pytest.mark.skipif(importlib.util.find_spec("gssapi") is not None, reason="gssapi is installed here")
@pytest.mark.anyio
async def test_kerberos_without_gssapi_names_the_missing_package() -> None:
    with pytest.raises(ConfigError, match="'gssapi'"):
        WinrmExecutor(WinrmConfig(transport="kerberos"))
    result = await WinrmExecutor(WinrmConfig()).run(
        windows(vars={"ansible_winrm_transport": "kerberos"}), CREDENTIAL, "exit 0"
    )

    assert result.failure is HostFailure.REFUSED
    assert result.reason is not None and "pypsrp[kerberos]" in result.reason
