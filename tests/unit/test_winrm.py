"""The WinRM executor's PowerShell text (encoding, quoting, CLIXML, chunking), its settings, and
what it refuses before connecting to anything."""

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
    _MAX_COMMAND_LINE,
    _PREAMBLE,
    WinrmExecutor,
    _chunk_size,
    _clixml_text,
    _command_line,
    _encoded_arguments,
    _quoted,
    _remote_path_problem,
    _write_part_script,
)
from tests.fleet.wsman import clixml

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


@given(st.text())
def test_encoded_command_is_base64_of_utf16le_of_the_script(script: str) -> None:
    arguments = _encoded_arguments(script)

    assert arguments[:3] == ["-NoProfile", "-NonInteractive", "-EncodedCommand"]
    assert base64.b64decode(arguments[3], validate=True).decode("utf-16-le") == f"{_PREAMBLE}\n{script}"


@given(xml_text)
def test_clixml_errors_read_back_as_their_text(text: str) -> None:
    expected = "".join(f"{line}\n" for line in text.split("\n")) if text else ""

    assert _clixml_text(clixml(text)) == expected


@given(st.text())
def test_clixml_reading_never_fails(text: str) -> None:
    assert isinstance(_clixml_text("#< CLIXML\r\n" + text), str)
    assert _clixml_text(text.lstrip("#")) == text.lstrip("#")  # not CLIXML: as it is


def test_clixml_progress_records_are_left_out() -> None:
    text = (
        '#< CLIXML\r\n<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">'
        '<Obj S="progress" RefId="0"><TN RefId="0"><T>System.Management.Automation.PSCustomObject</T></TN>'
        '<MS><I64 N="SourceId">1</I64></MS></Obj><S S="Error">Access is denied._x000D__x000A_</S></Objs>'
    )
    assert _clixml_text(text) == "Access is denied.\n"


paths = st.text(
    st.characters(exclude_characters="\0\r\n", exclude_categories=["Cs"]), min_size=1, max_size=300
)


@given(paths)
def test_a_part_written_at_the_chunk_size_fits_cmd_exe_command_line(name: str) -> None:
    part = rf"C:\Program Files\{name}.opsmith-0123abcd.part"
    size = _chunk_size(part)
    script = _write_part_script(part, b"\xff" * size, first=False)

    assert size >= 1000
    assert len(_command_line(_encoded_arguments(script))) <= _MAX_COMMAND_LINE


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


@pytest.mark.anyio
async def test_a_script_too_long_for_the_command_line_is_refused() -> None:
    result = await WinrmExecutor(WinrmConfig()).run(windows(), CREDENTIAL, "Write-Output 'x'\n" * 400)

    assert result.failure is HostFailure.REFUSED
    assert result.reason is not None and "8191" in result.reason


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
