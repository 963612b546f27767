"""The appliance: a small VM that makes every change to a guest disk (nothing is mounted on the host).

``build`` makes it from this host's Debian packages and caches it; ``vm`` starts it and
talks to its agent (``agent``, which runs inside it). See docs/appliance.md.
"""
