"""The command line: ``offerstream`` and its command groups, one module each (see :mod:`stream.cli.main`)."""

from stream.cli.main import main

__all__ = ["main"]
