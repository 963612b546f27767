"""What a command returns, and how it is printed.

Handlers never print: they return one of the output objects below (or a list of
them). The shell renders them for a person (virsh's exact text formats) or, with
``--json``, as one JSON document for a script.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import unicodedata


def display_width(text: str) -> int:
    """Columns a string takes on a terminal (wide CJK characters count 2)."""
    if text.isascii():
        return len(text)
    width = 0
    for ch in text:
        if unicodedata.combining(ch):
            continue
        width += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return width


def _pad(text: str, width: int) -> str:
    return text + " " * (width - display_width(text))


class Output(ABC):
    """Base class: something a command produced."""

    quiet_hidden = False  # removed entirely by -q (informational messages)

    @abstractmethod
    def text(self, quiet: bool) -> str:
        """The text a person sees."""

    @abstractmethod
    def data(self):
        """The data ``--json`` prints."""


class Text(Output):
    """Verbatim text, printed as is (virsh's echo and desc end without a newline)."""

    def __init__(self, value: str, json_data=None):
        self.value = value
        self.json_data = json_data

    def text(self, quiet: bool) -> str:
        return self.value

    def data(self):
        return self.json_data if self.json_data is not None else {"text": self.value}


class Lines(Output):
    """One item a line (``list --name``, ``domname``)."""

    def __init__(self, items: list, json_data=None):
        self.items = items
        self.json_data = json_data

    def text(self, quiet: bool) -> str:
        return "".join(f"{item}\n" for item in self.items)

    def data(self):
        return self.json_data if self.json_data is not None else list(self.items)


class Message(Output):
    """An informational message (``Domain 'x' started``); ``-q`` removes it."""

    quiet_hidden = True

    def __init__(self, value: str, newline: bool = True, json_data=None):
        self.value = value
        self.newline = newline
        self.json_data = json_data

    def text(self, quiet: bool) -> str:
        if quiet:
            return ""
        return self.value + ("\n" if self.newline else "")

    def data(self):
        return self.json_data if self.json_data is not None else {"message": self.value}


class Table(Output):
    """A virsh table: header, dashed rule, left-aligned cells joined by three spaces."""

    def __init__(self, headers: list, rows: list, json_data=None, json_keys: list | None = None):
        self.headers = headers
        self.rows = rows
        self.json_data = json_data
        self.json_keys = json_keys

    def text(self, quiet: bool) -> str:
        rows = [[str(c) for c in row] for row in self.rows]
        ncols = len(self.headers)
        fast = self._ascii_text(rows, ncols, quiet)
        if fast is not None:
            return fast
        widths = [0] * ncols
        sources = rows if quiet else [list(self.headers)] + rows
        for row in sources:
            for i, cell in enumerate(row):
                widths[i] = max(widths[i], display_width(cell))
        out = []

        def render(row: list) -> str:
            cells = [_pad(c, widths[i]) for i, c in enumerate(row[:-1])]
            cells.append(row[-1])
            return " " + "   ".join(cells) + "\n"

        if not quiet:
            out.append(render(list(self.headers)))
            out.append("-" * (1 + sum(widths) + 3 * (ncols - 1) + 2) + "\n")
        out.extend(render(row) for row in rows)
        return "".join(out)

    def _ascii_text(self, rows: list, ncols: int, quiet: bool) -> str | None:
        """:meth:`text` when every cell is ASCII and every row full (``list --all`` of 10,000
        domains): column widths are lengths, and each line is one ``str.format``. None otherwise."""
        sources = rows if quiet else [[str(h) for h in self.headers]] + rows
        if not sources or ncols < 2 or any(len(row) != ncols for row in sources):
            return None
        columns = list(zip(*sources))
        if not all("".join(col).isascii() for col in columns):
            return None
        widths = [max(map(len, col)) for col in columns]
        line = " " + "   ".join(f"{{:<{w}}}" for w in widths[:-1]) + "   {}\n"
        out = [] if quiet else [line.format(*sources[0]), "-" * (1 + sum(widths) + 3 * (ncols - 1) + 2) + "\n"]
        out += [line.format(*row) for row in rows]
        return "".join(out)

    def data(self):
        if self.json_data is not None:
            return self.json_data
        keys = self.json_keys or [h.strip().lower().replace(" ", "_") for h in self.headers]
        return [dict(zip(keys, row)) for row in self.rows]


class KeyValue(Output):
    """virsh's ``%-15s %s`` key/value block (``dominfo``); ``width`` varies (nodeinfo: 20)."""

    def __init__(self, pairs: list, width: int = 15, json_data=None):
        self.pairs = pairs
        self.width = width
        self.json_data = json_data

    def text(self, quiet: bool) -> str:
        # an empty key continues the value above it (virsh's dominfo Messages)
        return "".join(f"{key + ':' if key else '':<{self.width}} {value}\n" for key, value in self.pairs)

    def data(self):
        if self.json_data is not None:
            return self.json_data
        return {key: value for key, value in self.pairs}


class Many(Output):
    """Several outputs from one command, printed one after the other."""

    def __init__(self, parts: list | None = None, json_data=None):
        self.parts = parts or []
        self.json_data = json_data

    def text(self, quiet: bool) -> str:
        return "".join(part.text(quiet) for part in self.parts)

    def data(self):
        if self.json_data is not None:
            return self.json_data
        return [part.data() for part in self.parts]


class FrontEnd(Output):
    """The process goes on as another front end (``vsh web``): the shell hands the connection
    to the module ``vsh.<name>`` and returns its exit status instead of printing."""

    def __init__(self, name: str, options: dict):
        self.name = name
        self.options = options

    def text(self, quiet: bool) -> str:
        return ""

    def data(self):
        return {"front_end": self.name, **self.options}


def to_json(output: Output | None) -> str:
    import json as _json

    data = None if output is None else output.data()
    if data is None:
        data = {"result": "ok"}
    return _json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n"


def human_size(nbytes: float, decimals: int = 2) -> str:
    """virsh's ``1.00 GiB`` / ``0.00 B`` formatting."""
    units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
    value = float(nbytes)
    unit = 0
    while value >= 1024 and unit < len(units) - 1:
        value /= 1024
        unit += 1
    return f"{value:.{decimals}f} {units[unit]}"
