"""The ``simulator`` command and ``python -m simulator``: signal handling first, then the CLI.

The handlers go in before the CLI's imports, so a Ctrl-C or SIGTERM at any moment of
start-up exits 130 with one line instead of a traceback (see :mod:`simulator.interrupts`).
"""

from simulator import interrupts


def main() -> None:
    interrupts.install()
    from simulator.cli import main as cli

    cli()


if __name__ == "__main__":
    main()
