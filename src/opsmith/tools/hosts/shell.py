"""Remote command lines built from parts, quoted for a POSIX shell (the login shell sshd starts)."""

from __future__ import annotations

import shlex

__all__ = ["SUDO_PASSWORD_REFUSED", "sudo_command"]

SUDO_PASSWORD_REFUSED = 126  # the exit code when sudo refused the password given

# Run by `sh -c` with the command as $1 and the password as the first line of stdin. The password
# stays in shell variables and builtins (read, printf), so it is in no process's argv. It is given
# to sudo only when sudo asks for one (`sudo -n true` fails), and to `sudo -v` alone, which reads
# one line: the command's stdin is never read as a password, and the password never reaches the
# command. The command then runs under the credential sudo just cached (it is not exec'd: sudo's
# cache is per parent process when there is no terminal, and both sudos are children of this sh).
_SUDO_WITH_PASSWORD = f"""\
IFS= read -r opsmith_password
if ! sudo -n true 2>/dev/null; then
  printf '%s\\n' "$opsmith_password" | sudo -S -p '' -v 2>/dev/null || {{
    echo 'opsmith: sudo refused the password of this credential' >&2
    exit {SUDO_PASSWORD_REFUSED}
  }}
fi
unset opsmith_password
sudo -n -- sh -c "$1"
"""


def sudo_command(command: str, *, password: bool) -> str:
    """The line that runs `command` as root through sudo, never prompting: `sudo -n -- sh -c
    COMMAND`. With `password`, the caller sends the sudo password as the first line of stdin."""
    if not password:
        return f"sudo -n -- sh -c {shlex.quote(command)}"
    return f"sh -c {shlex.quote(_SUDO_WITH_PASSWORD)} opsmith-sudo {shlex.quote(command)}"
