"""framegen: learn the raw audio of one long song with a GRU and continue it."""

__version__ = "0.1.0"
