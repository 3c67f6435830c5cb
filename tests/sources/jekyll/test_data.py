"""`site.data` from `_data/` (YAML, JSON, CSV, TSV, nested folders), as Jekyll 4 reads it."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bot.settings import Site, load_settings
from bot.sources.jekyll.data import sanitize_filename
from bot.sources.jekyll.reader import parse_post
from bot.sources.jekyll.site import load_site


@pytest.fixture
def site(tmp_path: Path) -> Site:
    """A site whose `_data/` holds one file of each kind, a nested folder and a broken file."""
    data = tmp_path / "_data"
    (data / "team" / "desk").mkdir(parents=True)
    (tmp_path / "_config.yml").write_text("url: https://ex.com\n", encoding="utf-8")
    (data / "authors.yml").write_text(
        "jane:\n  name: Jane Doe\n  twitter: jdoe\njoe:\n  name: Joe\n", encoding="utf-8"
    )
    (data / "settings.yaml").write_text("edition: Morning\n", encoding="utf-8")
    (data / "links.json").write_text('[{"title": "Home", "url": "/"}]', encoding="utf-8")
    (data / "staff.csv").write_text('name,role\nAnn,"Editor, chief"\nBo,Writer\n', encoding="utf-8")
    (data / "shifts.tsv").write_text("day\tlead\nMon\tAnn\n", encoding="utf-8")
    (data / "team" / "desk" / "people.yml").write_text("- Ann\n- Bo\n", encoding="utf-8")
    (data / "my data!.yml").write_text("x: 1\n", encoding="utf-8")
    (data / "both.yml").write_text("from: yml\n", encoding="utf-8")
    (data / "both.json").write_text('{"from": "json"}', encoding="utf-8")
    (data / "broken.yml").write_text("a: [1, 2\n", encoding="utf-8")
    (data / "notes.txt").write_text("not data\n", encoding="utf-8")
    return load_site(load_settings(site_dir=tmp_path, site_url=None, timezone=None))


def render(site: Site, body: str) -> str:
    return parse_post("2026-11-25-a.md", f"---\ntitle: T\n---\n{body}".encode(), site).body


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("{{ site.data.authors.jane.name }}", "Jane Doe"),
        ("{% assign a = site.data.authors[page.who] %}{{ a.twitter }}", "jdoe"),
        ("{{ site.data.settings.edition }}", "Morning"),
        ("{{ site.data.links[0].title }} {{ site.data.links.first.url }}", "Home /"),
        ("{% for s in site.data.staff %}{{ s.name }}={{ s.role }};{% endfor %}",
         "Ann=Editor, chief;Bo=Writer;"),
        ("{{ site.data.shifts[0].lead }}", "Ann"),
        ("{{ site.data.team.desk.people | join: ', ' }}", "Ann, Bo"),
        ("{{ site.data.my_data.x }}", "1"),
        ("{{ site.data.both.from }}", "json"),
        ("[{{ site.data.notes }}{{ site.data.broken }}]", "[]"),
    ],
)  # fmt: skip
def test_site_data_in_liquid(site: Site, body: str, expected: str) -> None:
    """Each data file is `site.data.<name>`, folders nest, CSV rows are keyed by the header."""
    assert render(site, body.replace("page.who", "'jane'")) == expected


def test_broken_data_file_is_logged_and_left_out(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A data file that is not valid YAML is one warning naming it; the rest is read."""
    (tmp_path / "_data").mkdir()
    (tmp_path / "_data" / "bad.yml").write_text("a: [1, 2\n", encoding="utf-8")
    (tmp_path / "_data" / "good.json").write_text("[1]", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="bot.sources.jekyll.data"):
        site = load_site(load_settings(site_dir=tmp_path, site_url=None, timezone=None))
    assert site.data == {"good": [1]}
    assert [r.getMessage() for r in caplog.records if "bad.yml" in r.getMessage()]


def test_data_dir_and_csv_headers_settings(tmp_path: Path) -> None:
    """`data_dir` moves the folder; `csv_reader.headers: false` gives rows as lists."""
    (tmp_path / "_config.yml").write_text(
        "data_dir: facts\ncsv_reader:\n  headers: false\n", encoding="utf-8"
    )
    (tmp_path / "facts").mkdir()
    (tmp_path / "facts" / "t.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    site = load_site(load_settings(site_dir=tmp_path, site_url=None, timezone=None))
    assert site.data == {"t": [["a", "b"], ["1", "2"]]}


def test_no_data_folder_is_empty_data(tmp_path: Path) -> None:
    """A site without `_data/` has an empty `site.data`."""
    assert load_site(load_settings(site_dir=tmp_path, site_url=None, timezone=None)).data == {}


@pytest.mark.parametrize(
    ("name", "key"),
    [("authors", "authors"), ("my data!", "my_data"), ("a  b", "a_b"), ("x.y", "xy")],
)
def test_sanitized_file_names(name: str, key: str) -> None:
    """Data keys are file names as DataReader#sanitize_filename makes them."""
    assert sanitize_filename(name) == key
