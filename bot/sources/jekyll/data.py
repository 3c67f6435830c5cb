"""`site.data`, ported from Jekyll 4's DataReader: the site's `_data/` folder as nested mappings.

`_data/authors.yml` is `site.data.authors`, `_data/team/people.csv` is
`site.data.team.people` (a list of rows keyed by the header line). YAML, JSON, CSV and TSV
are read; a file that cannot be read is logged and left out, as a post never stops Herald.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import yaml

from bot.sources.jekyll import rules

log = logging.getLogger(__name__)

DATA_EXTS = (".yaml", ".yml", ".json", ".csv", ".tsv")
# DataReader#sanitize_filename
_UNSAFE_RE = re.compile(r"[^\w\s-]+|(?:(?<=^)|(?<=\b\s))\s+(?=$|\s?\b)", re.ASCII)
_SPACES_RE = re.compile(r"\s+", re.ASCII)
MAX_DATA_FILE_BYTES = 8 * 1024 * 1024


def sanitize_filename(name: str) -> str:
    """DataReader#sanitize_filename: `my data!` → `my_data`."""
    return _SPACES_RE.sub("_", _UNSAFE_RE.sub("", name))


def _inside(path: Path, root: Path) -> bool:
    """False for a link that leads out of the site (never followed, as a post's)."""
    try:
        return path.resolve().is_relative_to(root.resolve())
    except (OSError, RuntimeError):
        return False


def _csv_rows(text: str, config: dict[str, Any], delimiter: str) -> list[Any]:
    conf_key = "tsv_reader" if delimiter == "\t" else "csv_reader"
    reader_conf = config.get(conf_key)
    headers = True if not isinstance(reader_conf, dict) else reader_conf.get("headers", True)
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    if not headers:
        return rows
    if not rows:
        return []
    head, *body = rows
    return [dict(zip(head, row + [""] * (len(head) - len(row)), strict=False)) for row in body]


def read_file(path: Path, config: dict[str, Any]) -> Any:
    """One data file's content; ValueError/OSError/yaml.YAMLError when it cannot be read."""
    size = path.stat().st_size
    if size > MAX_DATA_FILE_BYTES:
        raise ValueError(f"{size // 1024} KB is over the {MAX_DATA_FILE_BYTES // 1024} KB limit")
    text = path.read_text(encoding="utf-8-sig")
    ext = path.suffix.lower()
    if ext == ".csv":
        return _csv_rows(text, config, ",")
    if ext == ".tsv":
        return _csv_rows(text, config, "\t")
    if ext == ".json":
        return json.loads(text)
    return yaml.load(text, Loader=rules.yaml_loader())


def _read_into(folder: Path, data: dict[str, Any], root: Path, config: dict[str, Any]) -> None:
    """DataReader#read_data_to: data files first, then subfolders, each in name order."""
    try:
        names = sorted(os.listdir(folder))
    except OSError as exc:
        log.warning("cannot list data folder %s (%s); its data is left out", folder, exc.strerror)
        return
    # Dir["*.{yaml,yml,json,csv,tsv}"]: by extension in that order, then by name; a later
    # file of the same name wins, as in Jekyll.
    files = [n for ext in DATA_EXTS for n in names if n.endswith(ext) and not n.startswith(".")]
    folders = [n for n in names if not n.startswith(".") and (folder / n).is_dir()]
    for name in files + folders:
        path = folder / name
        if path.is_symlink() and not _inside(path, root):
            log.warning("data file %s links out of the site; not read", path)
            continue
        if path.is_dir():
            sub: dict[str, Any] = {}
            data[sanitize_filename(name)] = sub
            _read_into(path, sub, root, config)
            continue
        if not path.is_file():
            continue
        try:
            data[sanitize_filename(path.stem)] = read_file(path, config)
        except (OSError, ValueError, yaml.YAMLError) as exc:
            log.warning("skipping data file %s: %s", path, exc)


def read_data(root: Path, config: dict[str, Any]) -> dict[str, Any]:
    """`site.data`: every data file under the site's `data_dir` (`_data/`), nested by folder."""
    folder = root / str(config.get("data_dir") or "_data")
    data: dict[str, Any] = {}
    if folder.is_dir() and _inside(folder, root):
        _read_into(folder, data, root, config)
    return data
