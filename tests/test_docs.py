"""The manual (docs/, MkDocs) builds with warnings as errors, the README's links land, and the
README's test command is the one CI runs.

`mkdocs build --strict` with mkdocs.yml's `validation` settings fails on a link to a missing
page or anchor and on a page left out of `nav`; the two small copies below show that it does.
"""
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mkdocs", reason="mkdocs is not installed (pip install -e '.[test]' brings it)")

REPO = Path(__file__).resolve().parents[1]


def build(config: Path, site: Path) -> subprocess.CompletedProcess:
    """`mkdocs build --strict` (not with -q: mkdocs 1.6 then drops the warnings that strict counts)."""
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config),
                           "-d", str(site)], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    done = build(REPO / "mkdocs.yml", out)
    assert done.returncode == 0, done.stdout + done.stderr
    return out


def test_docs_build_strict(site):
    assert (site / "index.html").exists() and (site / "models" / "index.html").exists()


@pytest.mark.parametrize("break_it", ["link", "anchor", "page outside nav"])
def test_strict_build_fails_on(break_it, tmp_path):
    """The strict build is not a formality: each kind of breakage fails it, naming the cause."""
    shutil.copytree(REPO / "docs", tmp_path / "docs")
    shutil.copy(REPO / "mkdocs.yml", tmp_path / "mkdocs.yml")
    page = tmp_path / "docs" / "failures.md"
    if break_it == "link":
        page.write_text(page.read_text() + "\nSee [the old page](no-such-page.md).\n")
    elif break_it == "anchor":
        page.write_text(page.read_text() + "\nSee [models](models.md#no-such-heading).\n")
    else:
        (tmp_path / "docs" / "orphan.md").write_text("# Not in nav\n")
    done = build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert done.returncode != 0
    assert {"link": "no-such-page.md", "anchor": "no-such-heading", "page outside nav": "orphan.md"}[break_it] \
        in done.stdout + done.stderr


def test_readme_links_land(site):
    """Every relative link in README.md names a file of the repository, and a link into docs/
    with an anchor names a heading the built page has."""
    text = (REPO / "README.md").read_text()
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    relative = [link for link in links if "://" not in link]
    assert any(link.startswith("docs/") for link in relative)
    for link in relative:
        path, _, anchor = link.partition("#")
        assert (REPO / path).exists(), link
        if anchor:
            assert path.startswith("docs/") and path.endswith(".md"), link
            page = Path(path[len("docs/"):-len(".md")])
            html = site / (page.parent if page.name == "index" else page) / "index.html"
            assert f'id="{anchor}"' in html.read_text(), link


def test_readme_test_command_is_what_ci_runs():
    """The README's second command, byte for byte, is the last line of .ci/run."""
    blocks = re.findall(r"```bash\n(.*?)\n```", (REPO / "README.md").read_text(), re.S)
    assert blocks[0] == "pip install -e . && vidbench run --suite quick"
    assert (REPO / ".ci" / "run").read_text().rstrip("\n").splitlines()[-1] == blocks[1]
