"""UEFI firmware autoselection (``<os firmware='efi'>``) from QEMU's firmware descriptors, as
libvirt's qemu driver does it (qemu_firmware.c, QEMU's docs/interop/firmware.json).

Descriptors are JSON files in ``/usr/share/qemu/firmware``, ``/etc/qemu/firmware`` and
``$XDG_CONFIG_HOME/qemu/firmware``; a file of the same name in a later directory replaces
the earlier one, and an empty file hides it.  They are tried in the order of their file
names; the first that fits the domain wins: UEFI, a flash device with raw images, the
guest's architecture and (canonical) machine type, the features ``<os><firmware><feature>``
asks for or forbids, no Secure Boot where ``<loader secure='no'>``, and no SMM where
``<features><smm state='off'/>``.

``fill(root, machine, nvram_path)`` writes the choice into the (live) domain XML as libvirt
shows it: ``<loader readonly='yes' type='pflash' [secure='yes']>CODE</loader>``,
``<nvram template='VARS'>PATH</nvram>``, ``<features><smm state='on'/>`` for firmware that
requires SMM; and copies the template to the domain's nvram file when that file does not
exist yet (never over an existing one).
"""

from __future__ import annotations

import fnmatch
import json
import os

from vsh.core.errors import InvalidArgument, Unsupported, VshError

#: Where QEMU's firmware descriptors live, lowest priority first.
SYSTEM_DIRS = ("/usr/share/qemu/firmware", "/etc/qemu/firmware")

#: The <os><firmware><feature name> values libvirt matches against a descriptor's features.
FEATURES = ("enrolled-keys", "secure-boot")


def search_dirs() -> list[str]:
    xdg = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return [*SYSTEM_DIRS, os.path.join(xdg, "qemu", "firmware")]


def descriptors(dirs: list[str] | None = None) -> list[tuple[str, dict]]:
    """(path, parsed descriptor) of every usable descriptor, in QEMU's order of preference."""
    by_name: dict[str, str] = {}
    for d in dirs if dirs is not None else search_dirs():
        try:
            names = os.listdir(d)
        except OSError:
            continue
        for name in names:
            if name.endswith(".json"):
                by_name[name] = os.path.join(d, name)
    out = []
    for name in sorted(by_name):
        path = by_name[name]
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
            if not text.strip():
                continue            # an empty file masks a descriptor of the same name
            out.append((path, json.loads(text)))
        except (OSError, ValueError):
            continue                # libvirt skips what it cannot parse, so do we
    return out


def wanted_features(root) -> dict[str, bool]:
    """The features ``<os><firmware><feature enabled name>`` asks for (True) or forbids (False)."""
    out: dict[str, bool] = {}
    for f in root.findall("os/firmware/feature"):
        name, enabled = f.get("name"), f.get("enabled")
        if name not in FEATURES:
            raise InvalidArgument("<os><firmware><feature name='%s'>: unknown feature (%s)"
                                  % (name, ", ".join(FEATURES)))
        if enabled not in ("yes", "no"):
            raise InvalidArgument("<os><firmware><feature name='%s'>: enabled must be yes or no" % name)
        out[name] = enabled == "yes"
    return out


def _fits(desc: dict, root, arch: str, machine: str) -> str | None:
    """None when the descriptor fits the domain, else why not."""
    if "uefi" not in (desc.get("interface-types") or []):
        return "not UEFI"
    mapping = desc.get("mapping") or {}
    if mapping.get("device") != "flash":
        return "not flash"
    for part in ("executable", "nvram-template"):
        if (mapping.get(part) or {}).get("format", "raw") != "raw":
            return "not raw"
    if not any(t.get("architecture") == arch and any(fnmatch.fnmatchcase(machine, m) for m in t.get("machines") or [])
               for t in desc.get("targets") or []):
        return "another machine"
    features = set(desc.get("features") or [])
    for name, enabled in wanted_features(root).items():
        if enabled != (name in features):
            return "feature " + name
    loader = root.find("os/loader")
    if loader is not None and loader.get("secure") == "no" and "secure-boot" in features:
        return "Secure Boot"
    if loader is not None and loader.get("secure") == "yes" and "secure-boot" not in features:
        return "no Secure Boot"
    smm = root.find("features/smm")
    if smm is not None and smm.get("state") == "off" and "requires-smm" in features:
        return "needs SMM"
    return None


def select(root, machine: str, arch: str = "x86_64", dirs: list[str] | None = None) -> dict:
    """The first descriptor that fits the domain (machine: the canonical machine type name)."""
    found = descriptors(dirs)
    for _path, desc in found:
        if _fits(desc, root, arch, machine) is None:
            mapping = desc["mapping"]
            if not os.path.exists(mapping["executable"]["filename"]):
                continue
            return desc
    if not found:
        raise Unsupported("firmware='efi': no firmware descriptors found in %s (install ovmf)"
                          % ", ".join(search_dirs()))
    raise Unsupported("firmware='efi': none of the %d firmware descriptors fits machine '%s' with the "
                      "features asked for" % (len(found), machine))


def fill(root, machine: str, nvram_path: str, create: bool = True, dirs: list[str] | None = None,
         reset: bool = False) -> None:
    """Resolve ``<os firmware='efi'>`` into a loader and an nvram (see the module docstring);
    a domain without firmware='efi' is left alone, except that an ``<nvram template>`` whose file
    does not exist yet (or any, with ``reset``: virsh start --reset-nvram) is created from the
    template."""
    from vsh.core.lxmlload import etree

    os_ = root.find("os")
    if os_ is None:
        return
    firmware = os_.get("firmware")
    if firmware not in (None, "efi"):
        raise Unsupported("<os firmware='%s'> is not supported on x86_64 (efi, or a <loader>)" % firmware)
    loader = os_.find("loader")
    if firmware == "efi" and (loader is None or not (loader.text or "").strip()):
        desc = select(root, machine, (os_.find("type").get("arch") if os_.find("type") is not None
                                      else None) or "x86_64", dirs)
        mapping = desc["mapping"]
        features = set(desc.get("features") or [])
        if loader is None:
            loader = etree.SubElement(os_, "loader")
            _after_type(os_, loader)
        loader.text = mapping["executable"]["filename"]
        loader.set("readonly", "yes")
        loader.set("type", "pflash")
        if "secure-boot" in features:
            loader.set("secure", "yes")
        nvram = os_.find("nvram")
        if nvram is None:
            nvram = etree.Element("nvram")
            loader.addnext(nvram)
        if not nvram.get("template") and mapping.get("nvram-template"):
            nvram.set("template", mapping["nvram-template"]["filename"])
        if "requires-smm" in features:
            feats = root.find("features")
            if feats is None:
                feats = etree.Element("features")
                os_.addnext(feats)
            if feats.find("smm") is None:
                etree.SubElement(feats, "smm", state="on")
        fw = os_.find("firmware")
        if fw is None:
            fw = etree.Element("firmware")
            os_.find("type").addnext(fw)
        for name in FEATURES:
            if fw.find("feature[@name='%s']" % name) is None:
                etree.SubElement(fw, "feature", enabled="yes" if name in features else "no", name=name)
    nvram = os_.find("nvram")
    if nvram is None:
        return
    if not (nvram.text or "").strip() and nvram.get("template"):
        nvram.text = nvram_path
    path = (nvram.text or "").strip()
    template = nvram.get("template")
    if create and path and template and (reset or not os.path.exists(path)):
        copy_template(template, path)


def _after_type(os_, el) -> None:
    """Move ``el`` right after <os><type> (and <firmware>), where libvirt writes the loader."""
    anchor = os_.find("firmware")
    if anchor is None:
        anchor = os_.find("type")
    if anchor is not None:
        anchor.addnext(el)


def copy_template(template: str, path: str) -> None:
    """The domain's variable store: a private copy of the template (written whole, then renamed)."""
    from vsh.core.store import atomic_write, ensure_private_dir

    try:
        with open(template, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise VshError("internal error: cannot read the nvram template '%s': %s" % (template, exc.strerror)) \
            from None
    ensure_private_dir(os.path.dirname(path))
    atomic_write(path, data)
