"""XFS files whose data lies in every allocation group read back byte for byte.

The image is made here by mkfs.xfs from a protofile (nothing is mounted): several directories
(XFS spreads them over the groups, and a file's data follows its inode's group) and one large
file.  The group size is not a power of two, so an
XFS block number (group << agblklog | block) differs from the linear block on the device.
"""

from __future__ import annotations

import hashlib
import random
import re
import shutil
import subprocess

import pytest

pytestmark = pytest.mark.skipif(shutil.which("mkfs.xfs") is None or shutil.which("xfs_db") is None,
                                reason="xfsprogs (mkfs.xfs, xfs_db) is not installed")

DIRS = "abcdef"


@pytest.fixture(scope="module")
def xfs_image(tmp_path_factory):
    pytest.importorskip("pyfsxfs")
    root = tmp_path_factory.mktemp("xfs-groups")
    src = root / "src"
    digests = {}
    proto = ["/dev/null", "0 0", "d--755 0 0"]
    for i, d in enumerate(DIRS):
        (src / d).mkdir(parents=True)
        data = hashlib.sha256(d.encode()).digest() * (40000 + 977 * i)
        (src / d / "file").write_bytes(data)
        digests[f"/{d}/file"] = hashlib.sha256(data).hexdigest()
        proto += [f"{d} d--755 0 0", f"file ---644 0 0 {src / d / 'file'}", "$"]
    big = random.Random(7).randbytes(40 << 20)             # half a group (mkfs -p cannot span groups)
    (src / "big").write_bytes(big)
    digests["/big"] = hashlib.sha256(big).hexdigest()
    proto += [f"big ---644 0 0 {src / 'big'}", "$"]
    (root / "proto").write_text("\n".join(proto) + "\n")
    img = root / "xfs.img"
    with open(img, "wb") as f:
        f.truncate(320 << 20)                   # 4 groups of 20480 blocks: agblklog 15, not a power of two
    subprocess.run(["mkfs.xfs", "-q", "-d", "agcount=4", "-p", str(root / "proto"), str(img)], check=True,
                   timeout=120)
    check = subprocess.run(["xfs_repair", "-n", str(img)], capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stderr
    return img, digests


def _groups(img, path: str) -> set[int]:
    out = subprocess.run(["xfs_db", "-r", "-c", f"path {path}", "-c", "bmap", str(img)], check=True,
                         capture_output=True, text=True, timeout=60).stdout
    return {int(g) for g in re.findall(r"\((\d+)/\d+\)", out)}


def test_layout_reaches_every_group(xfs_image):
    img, digests = xfs_image
    groups = set()
    for path in digests:
        groups |= _groups(img, path)
    assert groups == {0, 1, 2, 3}


@pytest.mark.parametrize("path", [f"/{d}/file" for d in DIRS] + ["/big"])
def test_checksum_in_every_group(vsh, xfs_image, path):
    img, digests = xfs_image
    r = vsh("-a", img, "--format", "raw", "-m", "/dev/sda", "checksum", "sha256", path)
    assert r.status == 0, r.err
    assert r.out.strip() == digests[path]


def test_download_across_groups(vsh, xfs_image, tmp_path):
    img, digests = xfs_image
    dest = tmp_path / "big.out"
    r = vsh("-a", img, "--format", "raw", "-m", "/dev/sda", "download", "/big", dest)
    assert r.status == 0, r.err
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == digests["/big"]
