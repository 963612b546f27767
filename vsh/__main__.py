import sys

from vsh.cli import main

sys.exit(main())
