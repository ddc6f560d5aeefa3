"""``python -m nutslite``: the same as the ``nutslite`` command (``nutslite.cli``)."""

from nutslite.cli import run

run()
