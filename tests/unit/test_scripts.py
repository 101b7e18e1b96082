"""Fleet scripts from plain values: strict validators, quoting that round-trips, the result line
that cannot be forged, and `render` that says what it allows.

PowerShell cannot run here (no pwsh offline), so its scripts are checked structurally: a reference
tokenizer for PowerShell single-quoted strings (written from PowerShell's own tokenizer rule) reads
every value back out of the assignment block, and the code after that block is shown not to vary
with the values at all. The bash scripts are run for real in tests/integration/test_scripts_bash.py.
"""

from __future__ import annotations

import base64
import json
import posixpath
import re
import shlex
from typing import Any
from urllib.parse import quote as url_quote

import jsonschema
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from opsmith.domain import scripts_linux, scripts_windows
from opsmith.domain.errors import ScriptInputError, UsageError
from opsmith.domain.script_catalog import OPERATIONS, render
from opsmith.domain.scripts import (
    LINUX_SERVICE_PATTERN,
    PACKAGE_PATTERN,
    PROCESS_PATTERN,
    RESULT_MARKER,
    VERSION_PATTERN,
    WINDOWS_SERVICE_PATTERN,
    Script,
    absolute_path,
    command_argv,
    file_mode,
    health_url,
    package_name,
    package_version,
    parse_result,
    process_name,
    ps_quote,
    result_base,
    seconds,
    service_name,
    sh_quote,
    sha256_hex,
)

METACHARACTERS = list(";|&$`()<>\\\n\0")
PS_QUOTES = "'\u2018\u2019\u201a\u201b"
NAMES = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,20}", fullmatch=True)


# -- names -----------------------------------------------------------------------------------------

VALIDATORS: list[tuple[Any, str]] = [
    (service_name, LINUX_SERVICE_PATTERN),
    (lambda v: service_name(v, os="windows"), WINDOWS_SERVICE_PATTERN),
    (process_name, PROCESS_PATTERN),
    (package_name, PACKAGE_PATTERN),
    (package_version, VERSION_PATTERN),
]


@pytest.mark.parametrize(("validate", "pattern"), VALIDATORS)
@given(text=st.text(max_size=40))
def test_every_accepted_name_matches_its_pattern(validate: Any, pattern: str, text: str) -> None:
    try:
        accepted = validate(text)
    except ScriptInputError:
        assert not re.fullmatch(pattern, text)
    else:
        assert accepted == text and re.fullmatch(pattern, text)


@pytest.mark.parametrize(("validate", "pattern"), VALIDATORS)
@given(name=NAMES, where=st.integers(min_value=0), bad=st.sampled_from(METACHARACTERS))
def test_a_name_with_a_shell_metacharacter_is_refused(
    validate: Any, pattern: str, name: str, where: int, bad: str
) -> None:
    if bad == "$" and pattern == WINDOWS_SERVICE_PATTERN:
        return  # allowed there on purpose (MSSQL$NAME), and literal in single quotes
    at = where % (len(name) + 1)
    with pytest.raises(ScriptInputError):
        validate(name[:at] + bad + name[at:])


def test_the_classic_injection_is_refused_with_the_value_quoted_safely() -> None:
    with pytest.raises(ScriptInputError) as refused:
        service_name("nginx; rm -rf /")
    message = str(refused.value)
    assert "'nginx; rm -rf /'" in message and "';' at position 5" in message
    assert "letters, digits" in (refused.value.hint or "")
    assert isinstance(refused.value, UsageError) and refused.value.exit_code == 2


def test_a_newline_is_shown_escaped_in_the_message() -> None:
    with pytest.raises(ScriptInputError) as refused:
        process_name("nginx\nrm")
    assert "'nginx\\nrm'" in str(refused.value) and "\n" not in refused.value.message


def test_a_trailing_newline_does_not_slip_past_the_anchor() -> None:
    # `re.match("^...$")` would accept it: `$` matches before a final newline.
    with pytest.raises(ScriptInputError):
        service_name("nginx\n")


@pytest.mark.parametrize("name", ["nginx", "nginx.service", "getty@tty1", "systemd-journald", "a:b"])
def test_systemd_names(name: str) -> None:
    assert service_name(name) == name


def test_windows_names_allow_a_named_sql_server_instance() -> None:
    assert service_name("MSSQL$SQLEXPRESS", os="windows") == "MSSQL$SQLEXPRESS"
    with pytest.raises(ScriptInputError):
        service_name("MSSQL$SQLEXPRESS")  # not a systemd name


@pytest.mark.parametrize("bad", ["-rf", "", "x" * 129, "ngi nx", "*"])
def test_names_that_are_not_names(bad: str) -> None:
    with pytest.raises(ScriptInputError):
        service_name(bad)


def test_a_value_that_is_not_text_is_refused_by_type() -> None:
    with pytest.raises(ScriptInputError, match="must be a string, not int"):
        service_name(42)


def test_packages_and_versions() -> None:
    assert package_name("python3.11") == "python3.11"
    assert package_name("NetworkManager") == "NetworkManager"
    assert package_version("1:1.2.3-4ubuntu1~22.04") == "1:1.2.3-4ubuntu1~22.04"
    with pytest.raises(ScriptInputError, match="give a version in `version`"):
        package_name("nginx=1.2")


def test_sha256_mode_and_seconds() -> None:
    assert sha256_hex("A" * 64) == "a" * 64
    for bad in ("a" * 63, "g" * 64, "a" * 64 + "\n"):
        with pytest.raises(ScriptInputError):
            sha256_hex(bad)
    assert file_mode("0644") == "0644"
    with pytest.raises(ScriptInputError):
        file_mode("0648")
    assert seconds("30", field="timeout") == 30
    for bad in (0, 3601, True, "1e3", -1, 2.5):
        with pytest.raises(ScriptInputError, match="timeout"):
            seconds(bad, field="timeout")


# -- paths -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("/etc/../etc/nginx/./nginx.conf", "/etc/nginx/nginx.conf"),
        ("//srv//app/", "/srv/app"),
        ("/tmp/x/it's here", "/tmp/x/it's here"),
    ],
)
def test_linux_paths_are_normalised(raw: str, normal: str) -> None:
    assert absolute_path(raw) == normal


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("/../etc/passwd", "climbs above the root"),
        ("/srv/../../etc", "climbs above the root"),
        ("/", "root directory itself"),
        ("/a/..", "root directory itself"),
        ("etc/nginx", "not an absolute path"),
        ("/tmp/a\nb", "control character"),
        ("/tmp/a\0b", "control character"),
        ("", "empty"),
    ],
)
def test_linux_paths_refused(raw: str, why: str) -> None:
    with pytest.raises(ScriptInputError, match=why):
        absolute_path(raw, field="target")


SEGMENTS = st.lists(st.sampled_from(["a", "b c", "..", ".", "", "it's", "$(x)", "d"]), max_size=8)


@given(SEGMENTS)
def test_accepted_paths_are_normpath_without_dot_segments(segments: list[str]) -> None:
    raw = "/" + "/".join(segments)
    try:
        normal = absolute_path(raw)
    except ScriptInputError:
        return
    assert normal == posixpath.normpath(raw) or normal == "/" + posixpath.normpath(raw).lstrip("/")
    parts = normal.split("/")[1:]
    assert parts and "" not in parts and ".." not in parts and "." not in parts


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("c:/App/../App/x.exe", "C:\\App\\x.exe"),
        ("C:\\Program Files\\Station Controller\\sc.exe", "C:\\Program Files\\Station Controller\\sc.exe"),
        ("\\\\files\\share\\a\\..\\b.txt", "\\\\files\\share\\b.txt"),
        ("C:\\data\\[1]\\it's.txt", "C:\\data\\[1]\\it's.txt"),
    ],
)
def test_windows_paths_are_normalised(raw: str, normal: str) -> None:
    assert absolute_path(raw, os="windows") == normal


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("C:\\..\\Windows", "climbs above the root"),
        ("C:relative\\x", "relative to the drive"),
        ("\\Windows\\x", "not an absolute Windows path"),
        ("C:\\a|b", "'|'"),
        ("C:\\a\\b:stream", "':'"),
        ("\\\\?\\C:\\x", "device or long-path"),
        ("C:\\dir.\\x", "ending in a space or a dot"),
        ("C:\\", "root directory itself"),
    ],
)
def test_windows_paths_refused(raw: str, why: str) -> None:
    with pytest.raises(ScriptInputError, match=re.escape(why)):
        absolute_path(raw, os="windows")


# -- urls and command lines ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080/health", "https://web-1.example.com/", "HTTP://x/?a=1&b=2"]
)
def test_health_urls(url: str) -> None:
    assert health_url(url) == url


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://host/x", "not an http or https URL"),
        ("javascript:alert(1)", "not an http or https URL"),
        ("http:///path", "not an http or https URL"),
        ("http://user:secret@host/", "holds credentials"),
        ("http://host/a b", "contains ' '"),
        ("http://host/'\"", "contains '\"'"),
        ("http://host:99999/", "invalid port"),
        ("http://host/\n", "contains '\\n'"),
    ],
)
def test_health_urls_refused(url: str, why: str) -> None:
    with pytest.raises(ScriptInputError, match=re.escape(why)) as refused:
        health_url(url)
    assert "secret" not in str(refused.value)


def test_argv_words_are_anything_but_nul_and_the_program_is_a_program() -> None:
    assert command_argv(["echo", "a b", "it's", "$(touch x)", ""]) == (
        "echo",
        "a b",
        "it's",
        "$(touch x)",
        "",
    )
    assert command_argv(["/usr/bin/../bin/env"]) == ("/usr/bin/env",)
    for bad in ("echo hi", [], ["-rf"], ["rm;", "x"], ["echo", "a\0b"], ["echo", 3]):
        with pytest.raises(ScriptInputError):
            command_argv(bad)


def test_argv_errors_do_not_show_the_arguments() -> None:
    with pytest.raises(ScriptInputError) as refused:
        command_argv(["curl", "-H", 'Authorization: "tok3n-value"'], os="windows")
    assert "tok3n" not in str(refused.value) and "argv[2]" in str(refused.value)


@pytest.mark.parametrize(
    ("word", "why"),
    [('say "hi"', "double quote"), ("", "empty"), ("C:\\Program Files\\", "ends in a backslash")],
)
def test_windows_arguments_that_powershell_51_would_garble(word: str, why: str) -> None:
    with pytest.raises(ScriptInputError, match=why):
        command_argv(["app.exe", word], os="windows")
    assert command_argv(["app.exe", "C:\\NoSpaces\\"], os="windows")[1] == "C:\\NoSpaces\\"


# -- quoting ---------------------------------------------------------------------------------------


def read_ps_single_quoted(text: str, start: int = 0) -> tuple[str, int]:
    """Reference tokenizer for one PowerShell single-quoted string starting at `start`: the value
    and the index just past its closing quote. PowerShell's rule: any of ' ‘ ’ ‚ ‛ opens and
    closes it; two quote characters in a row inside it stand for the second one."""
    if text[start] not in PS_QUOTES:
        raise ValueError(f"no single-quoted string at {start}")
    value, index = [], start + 1
    while index < len(text):
        char = text[index]
        if char in PS_QUOTES:
            if index + 1 < len(text) and text[index + 1] in PS_QUOTES:
                value.append(text[index + 1])
                index += 2
                continue
            return "".join(value), index + 1
        value.append(char)
        index += 1
    raise ValueError("unterminated single-quoted string")


TEXT = st.text(alphabet=st.characters(blacklist_characters="\0") | st.sampled_from(PS_QUOTES + '$`"\n'))


# What may follow a quoted value: anything but a quote, which would join the closing quote into an
# escaped one: an empty value and a quote after it read as one unterminated string, in PowerShell
# as in the reference. The scripts put a space, a bracket, a comma or a line end after a value.
AFTER = st.text(alphabet=st.characters(blacklist_characters=PS_QUOTES), max_size=10)


@given(TEXT, AFTER)
def test_ps_quote_round_trips_through_the_reference_tokenizer(text: str, after: str) -> None:
    quoted = ps_quote(text)
    # Whatever follows in the script, the string ends exactly where the quoting ends.
    assert read_ps_single_quoted(quoted + after) == (text, len(quoted))


def test_ps_quote_doubles_the_unicode_quotes_too() -> None:
    assert ps_quote("a\u2019b") == "'a\u2019\u2019b'"
    assert ps_quote("it's") == "'it''s'"


@given(st.text(alphabet=st.characters(blacklist_characters="\0")))
def test_sh_quote_is_one_word_for_a_posix_shell(text: str) -> None:
    assert shlex.split(sh_quote(text)) == [text]


def test_quoting_refuses_nul() -> None:
    for quote in (sh_quote, ps_quote):
        with pytest.raises(ScriptInputError, match="NUL"):
            quote("a\0b")


# -- the result line -------------------------------------------------------------------------------


def line(data: dict[str, Any]) -> str:
    return RESULT_MARKER + json.dumps(data)


def test_the_last_marker_line_wins() -> None:
    out = "\n".join(["hello", line({"n": 1}), "more output", line({"n": 2}), "trailing"])
    assert parse_result(out) == {"n": 2}


def test_a_marker_not_at_the_start_of_a_line_is_ignored() -> None:
    assert parse_result("echo " + line({"forged": True})) is None
    assert parse_result(line({"n": 1}) + "\n  " + line({"forged": True})) == {"n": 1}


def test_windows_line_ends_and_bad_lines() -> None:
    assert parse_result("x\r\n" + line({"n": 1}) + "\r\n") == {"n": 1}
    assert parse_result(line({"n": 1}) + "\n" + RESULT_MARKER + "{broken") is None
    assert parse_result(RESULT_MARKER + "[1, 2]") is None
    assert parse_result("") is None


def test_a_unicode_line_separator_is_not_a_line_start() -> None:
    # str.splitlines would split here; the shells do not.
    assert parse_result(line({"n": 1}) + "\nx\u2028" + line({"forged": True})) == {"n": 1}


@given(st.text(), st.dictionaries(st.text(max_size=5), st.text(max_size=20) | st.integers(), max_size=4))
def test_any_noise_before_the_script_line_is_overruled(noise: str, found: dict[str, Any]) -> None:
    # The scripts print a newline of their own before their line, as here.
    assert parse_result(noise + "\n" + line(found) + "\n") == found


@given(st.text(max_size=60))
def test_a_value_cannot_break_out_of_the_result_line(value: str) -> None:
    base = result_base("install_file", {"target": value})
    assert "\n" not in base and "\r" not in base and base.isascii()
    assert parse_result(f"{value}\n\n{RESULT_MARKER}{base}}}\n") == {"op": "install_file", "target": value}


# -- render and the catalog ------------------------------------------------------------------------


def test_render_lists_the_operations_when_one_is_unknown() -> None:
    with pytest.raises(ScriptInputError) as refused:
        render("reboot", "linux", {})
    assert "'reboot'" in str(refused.value) and "service_restart" in (refused.value.hint or "")


def test_render_lists_the_allowed_params() -> None:
    with pytest.raises(ScriptInputError) as refused:
        render("service_stop", "linux", {"service": "nginx", "signal": "KILL"})
    assert "'signal'" in refused.value.message
    assert refused.value.hint == "its parameters are: service (required), timeout (default 60)"
    with pytest.raises(ScriptInputError) as windows:
        render("service_stop", "windows", {"service": "W3SVC", "grace": 1})
    assert "force (default False)" in (windows.value.hint or "")


def test_render_names_what_is_missing() -> None:
    with pytest.raises(ScriptInputError, match="install_file needs temp_path, sha256") as refused:
        render("install_file", "linux", {"target": "/etc/app.conf"})
    assert "mode (optional)" in (refused.value.hint or "")


def test_render_refuses_what_the_os_does_not_have() -> None:
    with pytest.raises(ScriptInputError, match="does not run on windows"):
        render("package_install", "windows", {"package": "nginx"})
    with pytest.raises(ScriptInputError, match="Linux hosts only"):
        render("service_status", "windows", {"service": "W3SVC"}, sudo=True)
    with pytest.raises(ScriptInputError, match="does not take 'mode'"):
        render(
            "install_file",
            "windows",
            {"temp_path": "C:\\t", "target": "C:\\a", "sha256": "a" * 64, "mode": "644"},
        )


def test_wait_healthy_takes_exactly_one_target() -> None:
    for params in ({}, {"url": "http://x/", "service": "nginx"}):
        with pytest.raises(ScriptInputError, match="exactly one of url and service"):
            render("wait_healthy", "linux", params)
    assert render("wait_healthy", "linux", {"service": "nginx"}).operation == "wait_healthy"


def test_render_validates_the_values() -> None:
    with pytest.raises(ScriptInputError, match="'nginx; rm -rf /'"):
        render("service_restart", "linux", {"service": "nginx; rm -rf /"})
    with pytest.raises(ScriptInputError, match="force must be true or false"):
        render("service_stop", "windows", {"service": "W3SVC", "force": "false"})


def test_sudo_reaches_the_privileged_commands_only() -> None:
    with_sudo = render("service_restart", "linux", {"service": "nginx"}, sudo=True).text
    assert "_bounded sudo -n -- systemctl" in with_sudo and "sudo -n true" in with_sudo
    assert "sudo" not in render("service_restart", "linux", {"service": "nginx"}).text
    assert "sudo" not in render("process_check", "linux", {"process": "nginx"}, sudo=True).text


def test_each_operation_has_a_template_for_each_of_its_systems() -> None:
    for name, op in OPERATIONS.items():
        for os in ("linux", "windows"):
            module = scripts_linux if os == "linux" else scripts_windows
            assert hasattr(module, name) == (os in op.os), (name, os)


def example(name: str, os: str) -> dict[str, Any]:
    linux = os == "linux"
    values: dict[str, Any] = {
        "service": "nginx" if linux else "W3SVC",
        "process": "nginx",
        "temp_path": "/tmp/upload" if linux else "C:\\Windows\\Temp\\upload",
        "target": "/etc/app.conf" if linux else "C:\\app\\app.conf",
        "sha256": "ab" * 32,
        "package": "nginx",
        "argv": ["echo", "hi"],
    }
    op = OPERATIONS[name]
    params = {p.name: values[p.name] for p in op.params_for(os) if p.required}  # type: ignore[arg-type]
    if name == "wait_healthy":
        params["url"] = "http://127.0.0.1/health"
    return params


CASES = [(name, os) for name, op in OPERATIONS.items() for os in op.os]


@pytest.mark.parametrize(("name", "os"), CASES)
def test_input_schemas_are_valid_and_match_what_render_accepts(name: str, os: Any) -> None:
    schema = OPERATIONS[name].input_schema(os)
    jsonschema.Draft202012Validator.check_schema(schema)
    params = example(name, os)
    jsonschema.validate(params, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**params, "bogus": 1}, schema)
    script = render(name, os, params)
    assert script.operation == name and script.shell == ("bash" if os == "linux" else "powershell")
    assert (script.idempotent, script.changes) == (OPERATIONS[name].idempotent, OPERATIONS[name].changes)


def test_what_is_idempotent() -> None:
    assert render("service_status", "linux", {"service": "nginx"}).idempotent
    assert render("package_install", "linux", {"package": "nginx", "version": "1.24.0-1"}).idempotent
    assert not render("service_restart", "linux", {"service": "nginx"}).idempotent
    assert not render("run_command", "windows", {"argv": ["ipconfig"]}).idempotent


def test_encoded_decodes_to_the_text_and_is_for_powershell_only() -> None:
    script = render("service_stop", "windows", {"service": "MSSQL$SQLEXPRESS", "timeout": 30})
    assert base64.b64decode(script.encoded()).decode("utf-16-le") == script.text
    with pytest.raises(ScriptInputError, match="only PowerShell takes an encoded command"):
        render("service_stop", "linux", {"service": "nginx"}).encoded()


def test_a_script_is_a_frozen_value() -> None:
    script = render("process_check", "linux", {"process": "nginx"})
    with pytest.raises(ValueError, match="frozen"):
        script.text = "rm -rf /"  # type: ignore[misc]
    assert Script.model_validate(script.model_dump()) == script


# -- values live in the assignment block only ------------------------------------------------------

# Everything PowerShell could read as code, but a double quote (refused for native arguments).
EVIL = "it's ‘quoted’ ‚so‛ $(touch /tmp/PWNED) `whoami` ; & | $env:PATH @(1) {x}"


def ps_header(text: str) -> tuple[dict[str, Any], str]:
    """The `$name = literal` lines after the two preference lines, read with the reference
    tokenizer, and the code after them."""
    lines = text.split("\n")
    assert lines[:2] == ["$ErrorActionPreference = 'Stop'", "$ProgressPreference = 'SilentlyContinue'"]
    values: dict[str, Any] = {}
    rest = "\n".join(lines[2:])
    while True:
        found = re.match(r"\$(\w+) = ", rest)
        if not found:
            return values, rest
        name, at = found[1], found.end()
        if rest.startswith(("$true", "$false", "$null"), at):
            word = re.match(r"\$(true|false|null)", rest[at:])
            assert word
            values[name] = {"true": True, "false": False, "null": None}[word[1]]
            at += word.end()
        elif rest.startswith("[int]", at):
            number, at = read_ps_single_quoted(rest, at + 5)
            values[name] = int(number)
        elif rest.startswith("@(", at):
            words, at = [], at + 2
            while rest[at] != ")":
                word, at = read_ps_single_quoted(rest, at)
                words.append(word)
                at += 2 if rest.startswith(", ", at) else 0
            values[name], at = words, at + 1
        else:
            values[name], at = read_ps_single_quoted(rest, at)
        assert rest[at] == "\n", f"something follows the value of ${name}"
        rest = rest[at + 1 :]
        if name == "base":  # the last of the block
            return values, rest


def windows_scripts(value: str) -> list[Script]:
    # A file name Windows allows: no backslash in it, not ending in a space or a dot.
    path = "C:\\data\\" + value.replace("\\", "_") + "x"
    return [
        scripts_windows.service_stop(service="MSSQL$SQLEXPRESS", timeout=30, force=True),
        scripts_windows.process_check("stationcontroller.exe"),
        scripts_windows.install_file(path + ".new", path, "ab" * 32),
        scripts_windows.run_command(["robocopy.exe", value, "x y"], cwd=path),
        scripts_windows.wait_healthy(url="http://127.0.0.1/" + url_quote(value)),
        scripts_windows.wait_healthy(service="W3SVC", timeout=5, interval=1),
    ]


@settings(max_examples=40)
@given(st.text(alphabet=st.sampled_from(PS_QUOTES + "ab $()`;&\\[]{}@#+-=~"), min_size=1, max_size=30))
def test_powershell_values_appear_only_in_the_assignment_block(value: str) -> None:
    # A value the argv rules refuse (spaces and a final backslash: Windows PowerShell would break it)
    # never reaches a script; those rules have tests of their own.
    try:
        command_argv(["robocopy.exe", value], os="windows")
    except ScriptInputError:
        assume(False)
    evil, plain = windows_scripts(value), windows_scripts("plain")
    for script, control in zip(evil, plain, strict=True):
        values, code = ps_header(script.text)
        control_values, control_code = ps_header(control.text)
        assert values.keys() == control_values.keys()
        assert code == control_code, "the code after the assignments depends on a value"
        assert json.loads(values["base"] + "}")["op"] == script.operation


def test_powershell_values_read_back_exactly() -> None:
    script = scripts_windows.run_command(["robocopy.exe", EVIL, "x"], cwd="C:\\it's")
    values, _ = ps_header(script.text)
    assert values["program"] == "robocopy.exe" and values["arguments"] == [EVIL, "x"]
    assert values["cwd"] == "C:\\it's"
    assert base64.b64decode(script.encoded()).decode("utf-16-le") == script.text


def test_powershell_integers_and_flags_are_literals_too() -> None:
    values, _ = ps_header(scripts_windows.service_stop("W3SVC", timeout=45, force=True).text)
    assert values["timeout"] == 45 and values["force"] is True and values["service"] == "W3SVC"


def test_a_powershell_script_fits_one_cmd_line_for_winrm() -> None:
    script = scripts_windows.install_file(
        "C:\\Windows\\Temp\\opsmith-upload-0123456789abcdef.tmp",
        "C:\\Program Files\\Station Controller\\bin\\stationcontroller.exe",
        "ab" * 32,
    )
    command = "powershell -NoProfile -NonInteractive -EncodedCommand " + script.encoded()
    assert len(command) < 8191  # cmd.exe's limit, which a WinRM command line meets


def bash_header(text: str) -> tuple[dict[str, Any], str]:
    """The `name='value'` (and `name=('a' 'b')`) lines after `set -u`, read with shlex, and the
    code after them."""
    assert text.startswith("set -u\n")
    values: dict[str, Any] = {}
    rest = text.removeprefix("set -u\n")
    while found := re.match(r"(\w+)=", rest):
        end = rest.index("\n", found.end())
        while True:  # a quoted value may hold newlines: take lines until it is whole
            raw = rest[found.end() : end]
            array = raw.startswith("(")
            try:
                if not array or raw.endswith(")"):
                    words = shlex.split(raw[1:-1] if array else raw)
                    break
            except ValueError:
                pass
            end = rest.index("\n", end + 1)
        values[found[1]] = words if array else words[0]
        assert raw.startswith(("'", "('")), f"{found[1]} is not quoted"
        rest = rest[end + 1 :]
        if found[1] == "_base":
            break
    return values, rest


@given(st.text(alphabet=st.sampled_from("ab '\"$()`;&|<>\\\n*?!{}"), min_size=1, max_size=30))
def test_bash_values_appear_only_in_the_assignment_block(value: str) -> None:
    def scripts(v: str) -> list[Script]:
        name = v.replace("\n", "_")  # a path may not hold a newline; an argument may
        return [
            scripts_linux.install_file(f"/tmp/{name}.new", f"/srv/{name}", "ab" * 32, mode="0600", sudo=True),
            scripts_linux.run_command(["printf", "%s", v], cwd=f"/srv/{name}", timeout=5),
            scripts_linux.package_update("nginx", backup=f"/etc/{name}"),
        ]

    evil = scripts(value)
    for script, control in zip(evil, scripts("plain"), strict=True):
        values, code = bash_header(script.text)
        control_values, control_code = bash_header(control.text)
        assert values.keys() == control_values.keys()
        assert code == control_code, "the code after the assignments depends on a value"
    assert bash_header(evil[1].text)[0]["cmd"] == ["printf", "%s", value]
