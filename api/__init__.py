"""api: the ways users reach kgfuse: the command line (`kgfuse`) and the HTTP service."""

from importlib import metadata

try:
    __version__ = metadata.version("kgfuse")
except metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"
