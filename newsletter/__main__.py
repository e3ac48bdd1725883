"""`python -m newsletter` runs the command-line interface."""

from newsletter.cli.app import main

main()
