"""api: the ways users reach kgfuse: the command line (`kgfuse`) and the HTTP service."""
