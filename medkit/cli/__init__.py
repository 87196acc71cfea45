"""Command-line interface: ``medkit <verb>``; see ``medkit --help``."""
