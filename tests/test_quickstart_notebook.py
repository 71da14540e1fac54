"""00_quickstart executed headlessly on real Fashion-MNIST images with real EfficientNet-Lite0 weights."""

import re

import nbformat
import pytest
from PIL import Image

from deqlib import __version__, notebooks
from deqlib.bank import import_official_pickle, read_bank
from deqlib.plots.paper import read_png_metadata

pytestmark = pytest.mark.notebook

N_IMAGES = 400


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory):
    root = tmp_path_factory.mktemp("quickstart")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DEQ_DATA_DIR", str(root / "data"))  # caches and banks stay out of the repo
        notebooks.execute_notebook(
            "00", parameters={"max_images": N_IMAGES, "clusterer_params": {"min_cluster_size": 10, "min_samples": 10},
                              "explorer_points": 200,
                              "make_gif": True, "output_dir": str(root / "figures")},
            output_dir=root / "build")
    return root


def test_writes_every_figure_with_parameters(quickstart):
    figures = quickstart / "figures"
    for name in notebooks.MAIN_NOTEBOOKS["00_quickstart"]:
        assert (figures / name).is_file(), name
        if name.endswith(".png"):
            with Image.open(figures / name) as image:
                assert image.width >= 300 and len(image.convert("RGB").getcolors(1 << 24)) > 50
            record = read_png_metadata(figures / name)
            assert record["deqlib_version"] == __version__ and record["parameters"]["max_images"] == N_IMAGES
    with Image.open(figures / "fashion-mnist_clusters.gif") as gif:
        assert gif.n_frames == 36


def test_explorer_has_one_thumbnail_per_point(quickstart):
    import json
    import re

    html = (quickstart / "figures" / "fashion-mnist_explorer.html").read_text()
    data = json.loads(re.search(r"const DATA = (\{.*?\});\n", html, flags=re.S).group(1))
    assert data["n"] == 200 and data["total"] == N_IMAGES  # explorer_points=200: a stratified subset
    sheets = list((quickstart / "figures" / data["thumbs"]["folder"]).glob("sheet_*.jpg"))
    assert len(sheets) == len(data["thumbs"]["sheets"]) == 1  # 200 thumbnails of 28 px fit one sheet


def test_bank_and_official_pickle_cover_every_image(quickstart):
    banks = sorted((quickstart / "data" / "processed").glob("fashion-mnist_*.parquet"))
    assert len(banks) == 1 and f"_n{N_IMAGES}_" in banks[0].name  # one bank per run: N and a run id in its name
    bank = read_bank(banks[0])
    assert len(bank) == N_IMAGES and bank.table.sample_id.str.startswith("train-").all()
    meta = bank.metadata
    assert meta["noise_policy"] == "singleton" and meta["versions"]["deqlib"] == __version__
    assert meta["signal"] == "multi-granularity+lof"  # the default signal, not eq. 3
    official = import_official_pickle(banks[0].with_suffix(".pkl"))
    # the forks' p = cluster_size / largest_cluster_size gives back the default signal's likelihood
    recovered = official.table.set_index("sample_id")
    expected = bank.table.set_index("sample_id").likelihood.loc[recovered.index]
    assert len(recovered) == N_IMAGES
    assert ((recovered.cluster_size / recovered.largest_cluster_size - expected).abs() <= 1e-6).all()


def test_clusters_found_real_structure(quickstart):
    nb = nbformat.read(quickstart / "build" / "00_quickstart.ipynb", as_version=4)
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    nmi = float(re.search(r"alignment with 'class_name': NMI ([0-9.]+)", text).group(1))
    # Real pretrained features on real images: clusters agree with the (unseen) classes far above chance.
    assert nmi > 0.3, text
