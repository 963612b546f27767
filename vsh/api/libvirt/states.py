"""virsh's words for libvirt's domain states and their reasons, and the spelling of UUIDs."""

from __future__ import annotations

# virsh's words for virDomainState and, per state, its reasons (virsh-domain-monitor.c)
STATES = ("no state", "running", "idle", "paused", "in shutdown", "shut off", "crashed", "pmsuspended")
REASONS = (
    ("unknown",),
    ("unknown", "booted", "migrated", "restored", "from snapshot", "unpaused", "migration canceled",
     "save canceled", "event wakeup", "crashed", "post-copy", "post-copy failed"),
    ("unknown",),
    ("unknown", "user", "migrating", "saving", "dumping", "I/O error", "watchdog", "from snapshot",
     "shutting down", "creating snapshot", "crashed", "starting up", "post-copy", "post-copy failed",
     "api error"),
    ("unknown", "user"),
    ("unknown", "shutdown", "destroyed", "crashed", "migrated", "saved", "failed", "from snapshot", "daemon"),
    ("unknown", "panicked"),
    ("unknown",),
)

def state_words(state: int, reason: int) -> tuple[str, str]:
    """virsh's words for a ``(state, reason)`` pair of virDomainGetState."""
    reasons = REASONS[state] if 0 <= state < len(REASONS) else ()
    return (STATES[state] if 0 <= state < len(STATES) else "no state",
            reasons[reason] if 0 <= reason < len(reasons) else "unknown")


def is_uuid(text: str) -> bool:
    """Spelled as libvirt's UUIDs are (36 characters with dashes, or 32 hex digits)."""
    bare = text.replace("-", "")
    return len(bare) == 32 and all(c in "0123456789abcdefABCDEF" for c in bare)
