"""The ``gaitforce`` command line: parse, call the library, print. The library never imports this package."""

from gaitforce.cli.main import main

__all__ = ["main"]
