"""Errors that vsh reports to the user.

Every error a user can cause is a VshError: its ``lines`` are printed to stderr,
each prefixed with ``error: ``, and the command exits with ``status``.
"""

from __future__ import annotations


class VshError(Exception):
    """A failure with a message meant for the user."""

    status = 1

    def __init__(self, *lines: str, hint: str | None = None):
        lines = tuple(str(line) for line in lines if line is not None and str(line) != "")
        super().__init__("\n".join(lines) if lines else self.__class__.__name__)
        self.lines = lines or (self.__class__.__name__,)
        self.hint = hint

    #: raised where the handle of a pipelined call (the remote driver's lookups) was first used, not
    #: by the operation running there: it takes no context of that operation
    deferred = False

    #: nothing goes to stderr: the command's output already said what failed (:class:`Failed`)
    silent = False

    def with_context(self, context: str) -> "VshError":
        """Return the same error with a first line of context (virsh's two-line errors)."""
        if self.deferred:
            return self
        err = self.__class__(context, *self.lines, hint=self.hint)
        return err


class ParseError(VshError):
    """The command line could not be parsed; nothing ran."""


class NotFound(VshError):
    """A named object (domain, snapshot, pool, volume, file) does not exist."""


class InvalidArgument(VshError):
    """An argument has a bad value."""


class XMLError(VshError):
    """XML that is malformed, unsafe or not a valid domain description."""


class OperationInvalid(VshError):
    """The object is in a state that does not allow the operation."""


class Unsupported(VshError):
    """The host or this build cannot do what was asked."""


class Timeout(VshError):
    """A wait ran out of time."""


class Failed(VshError):
    """The command failed and its output already says how (virsh's ``event`` that received
    nothing: status 1, no ``error:`` line)."""

    silent = True
