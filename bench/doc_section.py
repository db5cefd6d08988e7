"""The one way bench scripts write their table into a shared doc: between
`<!-- name -->` and `<!-- /name -->`, leaving the rest of the file as it is."""
from __future__ import annotations

from pathlib import Path

import host_state

# the host probe when the benchmark started (this module is imported then)
_START_US = host_state.probe_in_child()


def host_line():
    """The host probe's sentence for a timed table: its reading when the
    benchmark started and now (host_state.py)."""
    return host_state.describe(_START_US, host_state.probe_in_child())


def markers(name):
    return f"<!-- {name} -->", f"<!-- /{name} -->"


def write_section(path, name, text):
    """Puts `text` between the markers of section `name` in `path` (replacing
    what was there; appended when the file has no such section yet)."""
    begin, end = markers(name)
    out = Path(path)
    old = out.read_text() if out.exists() else ""
    text = f"{begin}\n{text.strip()}\n{end}"
    if begin in old and end in old:
        new = old[:old.index(begin)] + text + old[old.index(end) + len(end):]
    else:
        new = old.rstrip("\n") + "\n\n" + text + "\n"
    out.write_text(new)


def publish(path, name, lines):
    """Prints a table (a list of lines) and writes it as section `name` of `path`,
    with the host probe's readings (host_state.py) under it."""
    lines = list(lines) + ["", host_line()]
    text = "\n".join(lines)
    print(text)
    write_section(path, name, text)


def read_section(path, name):
    """Section `name` of `path` with its markers, or "" when it has none."""
    begin, end = markers(name)
    old = Path(path).read_text() if Path(path).exists() else ""
    if begin in old and end in old:
        return old[old.index(begin):old.index(end) + len(end)]
    return ""
