"""`python -m keyturn` is the `keyturn` command."""

from keyturn.cli import main

main()
