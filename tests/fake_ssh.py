"""A stand-in for the ssh client in tests that need no sshd: it takes ssh's command line, notes it
(in $FAKE_SSH_LOG, one JSON list a line) and runs the remote command here with /bin/sh, as the
remote shell would. Exit status and stdio are the command's, as with ssh. ``-L LOCAL:REMOTE`` (a
unix-socket forward) listens on LOCAL and relays each connection to REMOTE until the command ends
(or it is killed)."""

import json
import os
import socket
import subprocess
import sys
import threading


def relay(local: str, remote: str) -> None:
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(local)
    listener.listen(4)

    def pump(a, b):
        while data := a.recv(65536):
            b.sendall(data)
        b.shutdown(socket.SHUT_WR)

    while True:
        conn = listener.accept()[0]
        peer = socket.socket(socket.AF_UNIX)
        try:
            peer.connect(remote)
        except OSError:
            conn.close()
            continue
        for a, b in ((conn, peer), (peer, conn)):
            threading.Thread(target=pump, args=(a, b), daemon=True).start()


argv = sys.argv[1:]
if os.environ.get("FAKE_SSH_LOG"):
    with open(os.environ["FAKE_SSH_LOG"], "a", encoding="utf-8") as log:
        log.write(json.dumps(argv) + "\n")
host, command = (argv[argv.index("--") + 1:] + [""])[:2]
if host == "unreachable.invalid":
    sys.stderr.write(f"ssh: Could not resolve hostname {host}: Name or service not known\n")
    sys.exit(255)
if "-L" in argv:
    threading.Thread(target=relay, args=argv[argv.index("-L") + 1].split(":", 1), daemon=True).start()
    sys.exit(subprocess.run(["/bin/sh", "-c", command]).returncode)
os.execv("/bin/sh", ["sh", "-c", command])
