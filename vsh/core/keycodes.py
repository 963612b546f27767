"""Keyboard codesets for ``send-key``: key names and numbers, and their translation.

One row per key: the Linux input event code and name (``KEY_A``), the AT set 1 scancode
(``0xe0XX`` for extended keys), the USB HID usage and the Windows virtual-key name and
code. The other codesets follow from these: ``xt`` is set 1 without the extended keys,
``qnum`` (QEMU's number, also RFB's) is set 1 with ``0xe0XX`` folded to ``0x80 | XX``.
Names exist, as in libvirt, for the ``linux`` and ``win32`` codesets; every codeset takes
numbers.
"""

from __future__ import annotations

#: the codesets virsh knows (``virKeycodeSet``), in its order
CODESETS = ("linux", "xt", "atset1", "atset2", "atset3", "os_x", "xt_kbd", "usb", "win32", "rfb", "qnum")
#: those vsh can translate
SUPPORTED = ("linux", "xt", "atset1", "usb", "win32", "rfb", "qnum")

# linux code, linux name, AT set 1, USB HID usage, win32 name, win32 code
_KEYS = """
1 KEY_ESC 0x01 41 VK_ESCAPE 0x1b
2 KEY_1 0x02 30 VK_1 0x31
3 KEY_2 0x03 31 VK_2 0x32
4 KEY_3 0x04 32 VK_3 0x33
5 KEY_4 0x05 33 VK_4 0x34
6 KEY_5 0x06 34 VK_5 0x35
7 KEY_6 0x07 35 VK_6 0x36
8 KEY_7 0x08 36 VK_7 0x37
9 KEY_8 0x09 37 VK_8 0x38
10 KEY_9 0x0a 38 VK_9 0x39
11 KEY_0 0x0b 39 VK_0 0x30
12 KEY_MINUS 0x0c 45 VK_OEM_MINUS 0xbd
13 KEY_EQUAL 0x0d 46 VK_OEM_PLUS 0xbb
14 KEY_BACKSPACE 0x0e 42 VK_BACK 0x08
15 KEY_TAB 0x0f 43 VK_TAB 0x09
16 KEY_Q 0x10 20 VK_Q 0x51
17 KEY_W 0x11 26 VK_W 0x57
18 KEY_E 0x12 8 VK_E 0x45
19 KEY_R 0x13 21 VK_R 0x52
20 KEY_T 0x14 23 VK_T 0x54
21 KEY_Y 0x15 28 VK_Y 0x59
22 KEY_U 0x16 24 VK_U 0x55
23 KEY_I 0x17 12 VK_I 0x49
24 KEY_O 0x18 18 VK_O 0x4f
25 KEY_P 0x19 19 VK_P 0x50
26 KEY_LEFTBRACE 0x1a 47 VK_OEM_4 0xdb
27 KEY_RIGHTBRACE 0x1b 48 VK_OEM_6 0xdd
28 KEY_ENTER 0x1c 40 VK_RETURN 0x0d
29 KEY_LEFTCTRL 0x1d 224 VK_LCONTROL 0xa2
30 KEY_A 0x1e 4 VK_A 0x41
31 KEY_S 0x1f 22 VK_S 0x53
32 KEY_D 0x20 7 VK_D 0x44
33 KEY_F 0x21 9 VK_F 0x46
34 KEY_G 0x22 10 VK_G 0x47
35 KEY_H 0x23 11 VK_H 0x48
36 KEY_J 0x24 13 VK_J 0x4a
37 KEY_K 0x25 14 VK_K 0x4b
38 KEY_L 0x26 15 VK_L 0x4c
39 KEY_SEMICOLON 0x27 51 VK_OEM_1 0xba
40 KEY_APOSTROPHE 0x28 52 VK_OEM_7 0xde
41 KEY_GRAVE 0x29 53 VK_OEM_3 0xc0
42 KEY_LEFTSHIFT 0x2a 225 VK_LSHIFT 0xa0
43 KEY_BACKSLASH 0x2b 49 VK_OEM_5 0xdc
44 KEY_Z 0x2c 29 VK_Z 0x5a
45 KEY_X 0x2d 27 VK_X 0x58
46 KEY_C 0x2e 6 VK_C 0x43
47 KEY_V 0x2f 25 VK_V 0x56
48 KEY_B 0x30 5 VK_B 0x42
49 KEY_N 0x31 17 VK_N 0x4e
50 KEY_M 0x32 16 VK_M 0x4d
51 KEY_COMMA 0x33 54 VK_OEM_COMMA 0xbc
52 KEY_DOT 0x34 55 VK_OEM_PERIOD 0xbe
53 KEY_SLASH 0x35 56 VK_OEM_2 0xbf
54 KEY_RIGHTSHIFT 0x36 229 VK_RSHIFT 0xa1
55 KEY_KPASTERISK 0x37 85 VK_MULTIPLY 0x6a
56 KEY_LEFTALT 0x38 226 VK_LMENU 0xa4
57 KEY_SPACE 0x39 44 VK_SPACE 0x20
58 KEY_CAPSLOCK 0x3a 57 VK_CAPITAL 0x14
59 KEY_F1 0x3b 58 VK_F1 0x70
60 KEY_F2 0x3c 59 VK_F2 0x71
61 KEY_F3 0x3d 60 VK_F3 0x72
62 KEY_F4 0x3e 61 VK_F4 0x73
63 KEY_F5 0x3f 62 VK_F5 0x74
64 KEY_F6 0x40 63 VK_F6 0x75
65 KEY_F7 0x41 64 VK_F7 0x76
66 KEY_F8 0x42 65 VK_F8 0x77
67 KEY_F9 0x43 66 VK_F9 0x78
68 KEY_F10 0x44 67 VK_F10 0x79
69 KEY_NUMLOCK 0x45 83 VK_NUMLOCK 0x90
70 KEY_SCROLLLOCK 0x46 71 VK_SCROLL 0x91
71 KEY_KP7 0x47 95 VK_NUMPAD7 0x67
72 KEY_KP8 0x48 96 VK_NUMPAD8 0x68
73 KEY_KP9 0x49 97 VK_NUMPAD9 0x69
74 KEY_KPMINUS 0x4a 86 VK_SUBTRACT 0x6d
75 KEY_KP4 0x4b 92 VK_NUMPAD4 0x64
76 KEY_KP5 0x4c 93 VK_NUMPAD5 0x65
77 KEY_KP6 0x4d 94 VK_NUMPAD6 0x66
78 KEY_KPPLUS 0x4e 87 VK_ADD 0x6b
79 KEY_KP1 0x4f 89 VK_NUMPAD1 0x61
80 KEY_KP2 0x50 90 VK_NUMPAD2 0x62
81 KEY_KP3 0x51 91 VK_NUMPAD3 0x63
82 KEY_KP0 0x52 98 VK_NUMPAD0 0x60
83 KEY_KPDOT 0x53 99 VK_DECIMAL 0x6e
86 KEY_102ND 0x56 100 VK_OEM_102 0xe2
87 KEY_F11 0x57 68 VK_F11 0x7a
88 KEY_F12 0x58 69 VK_F12 0x7b
96 KEY_KPENTER 0xe01c 88 - -
97 KEY_RIGHTCTRL 0xe01d 228 VK_RCONTROL 0xa3
98 KEY_KPSLASH 0xe035 84 VK_DIVIDE 0x6f
99 KEY_SYSRQ 0x54 70 VK_SNAPSHOT 0x2c
100 KEY_RIGHTALT 0xe038 230 VK_RMENU 0xa5
102 KEY_HOME 0xe047 74 VK_HOME 0x24
103 KEY_UP 0xe048 82 VK_UP 0x26
104 KEY_PAGEUP 0xe049 75 VK_PRIOR 0x21
105 KEY_LEFT 0xe04b 80 VK_LEFT 0x25
106 KEY_RIGHT 0xe04d 79 VK_RIGHT 0x27
107 KEY_END 0xe04f 77 VK_END 0x23
108 KEY_DOWN 0xe050 81 VK_DOWN 0x28
109 KEY_PAGEDOWN 0xe051 78 VK_NEXT 0x22
110 KEY_INSERT 0xe052 73 VK_INSERT 0x2d
111 KEY_DELETE 0xe053 76 VK_DELETE 0x2e
113 KEY_MUTE 0xe020 127 VK_VOLUME_MUTE 0xad
114 KEY_VOLUMEDOWN 0xe02e 129 VK_VOLUME_DOWN 0xae
115 KEY_VOLUMEUP 0xe030 128 VK_VOLUME_UP 0xaf
116 KEY_POWER 0xe05e 102 - -
117 KEY_KPEQUAL 0x59 103 - -
119 KEY_PAUSE 0xe046 72 VK_PAUSE 0x13
125 KEY_LEFTMETA 0xe05b 227 VK_LWIN 0x5b
126 KEY_RIGHTMETA 0xe05c 231 VK_RWIN 0x5c
127 KEY_COMPOSE 0xe05d 101 VK_APPS 0x5d
142 KEY_SLEEP 0xe05f - VK_SLEEP 0x5f
143 KEY_WAKEUP 0xe063 - - -
"""


def _rows() -> list[tuple]:
    rows = []
    for line in _KEYS.strip().splitlines():
        code, name, at1, usb, wname, wcode = line.split()
        rows.append((int(code), name, int(at1, 16), None if usb == "-" else int(usb),
                     None if wname == "-" else wname, None if wcode == "-" else int(wcode, 16)))
    return rows


ROWS = _rows()


def _qnum(at1: int) -> int:
    return 0x80 | (at1 & 0x7f) if at1 > 0xff else at1


def _code(codeset: str, row: tuple) -> int | None:
    linux, _name, at1, usb, _wname, wcode = row
    if codeset == "linux":
        return linux
    if codeset == "atset1":
        return at1
    if codeset == "xt":
        return at1 if at1 <= 0xff else None
    if codeset in ("qnum", "rfb"):
        return _qnum(at1)
    if codeset == "usb":
        return usb
    if codeset == "win32":
        return wcode
    return None


def by_name(codeset: str, name: str) -> int | None:
    """The code of key ``name`` in ``codeset`` (names exist in ``linux`` and ``win32``)."""
    column = {"linux": 1, "win32": 4}.get(codeset)
    if column is None:
        return None
    for row in ROWS:
        if row[column] == name:
            return _code(codeset, row)
    return None


def to_qnum(codeset: str, code: int) -> int | None:
    """The QEMU key number of key ``code`` of ``codeset``; None when no key has that code."""
    for row in ROWS:
        if _code(codeset, row) == code:
            return _qnum(row[2])
    return None
