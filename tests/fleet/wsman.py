"""A WS-Management endpoint for tests: a real HTTP(S) server on 127.0.0.1 that speaks the WinRS
part of MS-WSMV to a real client (pypsrp), with a simulated Windows host behind it.

What it implements, in the message shapes Windows sends (MS-WSMV 3.1.4, and pypsrp's own parsing
in `pypsrp.wsman` and `pypsrp.shell`):

    Create   (transfer/Create, resource .../windows/shell/cmd)  a shell: ResourceCreated + rsp:Shell
    Command  (shell/Command)    rsp:CommandLine; `powershell.exe ... -EncodedCommand B64` is decoded
                                (base64 of UTF-16LE) and the script handed to the simulated host; a
                                script that reads `$input` (stdin) first waits for its stdin to end
    Send     (shell/Send)       rsp:Stream Name="stdin" CommandId=... (base64, in as many Sends as
                                the client likes), End="true" (xs:boolean) on the last: then the
                                script runs with that input, decoded in the shell's code page.
                                Input for an unknown command, a stream other than stdin, or after
                                End is a fault
    Receive  (shell/Receive)    rsp:Stream stdout/stderr (base64, in pieces, End="true"), and
                                rsp:CommandState Done with rsp:ExitCode; while a command still runs,
                                the request waits up to its OperationTimeout and then answers the
                                fault Windows answers then (w:TimedOut, code 2150858793); so does a
                                command still waiting for its stdin to end
    Signal   (shell/Signal)     Terminate / ctrl_c: the command is ended and forgotten
    Delete   (transfer/Delete)  the shell is deleted
    faults                      s:Fault with wsmanfault:WSManFault (HTTP 500) for an unknown shell or
                                command, an unsupported action or resource, an envelope over
                                MaxEnvelopeSize; cmd.exe's 8191-character command-line limit is
                                enforced as Windows does ("The command line is too long.", exit 1)

Not implemented: Connect/Reconnect/Disconnect, Enumerate/Get/Put, PSRP (the
Microsoft.PowerShell resource), WinRM message encryption over plain HTTP (so NTLM works over HTTPS
only), Kerberos and CredSSP.

Authentication: Basic (`Authorization: Basic`, every request) and Negotiate/NTLM (pyspnego's
acceptor, connection-based as in IIS/WinRM: after the handshake the connection stays
authenticated; bound to the TLS certificate by channel binding). A bad password is a 401. NTLM
needs the `NTLM_USER_FILE` environment variable naming `ntlm_user_file(...)`'s file (pyspnego's
acceptor reads its users from there); a test sets it with monkeypatch.

Switches on the endpoint to misbehave: `hang` (commands never finish: every Receive waits and
answers the timeout fault, as a real host does with a command that runs forever), `stall` (Receive
requests are never answered: the client's read times out), `drop` (requests of that action are
answered by closing the connection). `actions`, `open_shells`, `unsignalled` and `requests` show what
a client did.

Behind it a `Script` handler: script text -> `Outcome`. `SimulatedWindows` is one: a service table, a
file system and processes, running the PowerShell it is sent (tests/fleet/powershell.py).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import ipaddress
import re
import socket
import ssl
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol
from xml.sax.saxutils import escape

import spnego
import spnego.channel_bindings
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from spnego._ntlm_raw.crypto import lmowfv1, ntowfv1

from tests.fleet import powershell

ADDRESS = "127.0.0.1"
MACHINE = "WIN-SIMULATED"
NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "a": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "w": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
    "rsp": "http://schemas.microsoft.com/wbem/wsman/1/windows/shell",
}
CMD_SHELL = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd"
_TRANSFER = "http://schemas.xmlsoap.org/ws/2004/09/transfer"
_SHELL = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"
_ANONYMOUS = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"
ACTIONS = {
    f"{_TRANSFER}/Create": "Create",
    f"{_SHELL}/Command": "Command",
    f"{_SHELL}/Receive": "Receive",
    f"{_SHELL}/Send": "Send",
    f"{_SHELL}/Signal": "Signal",
    f"{_TRANSFER}/Delete": "Delete",
}
DONE = f"{_SHELL}/CommandState/Done"
RUNNING = f"{_SHELL}/CommandState/Running"
OPERATION_TIMEOUT_CODE = 2150858793
SHELL_NOT_FOUND_CODE = 2150858843
MAX_COMMAND_LINE = 8191
_STREAM_PIECE = 1024  # bytes of output per rsp:Stream element, so a client joins several
_HANDSHAKE_SECONDS = 5.0
_IDLE_SECONDS = 30.0  # a keep-alive connection with no request for this long is closed


# -- what a simulated host answers ---------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What a script came to: its output, exit code, and how long it runs."""

    stdout: str = ""
    stderr: str = ""  # error records: written as CLIXML
    exit_code: int = 0
    seconds: float = 0.0
    raw_stderr: str = ""  # written to stderr as it is, after the CLIXML


class Script(Protocol):
    """What a simulated host does with a script and the text on its stdin."""

    def __call__(self, script: str, stdin: str = "") -> Outcome: ...


@dataclass
class SimulatedWindows:
    """A Windows host reduced to a service table, a file system and a process list, running the
    PowerShell it is sent in tests/fleet/powershell.py's interpreter: the real scripts opsmith renders
    for Windows hosts (opsmith.domain.scripts_windows), put_file's statements and the tests' own
    lines run there and print what Windows PowerShell 5.1 would, result line included.

    A statement outside what that interpreter implements fails the script loudly: exit code
    UNSUPPORTED_EXIT, stderr naming the statement, and the message kept in `unsupported` (a test can
    assert it stayed empty). `refuse_stop` names services whose Stop-Service fails as Windows fails a
    service that does not accept the stop control; `pending_seconds` is how long a service spends in
    StopPending or StartPending; `corrupt_writes` flips a bit of every chunk written (to see a copy's
    hash check fail). `scripts` records what ran.
    """

    services: dict[str, str] = field(default_factory=dict)  # name -> Running | Stopped | Paused
    refuse_stop: set[str] = field(default_factory=set)
    pending_seconds: float = 0.0
    files: dict[str, bytes] = field(default_factory=dict)  # lower-cased path -> content
    directories: set[str] = field(default_factory=set)  # lower-cased, besides those holding a file
    processes: dict[str, list[int]] = field(default_factory=dict)  # name without .exe -> pids
    corrupt_writes: bool = False
    scripts: list[str] = field(default_factory=list)
    stdins: list[str] = field(default_factory=list)  # what each script's stdin held
    chunks: list[int] = field(default_factory=list)  # sizes of the chunks written, in order
    unsupported: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __call__(self, script: str, stdin: str = "") -> Outcome:
        with self.lock:
            self.scripts.append(script)
            self.stdins.append(stdin)
            ran = powershell.run(script, self, stdin)
            if ran.unsupported:
                self.unsupported.append(ran.unsupported)
        return Outcome(ran.stdout, ran.error_records, ran.exit_code, ran.seconds, ran.raw_stderr)

    def file(self, path: str) -> bytes | None:
        return self.files.get(path.lower())


def clixml(stderr: str) -> str:
    """Error text as powershell.exe writes it to stderr over WinRS: `#< CLIXML` and an Objs document."""
    if not stderr:
        return ""
    lines = "".join(
        f'<S S="Error">{escape(_clixml_escape(line))}_x000D__x000A_</S>' for line in stderr.split("\n")
    )
    return f'#< CLIXML\r\n<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">{lines}</Objs>'


def _clixml_escape(text: str) -> str:
    # PowerShell's serializer writes control characters, and a `_x` that could be read as an
    # escape, as _xHHHH_.
    text = re.sub(r"_(?=x[0-9A-Fa-f]{4}_)", "_x005F_", text)
    return re.sub(r"[\x00-\x1f]", lambda m: f"_x{ord(m[0]):04X}_", text)


# -- TLS ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Certificates:
    """A throwaway CA and a server certificate it signed for 127.0.0.1 and localhost."""

    ca_file: Path
    cert_file: Path
    key_file: Path

    @classmethod
    def make(cls, directory: Path, *, name: str = "opsmith test WinRM CA") -> Certificates:
        directory.mkdir(parents=True, exist_ok=True)
        now = dt.datetime.now(dt.UTC)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        ca = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(ADDRESS))]
                ),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )
        found = cls(directory / "ca.pem", directory / "server.pem", directory / "server.key")
        found.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        found.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        found.key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        return found

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context

    def channel_bindings(self) -> spnego.channel_bindings.GssChannelBindings:
        """tls-server-end-point (RFC 5929) of the server certificate, as the client computes it."""
        der = x509.load_pem_x509_certificate(self.cert_file.read_bytes()).public_bytes(
            serialization.Encoding.DER
        )
        digest = hashlib.sha256(der).digest()
        return spnego.channel_bindings.GssChannelBindings(application_data=b"tls-server-end-point:" + digest)


def ntlm_user_file(directory: Path, users: Mapping[str, str]) -> Path:
    """The user file pyspnego's NTLM acceptor reads (`NTLM_USER_FILE`), in smbpasswd's format
    (USER:UID:LM:NT:FLAGS:TIME), which holds hashes: a password may contain a colon."""
    lines = [
        f"{user}:{uid}:{lmowfv1(password).hex().upper()}:{ntowfv1(password).hex().upper()}:[U]:LCT-0\n"
        for uid, (user, password) in enumerate(users.items(), start=1000)
    ]
    path = directory / "ntlm-users"
    path.write_text("".join(lines))
    return path


# -- the endpoint ---------------------------------------------------------------------------------------


@dataclass
class _Command:
    id: str
    outcome: Outcome | None  # None: the script waits for its stdin to end
    started: float
    done: bool = False
    script: str | None = None
    stdin: bytearray = field(default_factory=bytearray)
    stdin_ended: bool = False


@dataclass
class _Shell:
    id: str
    owner: str
    codepage: int
    commands: dict[str, _Command] = field(default_factory=dict)


class WsmanEndpoint:
    """One simulated Windows host's WinRM listener on 127.0.0.1 (HTTPS when given certificates)."""

    def __init__(
        self,
        host: Script,
        *,
        users: Mapping[str, str],
        certificates: Certificates | None = None,
        auth: Collection[str] = ("basic", "negotiate"),
    ) -> None:
        self.host = host
        self.users = dict(users)
        self.certificates = certificates
        self.auth = set(auth)
        self.hang = False
        self.stall = False
        self.drop: str | None = None  # an action name: its requests are answered by hanging up
        self.actions: list[str] = []
        self.requests = 0  # HTTP requests of any kind, before authentication
        self.rejected = 0  # 401 answers for a bad or missing credential
        self.errors: list[str] = []  # what went wrong inside the endpoint itself
        self.shells: dict[str, _Shell] = {}
        self.codepages: list[int] = []
        self.lock = threading.Lock()
        self._closing = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._tls = certificates.server_context() if certificates else None
        self._bindings = certificates.channel_bindings() if certificates else None

    @property
    def port(self) -> int:
        assert self._server is not None, "the endpoint is not started"
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"{'https' if self._tls else 'http'}://{ADDRESS}:{self.port}/wsman"

    @property
    def open_shells(self) -> int:
        with self.lock:
            return len(self.shells)

    @property
    def unsignalled(self) -> int:
        """Commands that were started and never ended with a Signal."""
        with self.lock:
            return sum(len(shell.commands) for shell in self.shells.values())

    def start(self) -> WsmanEndpoint:
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="wsman", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._closing.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.close_all()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> WsmanEndpoint:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`; False at once when the endpoint is stopping."""
        return not self._closing.wait(seconds)

    # -- SOAP --------------------------------------------------------------------------------------

    def answer(self, envelope: bytes, user: str) -> tuple[int, str] | None:
        """The HTTP status and SOAP reply to one request; None: hang up without an answer."""
        try:
            root = ET.fromstring(envelope)
        except ET.ParseError:
            return 400, ""
        header = root.find("s:Header", NS)
        body = root.find("s:Body", NS)
        if header is None or body is None:
            return 400, ""
        request = _Request(header, body)
        name = ACTIONS.get(request.action, request.action)
        with self.lock:
            self.actions.append(name)
        if self.drop == name:
            return None
        if request.max_envelope and len(envelope) > request.max_envelope:
            return request.fault(
                "s:Sender", "w:EncodingLimit", 2150858817, "The envelope is larger than MaxEnvelopeSize."
            )
        if request.resource != CMD_SHELL:
            return request.fault(
                "s:Sender",
                "w:DestinationUnreachable",
                2150858770,
                "The WS-Management service cannot"
                " process the request. The resource URI is not supported by this endpoint.",
            )
        handler = getattr(self, f"_{name.lower()}", None)
        if name not in ACTIONS.values() or handler is None:
            return request.fault(
                "s:Sender", "a:ActionNotSupported", None, f"The action {request.action} is not supported."
            )
        try:
            reply: tuple[int, str] | None = handler(request, user)
        except Exception as exc:  # the test's host raised: say so to the client and to the test
            self.errors.append(f"{type(exc).__name__}: {exc}")
            return request.fault("s:Receiver", "w:InternalError", 2147500037, f"simulated host failed: {exc}")
        return reply

    def _shell(self, request: _Request) -> _Shell | None:
        with self.lock:
            return self.shells.get(request.selectors.get("ShellId", ""))

    def _no_shell(self, request: _Request) -> tuple[int, str]:
        return request.fault(
            "s:Sender",
            "w:InvalidSelectors",
            SHELL_NOT_FOUND_CODE,
            f"The request for the Windows Remote Shell with ShellId {request.selectors.get('ShellId')} failed"
            " because the shell was not found on the server. Possible causes are: the specified ShellId"
            " is incorrect or the shell no longer exists on the server.",
        )

    def _create(self, request: _Request, user: str) -> tuple[int, str]:
        shell_element = request.body.find("rsp:Shell", NS)
        if shell_element is None:
            return request.fault("s:Sender", "w:SchemaValidationError", 2150858817, "rsp:Shell is missing.")
        codepage = int(request.options.get("WINRS_CODEPAGE", "437"))
        shell = _Shell(str(uuid.uuid4()).upper(), user, codepage)
        with self.lock:
            self.shells[shell.id] = shell
            self.codepages.append(codepage)
        streams_in = shell_element.findtext("rsp:InputStreams", "stdin", NS)
        streams_out = shell_element.findtext("rsp:OutputStreams", "stdout stderr", NS)
        body = (
            f"<x:ResourceCreated><a:Address>{escape(self.url)}</a:Address><a:ReferenceParameters>"
            f"<w:ResourceURI>{CMD_SHELL}</w:ResourceURI><w:SelectorSet>"
            f'<w:Selector Name="ShellId">{shell.id}</w:Selector></w:SelectorSet></a:ReferenceParameters>'
            f"</x:ResourceCreated><rsp:Shell><rsp:ShellId>{shell.id}</rsp:ShellId>"
            f"<rsp:ResourceUri>{CMD_SHELL}</rsp:ResourceUri><rsp:Owner>{escape(user)}</rsp:Owner>"
            f"<rsp:ClientIP>{ADDRESS}</rsp:ClientIP><rsp:IdleTimeOut>PT7200.000S</rsp:IdleTimeOut>"
            f"<rsp:InputStreams>{escape(streams_in)}</rsp:InputStreams>"
            f"<rsp:OutputStreams>{escape(streams_out)}</rsp:OutputStreams>"
            "<rsp:ShellRunTime>P0DT0H0M0S</rsp:ShellRunTime><rsp:ShellInactivity>P0DT0H0M0S</rsp:ShellInactivity>"
            "</rsp:Shell>"
        )
        return request.reply(f"{_TRANSFER}/CreateResponse", body)

    def _command(self, request: _Request, user: str) -> tuple[int, str]:
        shell = self._shell(request)
        if shell is None:
            return self._no_shell(request)
        line = request.body.find("rsp:CommandLine", NS)
        if line is None:
            return request.fault(
                "s:Sender", "w:SchemaValidationError", 2150858817, "rsp:CommandLine is missing."
            )
        executable = line.findtext("rsp:Command", "", NS).strip()
        arguments = [(a.text or "") for a in line.findall("rsp:Arguments", NS)]
        command_line = " ".join([executable, *arguments])
        script: Outcome | str
        if len(command_line) > MAX_COMMAND_LINE and request.options.get("WINRS_SKIP_CMD_SHELL") != "True":
            script = Outcome(stderr="The command line is too long.", exit_code=1)
        else:
            script = self._script(executable, arguments)
        command_id = line.get("CommandId") or str(uuid.uuid4()).upper()
        if isinstance(script, str) and powershell.reads_stdin(script):
            command = _Command(command_id, None, time.monotonic(), script=script)
        else:
            outcome = self._run(script, "") if isinstance(script, str) else script
            command = _Command(command_id, outcome, time.monotonic())
        with self.lock:
            shell.commands[command.id] = command
        body = f"<rsp:CommandResponse><rsp:CommandId>{command.id}</rsp:CommandId></rsp:CommandResponse>"
        return request.reply(f"{_SHELL}/CommandResponse", body)

    def _script(self, executable: str, arguments: list[str]) -> Outcome | str:
        """The PowerShell script a command line runs, or how powershell.exe (or cmd.exe) refuses it."""
        if executable.lower() not in ("powershell.exe", "powershell"):
            return Outcome(
                stderr=f"'{executable}' is not recognized as an internal or external command,"
                "\noperable program or batch file.",
                exit_code=1,
            )
        flags = [a.lower() for a in arguments]
        encoded = next(
            (
                arguments[i + 1]
                for i, a in enumerate(flags[:-1])
                if a in ("-encodedcommand", "-enc", "-e", "-ec")
            ),
            None,
        )
        if encoded is None:
            return Outcome(
                stderr="simulated host: only powershell.exe -EncodedCommand is supported", exit_code=1
            )
        try:
            return base64.b64decode(encoded, validate=True).decode("utf-16-le")
        except (binascii.Error, UnicodeDecodeError):
            return Outcome(
                stderr="Cannot process the command because the value of -EncodedCommand is invalid.",
                exit_code=1,
            )

    def _run(self, script: str, stdin: str) -> Outcome:
        outcome = self.host(script, stdin)
        stderr = clixml(outcome.stderr) + outcome.raw_stderr
        return Outcome(outcome.stdout, stderr, outcome.exit_code, outcome.seconds)

    def _send(self, request: _Request, user: str) -> tuple[int, str]:
        shell = self._shell(request)
        if shell is None:
            return self._no_shell(request)
        stream = request.body.find("rsp:Send/rsp:Stream", NS)
        if stream is None:
            return request.fault("s:Sender", "w:SchemaValidationError", 2150858817, "rsp:Stream is missing.")
        command_id = stream.get("CommandId", "")
        end = _xs_boolean(stream.get("End", "false"))
        with self.lock:
            command = shell.commands.get(command_id)
        if command is None:
            return request.fault(
                "s:Sender", "w:InvalidSelectors", 2150858843, f"The command {command_id} was not found."
            )
        if stream.get("Name") != "stdin" or end is None:
            return request.fault(
                "s:Sender",
                "w:InvalidParameter",
                None,
                f"The input stream {stream.get('Name')!r} (End={stream.get('End')!r}) is not valid:"
                ' the shell takes input on "stdin", and End is an xs:boolean.',
            )
        try:
            data = base64.b64decode(stream.text or "", validate=True)
        except binascii.Error:
            return request.fault(
                "s:Sender", "w:SchemaValidationError", 2150858817, "rsp:Stream is not base64."
            )
        if command.stdin_ended:
            return request.fault(
                "s:Sender", "w:InvalidParameter", None, "The input stream of the command has ended."
            )
        command.stdin += data
        if end:
            command.stdin_ended = True
            if command.script is not None and command.outcome is None:
                encoding = "utf-8" if shell.codepage == 65001 else "cp437"
                outcome = self._run(command.script, command.stdin.decode(encoding, errors="replace"))
                command.outcome, command.started = outcome, time.monotonic()
        return request.reply(f"{_SHELL}/SendResponse", "<rsp:SendResponse/>")

    def _receive(self, request: _Request, user: str) -> tuple[int, str] | None:
        shell = self._shell(request)
        if shell is None:
            return self._no_shell(request)
        desired = request.body.find("rsp:Receive/rsp:DesiredStream", NS)
        command_id = desired.get("CommandId", "") if desired is not None else ""
        with self.lock:
            command = shell.commands.get(command_id)
        if command is None:
            return request.fault(
                "s:Sender", "w:InvalidSelectors", 2150858843, f"The command {command_id} was not found."
            )
        if self.stall:
            self.wait(3600)
            return None
        outcome = command.outcome
        blocked = self.hang or outcome is None  # a script reading stdin waits for its end
        left = outcome.seconds - (time.monotonic() - command.started) if outcome is not None else 0.0
        if blocked or left > 0:
            waited = request.operation_timeout if blocked else min(left, request.operation_timeout)
            self.wait(waited)
            if blocked or waited < left:
                return request.fault(
                    "s:Receiver",
                    "w:TimedOut",
                    OPERATION_TIMEOUT_CODE,
                    "The WS-Management service cannot complete the operation within the time specified"
                    " in OperationTimeout.  ",
                )
        encoding = "utf-8" if shell.codepage == 65001 else "cp437"
        streams = []
        assert outcome is not None
        for name, text in (("stdout", outcome.stdout), ("stderr", outcome.stderr)):
            data = text.replace("\r\n", "\n").replace("\n", "\r\n").encode(encoding, errors="replace")
            if command.done:
                data = b""
            for at in range(0, len(data), _STREAM_PIECE):
                piece = base64.b64encode(data[at : at + _STREAM_PIECE]).decode("ascii")
                streams.append(f'<rsp:Stream Name="{name}" CommandId="{command.id}">{piece}</rsp:Stream>')
            streams.append(f'<rsp:Stream Name="{name}" CommandId="{command.id}" End="true"></rsp:Stream>')
        command.done = True
        state = (
            f'<rsp:CommandState CommandId="{command.id}" State="{DONE}">'
            f"<rsp:ExitCode>{outcome.exit_code}</rsp:ExitCode></rsp:CommandState>"
        )
        body = f"<rsp:ReceiveResponse>{''.join(streams)}{state}</rsp:ReceiveResponse>"
        return request.reply(f"{_SHELL}/ReceiveResponse", body)

    def _signal(self, request: _Request, user: str) -> tuple[int, str]:
        shell = self._shell(request)
        if shell is None:
            return self._no_shell(request)
        signal = request.body.find("rsp:Signal", NS)
        command_id = signal.get("CommandId", "") if signal is not None else ""
        with self.lock:
            command = shell.commands.pop(command_id, None)
        if command is None:
            return request.fault(
                "s:Sender", "w:InvalidSelectors", 2150858843, f"The command {command_id} was not found."
            )
        return request.reply(f"{_SHELL}/SignalResponse", "<rsp:SignalResponse/>")

    def _delete(self, request: _Request, user: str) -> tuple[int, str]:
        with self.lock:
            shell = self.shells.pop(request.selectors.get("ShellId", ""), None)
        if shell is None:
            return self._no_shell(request)
        return request.reply(f"{_TRANSFER}/DeleteResponse", "")

    # -- authentication --------------------------------------------------------------------------

    def challenge_headers(self) -> list[tuple[str, str]]:
        offered = []
        if "negotiate" in self.auth:
            offered.append(("WWW-Authenticate", "Negotiate"))
        if "basic" in self.auth:
            offered.append(("WWW-Authenticate", 'Basic realm="WSMAN"'))
        return offered

    def basic_user(self, token: str) -> str | None:
        try:
            user, _, password = base64.b64decode(token, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return user if "basic" in self.auth and self.users.get(user) == password else None

    def acceptor(self, token: bytes) -> Any:
        protocol = "ntlm" if token.startswith(b"NTLMSSP\0") else "negotiate"
        return spnego.server(channel_bindings=self._bindings, protocol=protocol, service="HTTP")


@dataclass
class _Request:
    header: ET.Element
    body: ET.Element

    @property
    def action(self) -> str:
        return (self.header.findtext("a:Action", "", NS) or "").strip()

    @property
    def message_id(self) -> str:
        return (self.header.findtext("a:MessageID", "", NS) or "").strip()

    @property
    def resource(self) -> str:
        return (self.header.findtext("w:ResourceURI", "", NS) or "").strip()

    @property
    def max_envelope(self) -> int:
        return int(self.header.findtext("w:MaxEnvelopeSize", "0", NS) or 0)

    @property
    def operation_timeout(self) -> float:
        text = self.header.findtext("w:OperationTimeout", "PT60S", NS) or "PT60S"
        found = re.fullmatch(r"PT(\d+(?:\.\d+)?)S", text.strip())
        return float(found[1]) if found else 60.0

    @property
    def selectors(self) -> dict[str, str]:
        return {
            s.get("Name", ""): (s.text or "") for s in self.header.findall("w:SelectorSet/w:Selector", NS)
        }

    @property
    def options(self) -> dict[str, str]:
        return {o.get("Name", ""): (o.text or "") for o in self.header.findall("w:OptionSet/w:Option", NS)}

    def reply(self, action: str, body: str) -> tuple[int, str]:
        return 200, _envelope(action, self.message_id, body)

    def fault(self, code: str, subcode: str, wsman_code: int | None, message: str) -> tuple[int, str]:
        detail = (
            f'<s:Detail><f:WSManFault xmlns:f="http://schemas.microsoft.com/wbem/wsman/1/wsmanfault"'
            f' Code="{wsman_code}" Machine="{MACHINE}"><f:Message>{escape(message)}</f:Message>'
            "</f:WSManFault></s:Detail>"
            if wsman_code is not None
            else ""
        )
        body = (
            f"<s:Fault><s:Code><s:Value>{code}</s:Value><s:Subcode><s:Value>{subcode}</s:Value></s:Subcode>"
            f'</s:Code><s:Reason><s:Text xml:lang="en-US">{escape(message)}</s:Text></s:Reason>'
            f"{detail}</s:Fault>"
        )
        return 500, _envelope("http://schemas.dmtf.org/wbem/wsman/1/wsman/fault", self.message_id, body)


def _xs_boolean(text: str) -> bool | None:
    # XML Schema's boolean: exactly these four spellings.
    return {"true": True, "1": True, "false": False, "0": False}.get(text.strip())


def _envelope(action: str, relates_to: str, body: str) -> str:
    return (
        f'<s:Envelope xml:lang="en-US" xmlns:s="{NS["s"]}" xmlns:a="{NS["a"]}" xmlns:x="{_TRANSFER}"'
        f' xmlns:w="{NS["w"]}" xmlns:rsp="{NS["rsp"]}" xmlns:p="http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd">'
        f"<s:Header><a:Action>{action}</a:Action><a:MessageID>uuid:{str(uuid.uuid4()).upper()}</a:MessageID>"
        f"<a:To>{_ANONYMOUS}</a:To><a:RelatesTo>{escape(relates_to)}</a:RelatesTo></s:Header>"
        f"<s:Body>{body}</s:Body></s:Envelope>"
    )


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, endpoint: WsmanEndpoint) -> None:
        self.endpoint = endpoint
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__((ADDRESS, 0), _Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        connection = request
        tls = self.endpoint._tls
        if tls is not None:
            request.settimeout(_HANDSHAKE_SECONDS)
            try:
                connection = tls.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError):
                return  # e.g. the client did not trust the certificate
        with self.connections_lock:
            self.connections.add(connection)
        try:
            _Handler(connection, client_address, self)
        except OSError:
            pass  # the client went away mid-request
        finally:
            with self.connections_lock:
                self.connections.discard(connection)
            if connection is not request:
                connection.close()

    def close_all(self) -> None:
        with self.connections_lock:
            for connection in self.connections:
                with suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = _IDLE_SECONDS
    # Headers and body are two writes: with Nagle's algorithm each answer would wait for the
    # client's delayed ACK (40 ms).
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.user: str | None = None  # set once a connection-based (NTLM) handshake completed
        self.context: Any = None
        self.final_token: bytes | None = None  # SPNEGO's last token, sent with the first answer

    def log_message(self, format: str, *args: Any) -> None:
        return  # quiet: the tests look at `actions`, not at an access log

    def do_POST(self) -> None:
        endpoint = self.server.endpoint
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with endpoint.lock:
            endpoint.requests += 1
        if self.path.rstrip("/") != "/wsman":
            self._send(404, "")
            return
        user = self._authenticate()
        if user is None:
            return
        answer = endpoint.answer(body, user)
        if answer is None:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        headers = []
        if self.final_token:
            headers.append(("WWW-Authenticate", f"Negotiate {base64.b64encode(self.final_token).decode()}"))
            self.final_token = None
        self._send(*answer, headers)

    def _authenticate(self) -> str | None:
        """The authenticated user, or None when a 401 (a challenge or a rejection) was sent."""
        endpoint = self.server.endpoint
        if self.user is not None:
            return self.user
        scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() == "basic":
            user = endpoint.basic_user(token.strip())
            if user is None:
                return self._reject()
            return user
        if scheme.lower() in ("negotiate", "ntlm") and "negotiate" in endpoint.auth:
            return self._negotiate(base64.b64decode(token.strip() or ""))
        self._send(401, "", endpoint.challenge_headers())
        return None

    def _negotiate(self, token: bytes) -> str | None:
        endpoint = self.server.endpoint
        if self.context is None:
            self.context = endpoint.acceptor(token)
        try:
            out = self.context.step(token)
        except Exception:
            self.context = None
            return self._reject()
        if not self.context.complete:
            self._send(401, "", [("WWW-Authenticate", f"Negotiate {base64.b64encode(out or b'').decode()}")])
            return None
        self.final_token = out
        principal = str(self.context.client_principal or "")
        self.user = principal.rsplit("\\", 1)[-1]
        if self.user not in endpoint.users:
            self.user = None
            return self._reject()
        return self.user

    def _reject(self) -> None:
        endpoint = self.server.endpoint
        with endpoint.lock:
            endpoint.rejected += 1
        self._send(401, "", endpoint.challenge_headers())
        return None

    def _send(self, status: int, text: str, headers: list[tuple[str, str]] | None = None) -> None:
        payload = text.encode("utf-8")
        self.send_response(status)
        for name, value in headers or []:
            self.send_header(name, value)
        if payload:
            self.send_header("Content-Type", "application/soap+xml;charset=UTF-8")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        self.wfile.flush()


@contextmanager
def unreachable_port() -> Iterator[int]:
    """A port on 127.0.0.1 where connecting is refused: bound, so no one else takes it meanwhile,
    but never listening."""
    with socket.socket() as sock:
        sock.bind((ADDRESS, 0))
        yield int(sock.getsockname()[1])


__all__ = [
    "ADDRESS",
    "Certificates",
    "Outcome",
    "Script",
    "SimulatedWindows",
    "WsmanEndpoint",
    "clixml",
    "ntlm_user_file",
    "unreachable_port",
]
