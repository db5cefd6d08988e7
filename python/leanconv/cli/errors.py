"""The one exception the CLI turns into a single stderr line and exit code 2."""


class CliError(Exception):
    """A user mistake (bad option, impossible shape, unavailable ISA...)."""
