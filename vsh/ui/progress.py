"""virsh's job progress line on stderr: ``\\rBlock Pull: [ 42 %]`` (``--verbose``)."""

from __future__ import annotations


def percent(remaining: int, total: int) -> int:
    """virsh's rounding: 100 only when nothing remains, otherwise at most 99."""
    if remaining <= 0 or total <= 0:
        return 100
    return min(int(100.0 - remaining * 100.0 / total), 99)


class JobProgress:
    """Writes ``\\rLABEL: [NNN %]`` to ``ctx.err`` (or stderr), as virsh's virshPrintJobProgress."""

    def __init__(self, ctx, label: str):
        import sys

        self.err = getattr(ctx, "err", None) or sys.stderr
        self.label = label

    def show(self, pct: int) -> None:
        self.err.write(f"\r{self.label}: [{pct:3d} %]")
        self.err.flush()

    def __call__(self, cur: int, end: int) -> None:
        self.show(percent(end - cur, end))
