"""ds2cli: Deep Speech 2 speech recognition (and Neural Turing Machines) from the command line."""

__version__ = "0.1.0"
