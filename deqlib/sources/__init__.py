"""Image sources: one small interface over every dataset layout of the paper.

An :class:`ImageSource` lists samples (``sample_ids``: unique, stable order), opens one as an
RGB PIL image (:meth:`~ImageSource.load`), and describes them (:meth:`~ImageSource.metadata`:
one row per sample with ``sample_id``, ``location`` and dataset attributes). Sources are plain
picklable objects, so DataLoader worker processes can decode images in parallel.

One module per dataset, each registering its kind in :data:`SOURCES` beside its class:
``fashion-mnist`` (:mod:`.fashion_mnist`), ``folder`` (:mod:`.folder`), ``kitti``
(:mod:`.kitti`), ``nuscenes`` (:mod:`.nuscenes`), ``waymo`` (front-camera frames extracted to
files) and ``waymo-parquet`` (the v2 Parquet release, :mod:`.waymo`), ``bdd100k``
(:mod:`.bdd100k`). :mod:`.base` holds the contract and the file-list base, :mod:`.table` the
base of the table-backed sources (nuScenes, Waymo Parquet). Open any kind with
:func:`open_source`; each class says how to get its data in ``download_hint``.

``max_images`` and ``seed`` (every kind takes them) mean one thing everywhere: a deterministic,
seeded subsample of ``max_images`` samples kept in the source's order (class-stratified for
Fashion-MNIST), the same in notebooks, ``analyze`` and ``deq ... --max-images N``. Why seeded
and not the first N: datasets are ordered by scene, sequence or class, so the first N images
are one scene or one class, not a small copy of the dataset. (The CLI's ``--first N`` takes the
first N on purpose, for smoke tests and growing an embedding cache in steps.)

Bad input: a missing root, split list or table raises :class:`DatasetLayoutError` (a
``FileNotFoundError``) whose message shows the expected layout and how to get the data; an
unreadable, corrupt or truncated image raises :class:`ImageLoadError` (an ``OSError``) naming
the file, which the embedding engine skips, logs and lists in its failures file. Grayscale,
RGBA, palette and 16-bit images are converted to 8-bit RGB (:func:`to_rgb`).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping

# Every name importable from the single-module deqlib.sources of before stays importable here,
# private helpers included (tests and benchmarks use some).
from deqlib.sources.base import (  # noqa: F401
    _EXIF_ORIENTATION, IMAGE_EXTENSIONS, SOURCES, DatasetLayoutError, ImageLoadError, ImageSource, SubsetSource,
    _check_split_entries, _decode, _FileListSource, _open_image_bytes, _open_image_file, _read_split_list,
    _require_root, _require_unique, _select, _stat_digest, _utf8_text, to_rgb)
from deqlib.sources.table import TableSource
from deqlib.sources.fashion_mnist import (  # noqa: F401
    FASHION_MNIST_CLASSES, FASHION_MNIST_DEBIAN_DIR, FashionMNISTSource, _read_idx)
from deqlib.sources.folder import FolderSource, _walk_images  # noqa: F401
from deqlib.sources.kitti import (  # noqa: F401
    _KITTI_LAYOUT, KITTI_CLASSES, KittiSource, _kitti_id, _kitti_objects, kitti_class_counts)
from deqlib.sources.nuscenes import (  # noqa: F401
    _NUSCENES_LAYOUT, _NUSCENES_SPLITS_BY_VERSION, _NUSCENES_TABLES, _NUSCENES_VALID_SPLITS, NUSCENES_MINI_SPLITS,
    NuScenesSource, nuscenes_split_scenes)
from deqlib.sources.waymo import (  # noqa: F401
    _WAYMO_V2_LAYOUT, WAYMO_CAMERAS, WAYMO_FRONT_CAMERA, WAYMO_V2_IMAGE, WAYMO_V2_KEYS, WAYMO_V2_STATS,
    WaymoFolderSource, WaymoParquetSource)
from deqlib.sources.bdd100k import _BDD100K_LAYOUT, BDD100K_ATTRIBUTES, BDD100KSource  # noqa: F401


def _import_dataset_modules() -> None:
    """Import every module of this package, so that a new dataset module registers its kind in
    :data:`SOURCES` by existing (as ``deqlib.cli`` discovers the command modules)."""
    import importlib
    import pkgutil

    for module in pkgutil.iter_modules(__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")


_import_dataset_modules()

__all__ = [
    "SOURCES",
    "ImageLoadError",
    "DatasetLayoutError",
    "ImageSource",
    "SubsetSource",
    "TableSource",
    "FashionMNISTSource",
    "FolderSource",
    "KittiSource",
    "kitti_class_counts",
    "NuScenesSource",
    "nuscenes_split_scenes",
    "WaymoFolderSource",
    "WaymoParquetSource",
    "BDD100KSource",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_DEBIAN_DIR",
    "KITTI_CLASSES",
    "NUSCENES_MINI_SPLITS",
    "WAYMO_CAMERAS",
    "BDD100K_ATTRIBUTES",
    "IMAGE_EXTENSIONS",
    "to_rgb",
    "open_source",
    "download_hint",
    "SOURCE_KINDS",
]


class _SourceKinds(Mapping):
    """``SOURCE_KINDS[kind]`` -> the class, read live from :data:`SOURCES` (kept for old callers;
    new code uses ``SOURCES``)."""

    def __getitem__(self, kind: str) -> type:
        if kind not in SOURCES:
            raise KeyError(kind)
        return SOURCES.entry(kind).factory

    def __iter__(self):
        return iter(SOURCES.names())

    def __len__(self) -> int:
        return len(SOURCES)


SOURCE_KINDS = _SourceKinds()


def download_hint(kind: str) -> str:
    """How to get the data of source kind ``kind`` (its class's ``download_hint``)."""
    return getattr(SOURCES.entry(kind).factory, "download_hint", "")


_UNSET = object()


def open_source(kind: str, root=None, split=_UNSET, **options) -> ImageSource:
    """Open a source by kind (a name in :data:`SOURCES`), root folder and split.

    Parameters
    ----------
    kind : str
        A registered kind: ``fashion-mnist``, ``folder``, ``kitti``, ``nuscenes``, ``waymo``,
        ``waymo-parquet``, ``bdd100k`` (``SOURCES.names()``).
    root : path, optional
        The dataset folder (Fashion-MNIST defaults to Debian's copy).
    split : str or None, optional
        Left out: the kind's default (``'train'``, or ``'training'`` for Waymo). ``None``: every
        sample where the kind allows it (KITTI, nuScenes, a folder).
    **options
        The kind's own parameters, e.g. ``max_images`` and ``seed`` (a seeded subsample, see the
        module docstring), ``version`` (nuScenes), ``camera`` (Waymo v2), ``labels_file`` (BDD100K).

    Raises
    ------
    ValueError
        Unknown kind (the message lists the registered ones).
    TypeError
        An option the kind does not take (the message lists the ones it takes).
    DatasetLayoutError
        The data is missing or not laid out as expected: the message shows the expected layout
        and ends with the kind's ``download_hint``.
    """
    cls = SOURCES.entry(kind).factory
    parameters = inspect.signature(cls).parameters
    accepted = list(parameters)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise TypeError(f"the {kind} source has no option(s) {unknown}; it takes {accepted}")
    if split is not _UNSET:
        options["split"] = split
    if root is not None or parameters["root"].default is inspect.Parameter.empty:
        options["root"] = root  # a missing root of a kind that needs one fails with its expected layout
    try:
        return SOURCES.create(kind, **options)
    except DatasetLayoutError as exc:  # the data is not there (or not as asked): say how to get it
        hint = download_hint(kind)
        if not hint or hint in str(exc):
            raise
        raise DatasetLayoutError(f"{exc}\n{hint}") from None
