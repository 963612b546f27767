"""Which QEMU: finding ``qemu-system-x86_64`` and reading what it reports (version,
machine types and CPU models over QMP, accelerators from ``-accel help``)."""

from __future__ import annotations

import os
import re


QEMU_NAME = "qemu-system-x86_64"


QEMU_DIRS = ("/usr/bin", "/usr/libexec", "/usr/local/bin")


def find_qemu(path_env: str | None = None) -> str | None:
    """Path of ``qemu-system-x86_64``: ``$PATH`` first, then the usual directories."""
    path = path_env if path_env is not None else os.environ.get("PATH", "")
    for d in path.split(os.pathsep):
        p = os.path.join(d or ".", QEMU_NAME)
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return os.path.realpath(p)
    for d in QEMU_DIRS:
        p = os.path.join(d, QEMU_NAME)
        if os.access(p, os.X_OK):
            return os.path.realpath(p)
    return None


QMP_COMMANDS = ("query-version", "query-machines", "query-cpu-definitions")


def qmp_script() -> bytes:
    """The QMP commands QEMU answers on stdin, ending with quit."""
    lines = [{"execute": "qmp_capabilities", "id": "caps"}]
    lines += [{"execute": c, "id": c} for c in QMP_COMMANDS]
    lines.append({"execute": "quit", "id": "quit"})
    import json

    return "".join(json.dumps(x) + "\n" for x in lines).encode()


def qmp_info_argv(qemu: str) -> list[str]:
    """A QEMU that runs nothing and answers QMP on stdio."""
    return [qemu, "-machine", "none", "-accel", "tcg", "-nodefaults", "-no-user-config",
            "-display", "none", "-S", "-qmp", "stdio"]


def parse_qmp_replies(text: str) -> dict[str, object]:
    """Map the ``id`` of each QMP command to its ``return`` value (errors are skipped)."""
    import json

    out: dict[str, object] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if isinstance(msg, dict) and "id" in msg and "return" in msg:
            out[str(msg["id"])] = msg["return"]
    return out


def parse_qemu_info(replies: dict[str, object]) -> dict:
    """Version, machines and CPU models from ``parse_qmp_replies`` output."""
    info: dict = {"version": "", "version_tuple": [], "package": "", "machines": [], "cpu_models": []}
    ver = replies.get("query-version")
    if isinstance(ver, dict):
        q = ver.get("qemu", {})
        tup = [int(q.get("major", 0)), int(q.get("minor", 0)), int(q.get("micro", 0))]
        info["version_tuple"] = tup
        info["version"] = "%d.%d.%d" % tuple(tup)
        info["package"] = str(ver.get("package", "")).strip()
    machines = replies.get("query-machines")
    if isinstance(machines, list):
        ms = []
        for m in machines:
            if not isinstance(m, dict) or "name" not in m or m["name"] == "none":
                continue
            ms.append({
                "name": m["name"],
                "alias": m.get("alias"),
                "is_default": bool(m.get("is-default", False)),
                "cpu_max": int(m.get("cpu-max", 1)),
                "deprecated": bool(m.get("deprecated", False)),
            })
        ms.sort(key=lambda m: machine_sort_key(m["name"]))
        info["machines"] = ms
    cpus = replies.get("query-cpu-definitions")
    if isinstance(cpus, list):
        info["cpu_models"] = sorted(
            ({"name": c["name"], "usable": not c.get("unavailable-features"),
              "deprecated": bool(c.get("deprecated", False))}
             for c in cpus if isinstance(c, dict) and "name" in c),
            key=lambda c: c["name"])
    return info


def machine_sort_key(name: str):
    """Machine names in natural order (pc-q35-7.2 before pc-q35-10.0)."""
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def parse_accel_help(text: str) -> list[str]:
    """Accelerator names from ``qemu-system-x86_64 -accel help``."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.endswith(":") or " " in line:
            continue
        out.append(line)
    return out


def parse_version_text(text: str) -> tuple[str, tuple[int, ...], str]:
    """(version, tuple, package) from ``qemu-system-x86_64 --version``."""
    m = re.search(r"version\s+(\d+)\.(\d+)(?:\.(\d+))?(?:\s*\((.*?)\))?", text)
    if not m:
        return "", (), ""
    tup = (int(m.group(1)), int(m.group(2)), int(m.group(3) or 0))
    return "%d.%d.%d" % tup, tup, (m.group(4) or "").strip()
