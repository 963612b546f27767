from vsh.cli import run

run()
