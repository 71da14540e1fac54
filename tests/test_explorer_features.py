"""What a Projector or Atlas user reaches for first, in headless Chromium: box and lasso selection, the CSV of the
selected or filtered ids (hostile ids included), paged galleries, the gallery of the shown points."""

import csv

import numpy as np
import pytest
from matplotlib.path import Path as Polygon

from deqlib.plots.explorer import write_explorer
from explorerkit import browser  # noqa: F401 (a fixture)
from explorerkit import HOSTILE_IDS, Coloured, colour_of, open_page, pixels, projections, table

pytestmark = pytest.mark.browser

BLOB = 60


@pytest.fixture()
def blobs(tmp_path):
    """Four tight blobs of 60 points in the plane z = 0; blob 0 holds every hostile id."""
    rng = np.random.default_rng(0)
    centres = np.array([[-50, -50, 0], [50, -50, 0], [50, 50, 0], [-50, 50, 0]], dtype=float)
    cluster = np.repeat(np.arange(4), BLOB)
    xyz = centres[cluster] + rng.normal(0, 2, size=(4 * BLOB, 3))
    ids = HOSTILE_IDS + [f"s{i:03d}" for i in range(len(HOSTILE_IDS), 4 * BLOB)]
    weight = rng.uniform(0.5, 1, 4 * BLOB)
    samples = table(ids, xyz, cluster, weight=weight, note=[HOSTILE_IDS[i % len(HOSTILE_IDS)] for i in range(4 * BLOB)])
    return write_explorer(samples, Coloured(ids), tmp_path / "e.html"), samples, cluster


def _drag(page, points, steps=4):
    box = page.locator("#plot").bounding_box()
    page.mouse.move(box["x"] + points[0][0], box["y"] + points[0][1])
    page.mouse.down()
    for x, y in points[1:]:
        page.mouse.move(box["x"] + x, box["y"] + y, steps=steps)
    page.mouse.up()


def _download(page):
    with page.expect_download() as info:
        page.click("#export-csv")
    download = info.value
    with open(download.path(), newline="", encoding="utf-8") as handle:
        return download.suggested_filename, list(csv.reader(handle))


def _check_csv(rows, samples, indices):
    assert rows[0] == ["sample_id", "cluster_id", "cluster_size", "likelihood", "weight", "note"]
    body = rows[1:]
    assert [r[0] for r in body] == samples.sample_id.iloc[indices].tolist()  # hostile ids exactly, one row each
    assert [int(r[1]) for r in body] == samples.cluster_id.iloc[indices].tolist()
    assert [r[5] for r in body] == samples.note.iloc[indices].tolist()
    weight = np.array([float(r[4]) for r in body], dtype=np.float32)  # the page's float32 values, read back exactly
    assert np.array_equal(weight, samples.weight.iloc[indices].to_numpy(dtype=np.float32))


def test_box_and_lasso_selection_and_their_csv(browser, blobs):
    path, samples, cluster = blobs
    page, errors = open_page(browser, path.as_uri())
    page.set_default_timeout(10_000)
    xy = projections(page, len(samples))

    # Box: around blob 0, with a margin no other blob reaches.
    lo, hi = xy[cluster == 0].min(axis=0) - 12, xy[cluster == 0].max(axis=0) + 12
    inside = np.flatnonzero(((xy >= lo) & (xy <= hi)).all(axis=1))
    assert inside.tolist() == np.flatnonzero(cluster == 0).tolist()
    page.click("#box-mode")
    assert page.evaluate("document.body.dataset.mode") == "box"
    _drag(page, [lo, hi])
    assert page.locator("#shown-count").inner_text() == f"{BLOB} of {4 * BLOB} points shown"
    assert page.evaluate("Array.from(EXPLORER.state.visible)") == inside.tolist()
    assert page.locator("#selection-info").inner_text().startswith(f"{BLOB} points selected (box)")
    assert page.evaluate("document.body.dataset.mode") == ""  # one selection per click of the button
    name, rows = _download(page)
    assert name == f"e_selection_{BLOB}.csv"
    _check_csv(rows, samples, inside)

    # Lasso: around blobs 1 and 2 along their convex hull, widened, traced with the mouse.
    page.click("#clear-selection")
    assert page.locator("#shown-count").inner_text() == f"{4 * BLOB} of {4 * BLOB} points shown"
    from scipy.spatial import ConvexHull

    pair = xy[(cluster == 1) | (cluster == 2)]
    hull = pair[ConvexHull(pair).vertices]
    middle = hull.mean(axis=0)
    outline = middle + (hull - middle) * (1 + 14 / np.linalg.norm(hull - middle, axis=1))[:, None]
    expected = np.flatnonzero(Polygon(outline).contains_points(xy))
    assert expected.tolist() == np.flatnonzero((cluster == 1) | (cluster == 2)).tolist()
    page.click("#lasso-mode")
    _drag(page, [*outline, outline[0]], steps=3)
    assert page.evaluate("Array.from(EXPLORER.state.visible)") == expected.tolist()
    assert page.locator("#selection-info").inner_text().startswith(f"{2 * BLOB} points selected (lasso)")
    # A second lasso refines the selection (only shown points can be selected): blob 1 alone.
    lo, hi = xy[cluster == 1].min(axis=0) - 12, xy[cluster == 1].max(axis=0) + 12
    page.click("#lasso-mode")
    _drag(page, [lo, [hi[0], lo[1]], hi, [lo[0], hi[1]], lo])
    assert page.evaluate("Array.from(EXPLORER.state.visible)") == np.flatnonzero(cluster == 1).tolist()
    # The gallery of the shown points holds the selection's images.
    page.click("#gallery-shown")
    titles = page.locator("#gallery .tile").evaluate_all("tiles => tiles.map(t => t.title)")
    assert titles == samples.sample_id[cluster == 1].tolist()
    # A selection that catches nothing says so and keeps what was shown.
    page.click("#lasso-mode")
    _drag(page, [[2, 2], [30, 2], [30, 30], [2, 30]])
    assert page.locator("#selection-info").inner_text() == "The lasso holds no shown point: nothing selected."
    assert page.evaluate("EXPLORER.state.visible.length") == BLOB

    # Filtered ids: Show all, then one cluster; the CSV holds exactly what is shown.
    page.click("#reset")
    page.fill("#filter-clusters", "3")
    page.click("#apply")
    name, rows = _download(page)
    assert name == f"e_shown_{BLOB}.csv"
    _check_csv(rows, samples, np.flatnonzero(cluster == 3))
    page.close()
    assert errors == []


def test_galleries_page_through_every_member(browser, tmp_path):
    n = 600
    cluster = np.where(np.arange(n) < 450, 0, 1)  # cluster 0: 450 images, more than two pages of 200
    ids = [f"s{i:04d}" for i in range(n)]
    rng = np.random.default_rng(5)
    path = write_explorer(table(ids, rng.normal(size=(n, 3)), cluster), Coloured(ids), tmp_path / "e.html",
                          gallery_page=200)
    page, errors = open_page(browser, path.as_uri())
    page.set_default_timeout(10_000)
    page.locator("#legend .item[data-cluster='0']").click()
    seen = []
    for number, (first, last) in enumerate([(1, 200), (201, 400), (401, 450)], start=1):
        titles = page.locator("#gallery .tile").evaluate_all("tiles => tiles.map(t => t.title)")
        assert titles == ids[first - 1:last]
        assert page.locator("#gallery-page").inner_text() == f"{first}-{last} of 450 (page {number} of 3)"
        assert page.locator("#gallery-title").inner_text() == "cluster 0: 450 images"
        assert page.locator("#gallery-prev").is_disabled() == (number == 1)
        assert page.locator("#gallery-next").is_disabled() == (number == 3)
        seen += titles
        if number < 3:
            page.click("#gallery-next")
    # Every tile of the last page shows its own image.
    page.wait_for_function("Array.from(document.querySelectorAll('#gallery .tile'))"
                           ".every(t => t.style.backgroundImage.startsWith('url'))")
    for k in (0, 49):
        tile = pixels(page, f"#gallery .tile >> nth={k}")
        centre = tile[tile.shape[0] // 2, tile.shape[1] // 2]
        assert np.abs(centre - colour_of(400 + k)).max() < 30
    page.click("#gallery-prev")
    assert page.locator("#gallery-page").inner_text() == "201-400 of 450 (page 2 of 3)"
    assert seen == ids[:450]  # every member once, in order
    page.close()
    assert errors == []
