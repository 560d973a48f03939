"""Run the command line as `python -m bouncewise`."""

from bouncewise.cli.main import main

main(prog_name="bouncewise")
