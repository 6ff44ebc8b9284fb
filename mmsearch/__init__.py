"""The `mmsearch` command line: the roof of the layers, nothing imports it."""

__version__ = "0.1.0"
