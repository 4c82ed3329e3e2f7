"""``simulator view``: one self-contained HTML page to read a run (series, sessions, repairs,
endings and scores), written from the run reader, with no server and no network."""

from simulator.view.page import render_report, write_report

__all__ = ["render_report", "write_report"]
