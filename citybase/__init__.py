"""citybase: the command line, the one-process composition of the platform, and the client."""
