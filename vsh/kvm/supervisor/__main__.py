"""``python -m vsh.kvm.supervisor --rundir DIR ...`` (the same arguments as vsh.kvm.launch passes)."""

import sys

from vsh.kvm.supervisor.entry import main

sys.exit(main())
