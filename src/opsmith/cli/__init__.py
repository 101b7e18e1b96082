"""The `opsmith` command line (Typer + Rich): thin, maps services to views and exit codes."""
