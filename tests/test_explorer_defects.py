"""The explorer's defects of issue 19, each reproduced in headless Chromium (each test failed on the page before the fix).

Slow sprite sheets, hostile ids, text filters for absent values, partial search matches, filters that match
nothing or are malformed, the view (fitted, reset), the hover marker.
"""

import json
import re
import time

import numpy as np
import pytest

from deqlib.plots.explorer import write_explorer
from explorerkit import browser  # noqa: F401 (a fixture)
from explorerkit import HOSTILE_IDS, Coloured, colour_of, hover, open_page, pixels, projections, serve, table

pytestmark = pytest.mark.browser


def _data(path):
    return json.loads(re.search(r"const DATA = (\{.*?\});\n", path.read_text(), flags=re.S).group(1))


PANEL_LOG = """() => { window.__panel = [];
  new MutationObserver(() => { const f = document.getElementById('field-sample_id');
    if (f && window.__panel[window.__panel.length - 1] !== f.textContent) window.__panel.push(f.textContent); })
  .observe(document.getElementById('info'), {childList: true, subtree: true}); }"""


def test_a_slow_sheet_never_paints_over_the_sample_shown_since(browser, tmp_path):
    n = 1100  # 28 x 28 tiles, 1,024 per sheet: sprite order follows the cluster, so 0..1023 on sheet 0
    ids = [f"s{i:05d}" for i in range(n)]
    grid = np.stack([np.arange(n) % 40, np.arange(n) // 40, np.zeros(n)], axis=1) * 10.0
    cluster = np.where(np.arange(n) < 1024, 0, 1)
    path = write_explorer(table(ids, grid, cluster), Coloured(ids), tmp_path / "e.html", marker_size=3)
    assert _data(path)["thumbs"]["sheets"] == ["sheet_00000.jpg", "sheet_00001.jpg"]
    first, second = 1050, 5  # on the slow sheet 1, then on sheet 0
    assert np.abs(np.subtract(colour_of(second), colour_of(1024 + second))).max() > 60  # sheet 1's tile there differs
    with serve(tmp_path, delays={"sheet_00001.jpg": 1.5}) as url:
        page, errors = open_page(browser, f"{url}/e.html")
        page.evaluate(PANEL_LOG)
        hover(page, first)
        page.wait_for_function(f"window.__panel.includes('{ids[first]}')", timeout=5_000)
        started = time.perf_counter()
        hover(page, second)
        within = time.perf_counter() - started
        page.wait_for_function(f"document.getElementById('thumb').dataset.index === '{second}'", timeout=10_000)
        early = pixels(page, "#thumb")
        page.wait_for_timeout(2_500)  # the slow sheet has arrived by now
        late = pixels(page, "#thumb")
        assert page.evaluate("window.__panel") == [ids[first], ids[second]]
        assert page.locator("#field-sample_id").text_content() == ids[second]
        for thumb in (early, late):
            centre = thumb[thumb.shape[0] // 2, thumb.shape[1] // 2]
            assert np.abs(centre - colour_of(second)).max() < 30, (centre, colour_of(second))
        hover(page, first)  # and the slow sheet's own sample shows its own image
        page.wait_for_function(f"document.getElementById('thumb').dataset.index === '{first}'", timeout=10_000)
        thumb = pixels(page, "#thumb")
        assert np.abs(thumb[thumb.shape[0] // 2, thumb.shape[1] // 2] - colour_of(first)).max() < 30
        page.close()
    assert within < 0.15
    assert errors == []


@pytest.mark.parametrize("hostile", [["<!--<script>x.png"], HOSTILE_IDS], ids=["issue-case", "all"])
def test_hostile_ids_neither_blank_the_page_nor_run_code(browser, tmp_path, hostile):
    # The case alone blanked the page; in the full set a later "-->" happened to undo it.
    ids = hostile + [f"ok-{i}" for i in range(40)]
    n = len(ids)
    rng = np.random.default_rng(0)
    notes = [HOSTILE_IDS[i % len(HOSTILE_IDS)] for i in range(n)]  # hostile metadata values too
    samples = table(ids, rng.normal(size=(n, 3)), rng.integers(0, 3, n), note=notes)
    title = "<!--<script>title</script> & more"
    path = write_explorer(samples, Coloured(ids), tmp_path / "e.html", title=title)
    page, errors = open_page(browser, path.as_uri(), timeout_ms=20_000)  # the page before the fix never got here
    assert page.locator("#shown-count").inner_text() == f"{n} of {n} points shown"
    assert page.evaluate("window.__pwned") is None
    assert page.evaluate("DATA.ids") == ids
    assert page.title() == title
    for i, sample_id in enumerate(hostile):
        if "\n" in sample_id or "\r" in sample_id:  # a text box cannot hold a line break: go there directly
            page.evaluate("i => EXPLORER.goTo(i)", i)
        else:
            page.fill("#search", sample_id)
            page.press("#search", "Enter")
        assert page.locator("#search-result").text_content().startswith(f"found {sample_id} (cluster")
        assert page.locator("#field-sample_id").text_content() == sample_id
        assert page.locator("#field-note").text_content() == notes[i]
    assert page.evaluate("window.__pwned") is None
    page.close()
    assert errors == []
    inlined = re.search(r"const DATA = (\{.*?\});\n", path.read_text(encoding="utf-8"), flags=re.S).group(1)
    assert not re.search("[<>&\u2028\u2029]", inlined)  # every markup character of the data escaped


def test_a_text_filter_for_an_absent_value_matches_nothing(browser, tmp_path):
    n = 1000
    ids = [f"s{i:04d}" for i in range(n)]
    scene = [f"scene-{i % 600:03d}" if i < 900 else None for i in range(n)]  # 600 values: a text box; 100 missing
    rng = np.random.default_rng(1)
    path = write_explorer(table(ids, rng.normal(size=(n, 3)), rng.integers(0, 4, n), scene=scene),
                          Coloured(ids), tmp_path / "e.html")
    page, errors = open_page(browser, path.as_uri())
    page.set_default_timeout(5_000)
    assert page.evaluate("document.getElementById('cat-scene').tagName") == "INPUT"
    page.fill("#cat-scene", "no-such-scene")
    page.click("#apply")
    assert page.locator("#shown-count").inner_text() == "0 of 1,000 points shown"  # was 100: the missing rows
    assert 'no sample has scene = "no-such-scene"' in page.locator("#filter-message").inner_text()
    page.fill("#cat-scene", "scene-007")
    page.click("#apply")
    assert page.locator("#shown-count").inner_text() == "2 of 1,000 points shown"
    assert page.evaluate("Array.from(EXPLORER.state.visible)") == [7, 607]
    page.close()
    assert errors == []


def test_search_finds_exact_ids_only_and_lists_the_ids_containing_the_text(browser, tmp_path):
    ids = [f"train-{i:05d}" for i in range(190)] + [f"train-1973{d}" for d in range(10)]
    n = len(ids)
    rng = np.random.default_rng(2)
    path = write_explorer(table(ids, rng.normal(size=(n, 3)), rng.integers(0, 4, n)), Coloured(ids),
                          tmp_path / "e.html")
    page, errors = open_page(browser, path.as_uri())
    page.set_default_timeout(5_000)

    def find(text):
        page.fill("#search", text)
        page.press("#search", "Enter")
        return page.locator("#search-result").inner_text()

    assert find("train-00005").startswith("found train-00005")
    page.wait_for_function("document.getElementById('thumb').dataset.index === '5'")
    # A partial id is not "found": the page says so, clears the panel and lists every id containing it.
    assert find("train-1973") == '"train-1973" not found; 10 sample ids contain it: click one'
    assert page.locator("#search-matches .match").all_text_contents() == [f"train-1973{d}" for d in range(10)]
    assert page.locator("#field-sample_id").count() == 0
    assert page.evaluate("document.getElementById('thumb').dataset.index") is None
    assert not page.locator("#marker-selected").is_visible() and not page.locator("#marker").is_visible()
    page.locator("#search-matches .match", has_text="train-19734").click()
    assert page.locator("#field-sample_id").text_content() == "train-19734"
    assert page.locator("#search-result").inner_text().startswith("found train-19734")
    page.wait_for_function(f"document.getElementById('thumb').dataset.index === '{ids.index('train-19734')}'")
    assert find("no-such-id") == '"no-such-id" not found; no sample id contains it'
    assert page.locator("#field-sample_id").count() == 0 and page.locator("#search-matches .match").count() == 0
    page.close()
    assert errors == []


def test_filters_that_match_nothing_or_are_malformed_say_why(browser, tmp_path):
    n = 1000
    ids = [f"s{i:04d}" for i in range(n)]
    rng = np.random.default_rng(3)
    cluster = rng.integers(0, 5, n)
    kind = np.where(cluster == 0, "A", rng.choice(["A", "B"], n))  # cluster 0 holds no "B"
    samples = table(ids, rng.normal(size=(n, 3)), cluster, kind=kind)
    path = write_explorer(samples, Coloured(ids), tmp_path / "e.html")
    page, errors = open_page(browser, path.as_uri())
    page.set_default_timeout(5_000)

    def apply(**fields):
        page.click("#reset")
        for selector, value in fields.items():
            if selector.startswith("select"):
                page.select_option(f"#{selector[7:]}", label=value)
            else:
                page.fill(f"#{selector}", value)
        page.click("#apply")
        return page.locator("#shown-count").inner_text(), page.locator("#filter-message").inner_text()

    shown, message = apply(**{"filter-clusters": "abc"})
    assert shown == "1,000 of 1,000 points shown"  # refused, not applied
    assert message == 'Filters not applied: clusters: "abc" is not a cluster id (whole numbers; -1 is noise).'
    shown, message = apply(**{"filter-clusters": "999"})
    assert shown == "0 of 1,000 points shown"
    assert message == ("No sample shown: no sample is in cluster 999: there is no such cluster "
                       "(cluster ids run from 0 to 4).")
    shown, message = apply(**{"filter-clusters": "2, 999"})
    assert shown == f"{(cluster == 2).sum():,} of 1,000 points shown"
    assert message == "Note: no cluster 999 (cluster ids run from 0 to 4)."
    _, message = apply(**{"min-likelihood": "0.9", "max-likelihood": "0.1"})
    assert message == "Filters not applied: likelihood: the minimum 0.9 is above the maximum 0.1."
    _, message = apply(**{"min-likelihood": "abc"})
    assert message == 'Filters not applied: likelihood minimum: "abc" is not a number.'
    shown, message = apply(**{"min-likelihood": "5"})
    low = samples.likelihood.min()
    assert shown == "0 of 1,000 points shown"
    assert message == f"No sample shown: no sample has likelihood >= 5 (values run from {low:.4g} to 1)."
    shown, message = apply(**{"filter-clusters": "0", "select-cat-kind": "B"})
    assert shown == "0 of 1,000 points shown"
    assert message == ("No sample shown: each filter matches samples, but no sample passes all of them together: "
                       f'clusters 0 ({(cluster == 0).sum()}), kind = "B" ({(kind == "B").sum()}).')
    page.close()
    assert errors == []


IN_VIEW = """() => { const b = document.getElementById('plot').getBoundingClientRect(), out = [];
  for (let i = 0; i < DATA.n; i++) { const p = EXPLORER.project(i);
    if (!(p[0] >= 0 && p[0] <= b.width && p[1] >= 0 && p[1] <= b.height)) out.push(i); }
  return out.length; }"""


def test_the_first_view_fits_the_data_and_reset_brings_the_cloud_back(browser, tmp_path):
    n = 2000
    rng = np.random.default_rng(0)
    xyz = rng.uniform(0, 100, size=(n, 3))
    xyz[:8] = np.array(np.meshgrid([0, 100], [0, 100], [0, 100])).reshape(3, -1).T  # the cube's corners
    xyz += [1000, -500, 20]  # far from the origin
    cluster = np.zeros(n, int)
    cluster[8:58] = 1
    xyz[8:58] = [1010, -490, 30] + rng.normal(0, 1, size=(50, 3))  # a small cluster in a corner
    ids = [f"s{i:04d}" for i in range(n)]
    path = write_explorer(table(ids, xyz, cluster), Coloured(ids), tmp_path / "e.html")
    page, errors = open_page(browser, path.as_uri())
    page.set_default_timeout(10_000)
    box = page.locator("#plot").bounding_box()

    def span(indices):
        xy = projections(page, n)[indices]
        return max(np.ptp(xy[:, 0]) / box["width"], np.ptp(xy[:, 1]) / box["height"])

    assert page.evaluate(IN_VIEW) == 0  # the page before the fix left 47 of these points off-screen
    assert span(slice(None)) > 0.85  # and fills the plot
    xy = projections(page, n)
    size = np.array([box["width"], box["height"]])
    edge = ids[int(np.argmax((np.abs(xy - size / 2) / size).max(axis=1)))]  # nearest the plot's edge
    for reset in ("#reset", "#reset-view"):  # "Show all" and "Reset view" both bring the whole cloud back
        page.fill("#search", edge)
        page.press("#search", "Enter")
        page.wait_for_function(f"({IN_VIEW})() > 100")  # centred on it: much of the cube out of view
        page.click(reset)
        page.wait_for_function(f"({IN_VIEW})() === 0")
        assert span(slice(None)) > 0.85
    page.fill("#filter-clusters", "1")  # Reset view fits the shown points: a small cluster fills the plot
    page.click("#apply")
    page.click("#reset-view")
    page.wait_for_timeout(500)
    assert span(slice(8, 58)) > 0.75  # (perspective: the fit touches the margin on one side)
    page.close()
    assert errors == []


FRAMES = "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"
RING = [(np.cos(a), np.sin(a)) for a in np.linspace(0, 2 * np.pi, 24, endpoint=False)]


def test_hover_marks_the_point_the_panel_shows_and_follows_the_view(browser, tmp_path):
    n = 4000
    rng = np.random.default_rng(4)
    ids = [f"s{i:04d}" for i in range(n)]
    path = write_explorer(table(ids, rng.normal(size=(n, 3)), rng.integers(0, 8, n)), Coloured(ids),
                          tmp_path / "e.html")
    page, errors = open_page(browser, path.as_uri())
    page.set_default_timeout(10_000)
    box = page.locator("#plot").bounding_box()
    xy = projections(page, n)
    centre = np.array([box["width"], box["height"]]) / 2
    dense = np.argsort(np.linalg.norm(xy - centre, axis=1))[:400:20]  # 20 targets in the densest middle
    neighbours = 0
    for target in dense:
        hover(page, int(target))
        page.evaluate(FRAMES)  # the hover is handled on the next animation frame
        shown = ids.index(page.locator("#field-sample_id").text_content())
        neighbours += shown != target
        marker = page.locator("#marker")
        assert marker.is_visible() and marker.get_attribute("data-index") == str(shown)
        ring = marker.bounding_box()
        at = page.evaluate(f"EXPLORER.project({shown})")
        assert abs(ring["x"] - box["x"] + ring["width"] / 2 - at[0]) < 1.5
        assert abs(ring["y"] - box["y"] + ring["height"] / 2 - at[1]) < 1.5
    assert neighbours > 0  # dense: some hovers pick a neighbour, and the ring shows which
    # The ring is drawn: dark pixels all around the marked point.
    plot = pixels(page, "#plot")
    ring = page.locator("#marker").bounding_box()
    cx, cy, r = ring["x"] - box["x"] + ring["width"] / 2, ring["y"] - box["y"] + ring["height"] / 2, ring["width"] / 2
    dark = [plot[int(round(cy + (r - 1) * s)), int(round(cx + (r - 1) * c))].max() < 90 for c, s in RING]
    assert np.mean(dark) > 0.8
    # Rotate the view: the ring moves with its point.
    page.mouse.move(box["x"] + 20, box["y"] + 20)
    page.mouse.down()
    page.mouse.move(box["x"] + 140, box["y"] + 60, steps=6)
    page.mouse.up()
    page.wait_for_function("EXPLORER.drawn()[0][0] === 'points'")
    page.wait_for_timeout(300)
    shown = int(page.locator("#marker").get_attribute("data-index"))
    ring = page.locator("#marker").bounding_box()
    at = page.evaluate(f"EXPLORER.project({shown})")
    assert abs(ring["x"] - box["x"] + ring["width"] / 2 - at[0]) < 1.5
    assert abs(ring["y"] - box["y"] + ring["height"] / 2 - at[1]) < 1.5
    assert np.abs(np.array(at[:2]) - xy[shown]).max() > 5  # the view did move
    page.close()
    assert errors == []
