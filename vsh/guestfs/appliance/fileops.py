"""The appliance agent's file operations, each run with the root directory changed to the
guest's tree (so every path resolves inside the guest). Standard library only: the builder
puts this file beside ``/agent.py`` in the appliance, which imports it as ``fileops``.

Each operation takes the request (``{"call": NAME, ...arguments}``) and its payload and
returns ``(result, payload)``; :data:`FS_OPS` maps the names to them.
"""

import os


def untar(src, directory):
    """Unpack the tar file ``src`` (any compression) into ``directory``, numeric owners."""
    import tarfile

    if not os.path.isdir(directory):
        raise OSError(20, "Not a directory", directory)
    with tarfile.open(fileobj=src, mode="r:*") as t:
        t.extractall(directory, numeric_owner=True)
    return None, b""


def fs_write(req, data):
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if req.get("append") else os.O_TRUNC)
    if req.get("offset"):
        flags = os.O_WRONLY
    fd = os.open(req["path"], flags | os.O_NOFOLLOW if req.get("nofollow") else flags, 0o644)
    try:
        if req.get("offset"):
            os.lseek(fd, req["offset"], 0)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)
    return None, b""


def fs_read(req, data):
    with open(req["path"], "rb") as f:
        f.seek(req.get("offset", 0))
        return None, f.read(req.get("size", 1 << 20))


def fs_mkdir(req, data):
    if req.get("parents"):
        os.makedirs(req["path"], mode=req.get("mode", 0o755), exist_ok=True)
    else:
        os.mkdir(req["path"], req.get("mode", 0o755))
    return None, b""


def fs_rm(req, data):
    path = req["path"]
    if req.get("recursive"):
        import shutil

        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        elif os.path.lexists(path):
            os.unlink(path)
    elif req.get("directory"):
        os.rmdir(path)
    else:
        if os.path.isdir(path) and not os.path.islink(path):
            raise OSError(21, "Is a directory")
        os.unlink(path)
    return None, b""


def fs_mv(req, data):
    import shutil

    shutil.move(req["src"], req["dest"])
    return None, b""


def fs_cp(req, data):
    import shutil

    src, dest = req["src"], req["dest"]
    if req.get("archive"):
        if os.path.isdir(dest):
            dest = os.path.join(dest, os.path.basename(src.rstrip("/")))
        if os.path.isdir(src) and not os.path.islink(src):
            shutil.copytree(src, dest, symlinks=True)
            _copy_owner_tree(src, dest)
        else:
            shutil.copy2(src, dest, follow_symlinks=False)
            _copy_owner(src, dest)
    else:
        shutil.copyfile(src, dest)
    return None, b""


def _copy_owner(src, dest):
    st = os.lstat(src)
    os.chown(dest, st.st_uid, st.st_gid, follow_symlinks=False)


def _copy_owner_tree(src, dest):
    _copy_owner(src, dest)
    for top, dirs, files in os.walk(src):
        for name in dirs + files:
            rel = os.path.relpath(os.path.join(top, name), src)
            _copy_owner(os.path.join(src, rel), os.path.join(dest, rel))


def fs_chmod(req, data):
    os.chmod(req["path"], req["mode"])
    return None, b""


def fs_chown(req, data):
    os.chown(req["path"], req["uid"], req["gid"], follow_symlinks=not req.get("nofollow"))
    return None, b""


def fs_symlink(req, data):
    link = req["linkname"]
    if req.get("force") and (os.path.islink(link) or os.path.lexists(link) and not os.path.isdir(link)):
        os.unlink(req["linkname"])
    os.symlink(req["target"], req["linkname"])
    return None, b""


def fs_touch(req, data):
    path = req["path"]
    if os.path.exists(path) and not os.path.isfile(path):
        raise OSError(22, "Not a regular file")
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOCTTY | os.O_NONBLOCK, 0o666))
    os.utime(path)
    return None, b""


def fs_truncate(req, data):
    os.truncate(req["path"], req.get("size", 0))
    return None, b""


def fs_stat(req, data):
    st = os.stat(req["path"], follow_symlinks=req.get("follow", True))
    out = {k: getattr(st, k) for k in ("st_dev", "st_ino", "st_mode", "st_nlink", "st_uid", "st_gid", "st_rdev",
                                       "st_size", "st_blksize", "st_blocks")}
    for t in ("atime", "mtime", "ctime"):
        ns = getattr(st, f"st_{t}_ns")
        out[f"st_{t}_sec"], out[f"st_{t}_nsec"] = divmod(ns, 1000000000)
    return out, b""


def fs_ls(req, data):
    return sorted(os.listdir(req["path"])), b""


def fs_readlink(req, data):
    return os.readlink(req["path"]), b""


def fs_realpath(req, data):
    return os.path.realpath(req["path"]), b""


def fs_statvfs(req, data):
    s = os.statvfs(req["path"])
    return {"bsize": s.f_frsize, "blocks": s.f_blocks, "bfree": s.f_bfree, "bavail": s.f_bavail}, b""


FS_OPS = {name[3:]: fn for name, fn in dict(globals()).items() if name.startswith("fs_")}
