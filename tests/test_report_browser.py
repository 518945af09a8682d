"""The HTML report as a reader sees it: opened in headless Chromium (Playwright), built from tiny
generated rows of each kind of run (a suite's bench / accuracy / SSL rows, `vidbench compare`,
the scaling study, the measurement options). Every image loads, no raw Markdown shows, each kind
has its tables and plots, no section is empty, a run from a dirty tree is flagged where it is seen.

Needs `pip install playwright` and a Chromium: Playwright's own (`python -m playwright install
chromium`) or the system's (`apt-get install chromium`); skipped with the reason otherwise."""
import re
import shutil

import pytest
from test_report import make_compare, make_run, set_commit

from vidbench.report import write_report
from vidbench.results import ResultsStore

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")

SYSTEM_CHROMIUM = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


@pytest.fixture(scope="module")
def page():
    """A page in headless Chromium: Playwright's browser, else the system's; skip where neither starts."""
    errors = []
    with sync_api.sync_playwright() as p:
        browser = None
        for path in [None] + [shutil.which(name) for name in SYSTEM_CHROMIUM if shutil.which(name)]:
            try:  # --no-sandbox: CI containers run as root
                browser = p.chromium.launch(executable_path=path, args=["--no-sandbox"])
                break
            except sync_api.Error as err:
                errors.append(f"{path or 'playwright chromium'}: {str(err).splitlines()[0]}")
        if browser is None:
            pytest.skip("no headless Chromium could be started (python -m playwright install chromium, or "
                        "apt-get install chromium): " + "; ".join(errors))
        yield browser.new_page()
        browser.close()


def make_study(path):
    """A scaling.csv alone: two models at three frame counts, the largest point skipped by design."""
    store = ResultsStore(path)
    for model, power in (("joint_net", 2.0), ("window_net", 1.0)):
        for frames in (8, 16, 32):
            tokens = frames * 49
            store.append("scaling", dict(
                model=model, attention="joint" if power == 2 else "shifted window", frames=frames, img_size=112,
                device="cpu", tokens=tokens, params=1e6, gmacs=1e-5 * tokens**power, act_bytes=1000 * tokens,
                act_attention="fused", act_ref_bytes=10 * tokens**2,
                step_ms_median=0.01 * tokens**power if frames < 32 else None,
                peak_mem_mb=tokens / 10 if frames < 32 else None, mem_method="peak RSS",
                status="ok" if frames < 32 else "skipped: estimated 99 s per forward > max 20 s"))
    store.write_environment("cpu")
    return set_commit(path, "abc1234")


def make_options(path):
    """bench rows of the measurement options: two attention backends (one noisy), checkpointing on / off."""
    store = ResultsStore(path)
    base = dict(model="vit_tiny", params=5e6, gmacs=1.0, img_size=224, batch_size=1, precision="fp32", device="cpu",
                mode="train", compile="off", attn_backend="auto", grad_checkpointing=False, nproc=1, clips_per_s=10.0,
                step_ms_median=100.0, step_ms_iqr=2.0, peak_mem_mb=100.0, status="ok", threads=2)
    for row in (base, {**base, "attn_backend": "math", "step_ms_median": 120.0, "step_ms_iqr": 30.0},
                {**base, "grad_checkpointing": True, "step_ms_median": 130.0, "peak_mem_mb": 60.0}):
        store.append("bench", row)
    store.write_environment("cpu")
    return set_commit(path, "abc1234")


# What each kind of run must show: (section heading, tables in it at least, figure captions in it).
KINDS = {
    "suite": make_run,
    "compare": make_compare,
    "study": make_study,
    "options": make_options,
}
SHOWN = {
    "suite": [("Models", 1, []), ("Accuracy vs compute", 0, ["top-1 against GMACs"]),
              ("Scaling with frames", 0, ["infer cost per clip", "train cost per clip", "infer peak memory"]),
              ("Self-supervised pretraining", 1, ["kNN and linear-probe"]), ("Initialisation", 1, ["video top-1"]),
              ("Failures and skipped items", 1, [])],
    "compare": [("Implementations side by side", 1, ["vidbench throughput over"])],
    "study": [("Scaling study", 2, ["GMACs per clip", "activation memory", "measured inference time"])],
    "options": [("Models", 1, []), ("Measurement options", 3, [])],
}
# Markdown that must not reach the reader: code spans, emphasis, headings, table rules, links,
# and the placeholders empty sections used to print.
RAW_MARKDOWN = re.compile(r"`|\*\*|(?<![\w*])\*\S|(?<![\w])_\S.*?\S_(?!\w)|^#+ |\|-{3}|\]\(|nothing to plot|no rows",
                          re.M)

# Per h2 / h3: its text, and the tables, figures and warnings between it and the next heading of
# its level or above (an h2's include its h3s'); per image: whether it loaded; per warning: whether
# it is displayed.
READ_PAGE = """() => {
  const sections = [...document.querySelectorAll('h2, h3')].map(h => {
    const level = +h.tagName[1];
    let tables = 0, figures = [], warnings = 0;
    for (let el = h.nextElementSibling; el && !(/^H[1-3]$/.test(el.tagName) && +el.tagName[1] <= level);
         el = el.nextElementSibling) {
      if (el.tagName === 'TABLE') tables++;
      if (el.tagName === 'FIGURE') figures.push(el.querySelector('figcaption').innerText);
      if (el.classList.contains('warning')) warnings++;
    }
    return {level, title: h.innerText, tables, figures, warnings};
  });
  const images = [...document.images].map(i => ({alt: i.alt, loaded: i.complete && i.naturalWidth > 0}));
  const warnings = [...document.querySelectorAll('.warning')].map(w => ({
    text: w.innerText, visible: w.getBoundingClientRect().height > 0 && getComputedStyle(w).display !== 'none'}));
  return {sections, images, warnings, text: document.body.innerText};
}"""


def _open(page, html):
    page.goto(html.resolve().as_uri())
    page.wait_for_load_state("load")
    return page.evaluate(READ_PAGE)


def _check(seen, kinds):
    sections = {s["title"]: s for s in seen["sections"] if s["level"] == 2}  # each holds its h3s' content too
    assert all(i["loaded"] for i in seen["images"]), [i["alt"] for i in seen["images"] if not i["loaded"]]
    assert len(seen["images"]) == sum(len(s["figures"]) for s in sections.values())  # each in a section
    raw = [m.group(0) for m in RAW_MARKDOWN.finditer(seen["text"])]
    assert not raw, raw
    for s in seen["sections"]:  # every heading leads to something shown
        assert s["tables"] + len(s["figures"]) + s["warnings"] > 0, s["title"]
    for kind in kinds:
        for title, tables, captions in SHOWN[kind]:
            assert title in sections, (kind, title)
            assert sections[title]["tables"] >= tables, (kind, title)
            for caption in captions:
                assert any(f.startswith(caption) for f in sections[title]["figures"]), (kind, caption)


def test_each_kind_of_run_alone_in_a_browser(tmp_path, page):
    """One report per kind: its sections, tables and plots, and nothing else (no empty section).
    The suite's rows fill every standard section: they are seen in the report of all kinds below."""
    for kind in ("compare", "study", "options"):
        seen = _open(page, write_report([KINDS[kind](tmp_path / kind)])[1])
        _check(seen, [kind])
        titles = {s["title"] for s in seen["sections"] if s["level"] == 2}
        assert titles == {"Runs"} | {t for t, *_ in SHOWN[kind]}, (kind, titles)
        assert not seen["warnings"]


def test_every_kind_together_with_a_dirty_run_in_a_browser(tmp_path, page):
    runs = [make(tmp_path / kind) for kind, make in KINDS.items()]
    set_commit(runs[0], "abc1234")
    set_commit(runs[1], "63afd8d-dirty")
    seen = _open(page, write_report(runs, tmp_path / "all")[1])
    _check(seen, list(KINDS))
    assert [w["visible"] for w in seen["warnings"]] == [True]
    assert "compare was measured from a working tree with uncommitted changes (commit 63afd8d-dirty)" in \
        seen["warnings"][0]["text"]
    runs_section = next(s for s in seen["sections"] if s["title"] == "Runs")
    assert runs_section["warnings"] == 1
