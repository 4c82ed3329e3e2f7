"""The ``simulator`` command and ``python -m simulator``: signal handling first, then the CLI.

The handlers go in before the CLI's imports, so a Ctrl-C or SIGTERM at any moment of
start-up exits 130 with one line instead of a traceback (see :mod:`simulator.interrupts`).
"""

from simulator import interrupts


def main() -> None:
    interrupts.install()
    try:
        from simulator.cli import main as cli

        cli()
    except KeyboardInterrupt:
        # The CLI turns a signal into exit 130; one that still gets here (raised where no
        # command code runs) would end the process killed by SIGINT (-2): exit 130 instead.
        interrupts.exit_interrupted()


if __name__ == "__main__":
    main()
