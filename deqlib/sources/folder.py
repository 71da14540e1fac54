"""Any folder of images, walked recursively (sample id: the path relative to the root)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Sequence

import pandas as pd

from deqlib.sources.base import (
    IMAGE_EXTENSIONS, SOURCES, DatasetLayoutError, _FileListSource, _require_root, _require_unique, _utf8_text)


@SOURCES.register("folder", summary="every image under a folder, recursively")
class FolderSource(_FileListSource):
    """Every image under a folder, recursively; sample id: the path relative to ``root``.

    Parameters
    ----------
    root : path
    extensions : sequence of str, default=IMAGE_EXTENSIONS
        File endings that count as images (case-insensitive).
    max_images : int, optional
        Seeded subsample of this many images (in path order).
    seed : int, default=0
    split : str, optional
        A label kept for the record (a folder has no splits).

    Notes
    -----
    Hidden files and folders (name starting with ``.``, e.g. ``.ipynb_checkpoints``) are
    skipped. Symlinked folders are followed; a folder reached twice (symlink loop, second link)
    is listed once and the repeat goes to ``skipped`` with a warning, as do pipes, sockets and
    devices with image names; an unreadable folder raises :class:`DatasetLayoutError`. Broken
    links with image names stay in the list, so the embedding reports them as failures.
    Metadata: ``folder`` (the parent folder relative to ``root``, often the class).

    Attributes
    ----------
    skipped : list of (str, str)
        Entries left out and why.
    """

    name = "folder"
    download_hint = "Any folder of images: pass root= it (CLI: --root DIR); sub-folders are walked."

    def __init__(self, root, extensions: Sequence[str] = IMAGE_EXTENSIONS, max_images: int | None = None,
                 seed: int = 0, split: str | None = None):
        layout = "  <root>/**/*.jpg|png|... (any depth)"
        if root is not None and not Path(root).expanduser().exists():
            raise DatasetLayoutError(f"image folder {root} does not exist. Expected layout:\n{layout}\n"
                                     f"{self.download_hint}")
        self.root, self.split = _require_root(root, "folder", layout, self.download_hint), split
        endings = tuple(e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions)
        files, self.skipped = _walk_images(self.root, endings)
        if self.skipped:
            warnings.warn(f"{len(self.skipped)} entries under {self.root} were left out: "
                          + "; ".join(f"{path} ({why})" for path, why in self.skipped[:3])
                          + (" ..." if len(self.skipped) > 3 else "") + " (the full list: source.skipped)",
                          stacklevel=2)
        if not files:
            raise DatasetLayoutError(f"no images ({', '.join(endings)}) found under {self.root}")
        self._files = files
        # The id is the relative path as UTF-8 text: a name that is not UTF-8 gets \xNN escapes
        # (the same id in the bank, the official export and the embedding cache), with a warning.
        names = [p.relative_to(self.root).as_posix() for p in files]
        self._ids = [_utf8_text(name) for name in names]
        escaped = [(name, sid) for name, sid in zip(names, self._ids) if name != sid]
        if escaped:
            warnings.warn(f"{len(escaped)} file name(s) under {self.root} are not valid UTF-8, e.g. "
                          f"{escaped[0][1]!r}; their ids use \\xNN escapes. Rename them to UTF-8 "
                          f"(e.g. convmv -f latin1 -t utf8 -r --notest {self.root}) for readable ids.",
                          stacklevel=2)
        _require_unique(self._ids, f"images in {self.root}")
        self._keep(max_images, seed)

    def metadata(self) -> pd.DataFrame:
        table = self._base_table()
        table["folder"] = [_utf8_text(p.parent.relative_to(self.root).as_posix()) for p in self._files]
        return table


def _walk_images(root: Path, endings: tuple[str, ...]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Image files under ``root`` (sorted) and the entries left out, each with the reason.

    Symlinked folders are followed; a folder reached twice (a symlink loop, or a second link to
    the same folder) is listed once and the repeat is reported. A folder that cannot be read
    raises (its images would otherwise be missing without a word). Names with an image ending
    that are folders are walked into like any folder; broken links are kept (decoding them fails
    and the embedding lists them as failures); pipes, sockets and devices are left out (reading
    a pipe would block). Hidden entries (``.name``) are skipped on purpose.
    """
    files: list[Path] = []
    skipped: list[tuple[str, str]] = []
    seen = {os.path.realpath(root): root}
    pending = [root]
    while pending:
        folder = pending.pop()
        try:
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError as exc:
            raise DatasetLayoutError(
                f"cannot read folder {folder} under {root} ({exc.strerror or exc}): its images would be missing. "
                "Make it readable (chmod u+rx) or move it out of the root") from None
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            try:
                is_dir = entry.is_dir()  # follows symlinks
            except OSError:
                is_dir = False
            if is_dir:
                real = os.path.realpath(path)
                if real in seen:
                    why = "symlink loop" if any(real == os.path.realpath(p) for p in [folder, *path.parents]) \
                        else f"same folder as {seen[real]}"
                    skipped.append((str(path), why))
                    continue
                seen[real] = path
                pending.append(path)
            elif path.suffix.lower() in endings:
                try:
                    regular = entry.is_file() or (entry.is_symlink() and not path.exists())  # broken link: a failure later
                except OSError:
                    regular = True
                if regular:
                    files.append(path)
                else:
                    skipped.append((str(path), "not a regular file (pipe, socket or device)"))
    return sorted(files), skipped


