"""A stand-in for the ssh client in tests that need no sshd: it takes ssh's command line, notes it
(in $FAKE_SSH_LOG, one JSON list a line) and runs the remote command here with /bin/sh, as the
remote shell would. Exit status and stdio are the command's, as with ssh."""

import json
import os
import sys

argv = sys.argv[1:]
if os.environ.get("FAKE_SSH_LOG"):
    with open(os.environ["FAKE_SSH_LOG"], "a", encoding="utf-8") as log:
        log.write(json.dumps(argv) + "\n")
host, command = argv[argv.index("--") + 1:][:2]
if host == "unreachable.invalid":
    sys.stderr.write(f"ssh: Could not resolve hostname {host}: Name or service not known\n")
    sys.exit(255)
os.execv("/bin/sh", ["sh", "-c", command])
