"""Subcommands of the ``deq`` CLI.

Each module here defines ``register(subparsers)``, which adds one subcommand
whose handler (``set_defaults(func=...)``) calls deqlib's public functions.
``deqlib.cli`` discovers the modules, so adding a command touches one file.
"""
