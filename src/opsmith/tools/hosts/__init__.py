"""Host adapters: commands and files on a fleet of hosts, every host's result kept (`ssh` over
asyncssh, `winrm` for Windows hosts)."""
