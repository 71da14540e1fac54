"""deqlib.plots.png: every saved figure carries its parameters, in the pixels' caption and the metadata."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest

from deqlib import __version__
from deqlib.plots import clusters, paper
from deqlib.plots.png import read_png_metadata, save_figure, save_png


def _figure():
    figure, ax = plt.subplots(figsize=(4, 3))
    ax.plot([0, 1, 2], [2, 0, 1])
    return figure


def test_save_figure_writes_caption_and_metadata_and_closes_the_figure(tmp_path):
    figure = _figure()
    path = save_figure(figure, tmp_path / "sub" / "f.png", {"eps": 1.0, "encoder": tmp_path})
    record = read_png_metadata(path)
    # a value that is not JSON (a Path) is stored as its text, not dropped
    assert record == {"deqlib_version": __version__, "figure": "f.png",
                      "parameters": {"eps": 1.0, "encoder": str(tmp_path)}}
    captions = [t.get_text() for t in figure.texts]
    assert captions == [f"eps=1.0, encoder={tmp_path} | deqlib {__version__}"]
    assert not plt.fignum_exists(figure.number)


def test_the_same_figure_saved_twice_gives_the_same_bytes(tmp_path):
    first = save_figure(_figure(), tmp_path / "a" / "f.png", {"k": 5})
    second = save_figure(_figure(), tmp_path / "b" / "f.png", {"k": 5})
    assert first.read_bytes() == second.read_bytes()  # no timestamp: a regenerated figure is byte-identical


def test_save_png_stores_title_and_no_caption(tmp_path):
    figure = _figure()
    path = save_png(figure, tmp_path / "t.png", title="my title", parameters={"gamma": 5.0})
    assert figure.texts == []
    assert read_png_metadata(path)["parameters"] == {"gamma": 5.0}
    from PIL import Image

    with Image.open(path) as image:
        assert image.text["Title"] == "my title"


def test_a_png_saved_otherwise_is_refused_with_the_saver_named(tmp_path):
    path = tmp_path / "plain.png"
    _figure().savefig(path)
    with pytest.raises(ValueError, match="deqlib.plots.png.save_png"):
        read_png_metadata(path)


def test_older_import_places_are_the_same_functions():
    assert clusters.save_figure is save_figure
    assert paper.save_png is save_png and paper.read_png_metadata is read_png_metadata
