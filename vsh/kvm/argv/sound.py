"""Sound cards (<sound>) and the audio backends they play into (<audio>).

QEMU 7.2 wants every sound device tied to an ``-audiodev``; a card plays into the
``<audio>`` its ``<audio id>`` names, else the first one, else a silent ``none``
backend vsh adds (as libvirt does when it writes ``<audio type='none'>``).  Only the
``none`` backend is accepted: the others would reach the host's sound server from
the confined QEMU."""

from __future__ import annotations

from vsh.core.errors import InvalidArgument, Unsupported
from vsh.kvm.argv.builder import Builder
from vsh.kvm.argv.options import given, number, opts, usb_port

#: libvirt's sound models -> QEMU's device (the HDA ones take codecs on their bus).
SOUND_MODELS = {"ich6": "intel-hda", "ich7": "intel-hda", "ich9": "ich9-intel-hda", "ac97": "AC97",
                "es1370": "ES1370", "sb16": "sb16", "usb": "usb-audio"}

#: <codec type> -> the HDA codec device.
CODECS = {"duplex": "hda-duplex", "micro": "hda-micro", "output": "hda-output"}


def audiodev(b: Builder, snd) -> str:
    """The id of the -audiodev the sound card ``snd`` plays into (added on first use)."""
    audios = b.dom.devices("audio")
    chosen = None
    if snd.audio_id:
        chosen = next((a for a in audios if a.id == snd.audio_id), None)
        if chosen is None:
            raise InvalidArgument("<sound model='%s'>: no <audio id='%s'>" % (snd.model, snd.audio_id))
    elif audios:
        chosen = audios[0]
    aid = "audio%d" % number(chosen.id if chosen is not None else None, "<audio> id", 1)
    if aid not in b.audiodevs:
        atype = given(chosen.type, "none") if chosen is not None else "none"
        spice = atype == "spice" and any(g.type == "spice" for g in b.dom.devices("graphics"))
        if atype != "none" and not spice:
            raise Unsupported("<audio type='%s'> is not supported (none, or spice with SPICE graphics): a "
                              "confined QEMU does not reach the host's sound system" % atype)
        b.audiodevs.add(aid)
        b.add("-audiodev", opts(atype, ("id", aid)))
    return aid


def sound(b: Builder, snd, n: int) -> None:
    """<sound> number ``n``: the card (and its HDA codecs), tied to an audio backend."""
    model = snd.model
    what = "<sound model='%s'>" % model
    qdev = SOUND_MODELS.get(model or "")
    if qdev is None:
        raise Unsupported("%s is not supported (%s)" % (what, ", ".join(SOUND_MODELS)))
    aid = audiodev(b, snd)
    sid = "sound%d" % n
    if model == "sb16":
        b.add("-device", opts(qdev, ("id", sid), ("audiodev", aid)))
        return
    if model == "usb":
        if 0 not in b.usb_ctrls:
            raise InvalidArgument("%s needs a <controller type='usb'> with a model other than none" % what)
        b.add("-device", opts(qdev, ("id", sid), ("audiodev", aid), ("bus", "%s.0" % b.usb_ctrls[0]),
                              usb_port(snd)))
        return
    b.need_pci(what)
    if qdev.endswith("intel-hda"):
        b.add("-device", opts(qdev, ("id", sid), *b.pci.props(snd, what)))
        for i, ctype in enumerate(snd.codecs or ["duplex"]):
            ctype = given(ctype, "duplex")
            if ctype not in CODECS:
                raise InvalidArgument("%s: unknown codec type '%s' (%s)" % (what, ctype, ", ".join(CODECS)))
            b.add("-device", opts(CODECS[ctype], ("id", "%s-codec%d" % (sid, i)), ("bus", sid + ".0"),
                                  ("cad", i), ("audiodev", aid)))
        return
    b.add("-device", opts(qdev, ("id", sid), ("audiodev", aid), *b.pci.props(snd, what)))
