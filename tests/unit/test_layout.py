"""The test tree itself: pytest (rootdir import mode) needs unique test module basenames."""

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent


def test_test_module_basenames_are_unique():
    names = Counter(p.name for p in TESTS.rglob("test_*.py"))
    dupes = sorted(name for name, count in names.items() if count > 1)
    assert not dupes, f"rename these test modules so every basename is unique: {dupes}"
