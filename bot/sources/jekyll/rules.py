"""Jekyll's own rules, ported: file names, front matter, slugs, dates and categories.

Each function mirrors a named piece of Jekyll 4 (`Document`, `Utils`) so that Herald reads
a post the way the site builds it; permalinks are in `bot.sources.jekyll.permalinks`.
"""

from __future__ import annotations

import codecs
import fnmatch
import functools
import os
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

import yaml

from bot.errors import PostError
from bot.sources.jekyll import ruby_time

try:  # libyaml is several times faster on a 10,000-post scan
    from yaml import CSafeLoader as _BaseLoader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _BaseLoader  # type: ignore[assignment]


class _Loader(_BaseLoader):
    """The safe loader, with timestamps that do not exist read as Ruby's YAML reads them."""


def _timestamp(loader: _Loader, node: yaml.ScalarNode) -> object:
    """Psych's timestamps: `2026-02-30 10:00:00` rolls over (Time.utc does), as Jekyll reads it.

    A date alone that does not exist stays a string, which Time.parse rolls over later.
    """
    try:
        return loader.construct_yaml_timestamp(node)
    except ValueError:
        pass
    text = str(loader.construct_scalar(node))
    match = yaml.constructor.SafeConstructor.timestamp_regexp.match(text)
    if match is None or match.group("hour") is None:
        return text
    parts = match.groupdict()
    year, month, day, hour, minute, second = (
        int(parts[k]) for k in ("year", "month", "day", "hour", "minute", "second")
    )
    try:
        naive = ruby_time.civil(year, month, day, hour, minute, second, 0)
    except ruby_time.TimeParseError:
        return text  # Psych too leaves a timestamp it cannot build a string
    if parts["tz_sign"] is None:
        return naive
    offset = timedelta(hours=int(parts["tz_hour"]), minutes=int(parts["tz_minute"] or 0))
    return naive.replace(tzinfo=timezone(-offset if parts["tz_sign"] == "-" else offset))


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp)


def yaml_loader() -> type[_Loader]:
    """The YAML loader Herald reads Jekyll's files with (safe, timestamps as Ruby's)."""
    return _Loader


# Document::DATE_FILENAME_MATCHER, applied to the base name.
FILENAME_RE = re.compile(r"^(\d{2,4}-\d{1,2}-\d{1,2})-(.*)(\.[^.]+)$", re.S)
# Document::YAML_FRONT_MATTER_REGEXP
FRONT_MATTER_RE = re.compile(r"\A(---\s*\n.*?\n?)^((---|\.\.\.)\s*$\n?)", re.S | re.M)
DEFAULT_MARKDOWN_EXT = "markdown,mkdown,mkdn,mkd,md"
# Front matter is a few hundred bytes; these bounds stop a "billion laughs" alias bomb
# before PyYAML builds it and before Liquid turns its shared lists into text.
MAX_FRONT_MATTER_BYTES = 64 * 1024
MAX_YAML_ALIASES = 100
MAX_ALIAS_EXPANSION = 1_000_000  # characters the aliases may repeat, all together
HTML_EXTS = frozenset({".html", ".htm"})

_PRETTY_KEEP = frozenset("._~!$&'()+,;=@")


def markdown_exts(config: Mapping[str, Any]) -> frozenset[str]:
    """The `markdown_ext` setting as a set of dotted, lower-case extensions."""
    return _exts(str(config.get("markdown_ext") or DEFAULT_MARKDOWN_EXT))


@functools.lru_cache(maxsize=8)
def _exts(raw: str) -> frozenset[str]:
    return frozenset("." + e.strip().lower().lstrip(".") for e in raw.split(",") if e.strip())


def split_filename(name: str) -> tuple[str, str, str] | None:
    """`2026-11-25-flood-warning.md` → (`2026-11-25`, `flood-warning`, `.md`), else None."""
    match = FILENAME_RE.match(name)
    if match is None:
        return None
    day, slug, ext = match.groups()
    # Document#populate_title: "slugs shouldn't end with a period"
    return day, slug.rstrip("."), ext


POSTS_DIR = "_posts"
_SUPERDIRS_RE = re.compile(r"_posts.*")


def site_path(rel: str) -> str:
    """The path Jekyll knows a post by, relative to the site, from Herald's key for it.

    A post under the site's own `_posts/` is keyed by its path in there
    (`world/2026-11-25-a.md`); one under another folder's `_posts/` by its whole path
    (`news/_posts/2026-11-25-a.md`), which no path inside `_posts/` can be, since Herald,
    like Jekyll, never reads an `_`-folder in there.
    """
    return rel if POSTS_DIR in rel.split("/")[:-1] else f"{POSTS_DIR}/{rel}"


def post_key(path: str) -> str | None:
    """Herald's key for the file at site-relative `path` (see site_path), or None when no
    `_posts/` holds it (or only one inside an `_`-folder of `_posts/`, never read)."""
    parts = path.split("/")
    if parts[0] == POSTS_DIR:
        inner = parts[1:]
        if not inner or any(p[:1] in _SPECIAL_LEAD for p in inner[:-1]):
            return None
        return "/".join(inner)
    return path if POSTS_DIR in parts[1:-1] else None


def folder_categories(path: str) -> list[str]:
    """Document#categories_from_path: `news/_posts/x.md` is in `news`; `_posts/news/x.md` is not."""
    if path.startswith(POSTS_DIR):
        return []
    base = path.rsplit("/", 1)[-1]
    above = _SUPERDIRS_RE.sub("", path, count=1)
    return [c for c in above.split("/") if c and c not in (POSTS_DIR, base)]


# Configuration::DEFAULT_EXCLUDES, always added to the site's own `exclude`.
DEFAULT_EXCLUDES = (
    ".sass-cache", ".jekyll-cache", "gemfiles", "Gemfile", "Gemfile.lock", "node_modules",
    "vendor/bundle/", "vendor/cache/", "vendor/gems/", "vendor/ruby/",
)  # fmt: skip
_SPECIAL_LEAD = (".", "_", "#", "~")


def _patterns(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value] if isinstance(value, list) else []


def _glob_include(patterns: Iterable[str], path: str, is_dir: bool) -> bool:
    """EntryFilter#glob_include?: a glob, a prefix, or the folder itself with a slash."""
    return any(
        fnmatch.fnmatchcase(path, p) or path.startswith(p) or (is_dir and p == path + "/")
        for p in patterns
    )


def walked_folder(config: Mapping[str, Any], rel_dir: str) -> bool:
    """EntryFilter: whether Jekyll's reader walks the site folder `rel_dir` for `_posts/`.

    Not hidden or special (`.`, `_`, `#`, `~`, a trailing `~`), not in `exclude` (with
    Jekyll's default excludes such as `node_modules`), unless in `include`; never the
    `destination` folder.
    """
    name = rel_dir.rsplit("/", 1)[-1]
    include = _patterns(config.get("include", [".htaccess"]))
    included = _glob_include(include, name, True)
    exclude = [
        p for p in (*_patterns(config.get("exclude")), *DEFAULT_EXCLUDES) if p not in include
    ]
    if _glob_include(exclude, rel_dir, True) and not included:
        return False
    destination = str(config.get("destination") or "_site").strip("/")
    if rel_dir == destination:
        return False
    return included or not (name.startswith(_SPECIAL_LEAD) or name.endswith("~"))


def walked_path(config: Mapping[str, Any], rel_dir: str) -> bool:
    """Whether Jekyll's reader walks every folder from the site root down to `rel_dir`."""
    parts = rel_dir.split("/")
    return all(walked_folder(config, "/".join(parts[: n + 1])) for n in range(len(parts)))


def site_folders(
    root: Path,
    config: Mapping[str, Any],
    start: str = "",
    onerror: Callable[[OSError], None] | None = None,
) -> tuple[list[str], list[str]]:
    """(site folders Jekyll walks, their `_posts/` folders), site-relative, from `start` down.

    Reader#read_directories: `_posts/` is read in the site root and in every folder it walks,
    which makes `news/_posts/` a posts folder. Linked folders are never walked into.
    """
    walked: list[str] = []
    posts: list[str] = []
    top = root / start if start else root
    for dirpath, dirnames, _ in os.walk(top, onerror=onerror):
        here = Path(dirpath).relative_to(root).as_posix()
        here = "" if here == "." else here
        walked.append(here)
        inside = f"{here}/{POSTS_DIR}" if here else POSTS_DIR
        if POSTS_DIR in dirnames and (not here or not os.path.islink(root / inside)):
            posts.append(inside)
        dirnames[:] = sorted(
            d for d in dirnames if walked_folder(config, f"{here}/{d}" if here else d)
        )
    return walked, posts


def titleize(slug: str) -> str:
    """Utils.titleize_slug: `flood-warning` → `Flood Warning`."""
    parts = slug.split("-")
    while parts and not parts[-1]:  # Ruby's split drops trailing empty fields
        parts.pop()
    return " ".join(p[:1].upper() + p[1:].lower() for p in parts)


def _keep_char(ch: str, pretty: bool) -> bool:
    if ch.isascii():
        return ch.isalnum() or (pretty and ch in _PRETTY_KEEP)
    cat = unicodedata.category(ch)
    return cat[0] in "LM" or cat == "Nd"


def slugify(text: object, mode: str = "default", *, cased: bool = False) -> str:
    """Utils.slugify with its modes: raw, default, pretty, ascii, latin (else unchanged)."""
    value = "" if text is None else str(text)
    if mode not in {"raw", "default", "pretty", "ascii", "latin"}:
        return value if cased else value.lower()
    if mode == "latin":
        decomposed = unicodedata.normalize("NFKD", value)
        value = "".join(
            c if c.isascii() else "?" for c in decomposed if not unicodedata.combining(c)
        )
    if mode == "raw":
        slug = re.sub(r"\s+", "-", value)
    elif mode in {"ascii", "latin"}:
        slug = re.sub(r"[^A-Za-z0-9]+", "-", value)
    else:
        pretty = mode == "pretty"
        out: list[str] = []
        for ch in value:
            if _keep_char(ch, pretty):
                out.append(ch)
            elif not out or out[-1] != "-":
                out.append("-")
        slug = "".join(out)
    slug = re.sub(r"^-|-$", "", slug)
    return slug if cased else slug.lower()


def decode(raw: bytes) -> str:
    """Bytes → text with LF line ends, or PostError saying why the file is unreadable."""
    if not raw.strip():
        raise PostError("empty file")
    if b"\x00" in raw:
        raise PostError("binary file (contains NUL bytes), not a text post")
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8) :]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PostError("not valid UTF-8 — save the file as UTF-8") from exc
    return text.replace("\r\n", "\n")


def split_front_matter(text: str) -> tuple[str, str]:
    """(YAML text, body) of a post, or PostError when the front matter is missing/open."""
    match = FRONT_MATTER_RE.match(text)
    if match is not None:
        head = match.group(1)
        return head[head.index("\n") + 1 :], text[match.end() :]
    first_line = text.split("\n", 1)[0]
    if first_line.rstrip() == "---":
        raise PostError(
            "front matter is not closed (no second `---` line); the file may be half-written"
        )
    raise PostError("no front matter: a post must start with a `---` line (Jekyll skips it)")


def _check_aliases(yaml_text: str) -> None:
    """PostError for an alias bomb, read from the parser's events before anything is built.

    Each node's size is its scalars' text plus one per node, with aliases expanded; an
    alias repeats the size of its anchor, so nested anchors multiply and are caught here.
    """
    if "*" not in yaml_text:  # no alias without an asterisk; most posts stop here
        return
    sizes: dict[str, int] = {}
    open_nodes: list[tuple[str | None, list[int]]] = []  # (anchor, [size]) per collection
    aliases = repeated = 0
    for event in yaml.parse(yaml_text, Loader=_Loader):
        if isinstance(event, yaml.CollectionStartEvent):
            open_nodes.append((event.anchor, [1]))
            continue
        if isinstance(event, yaml.AliasEvent):
            aliases += 1
            if aliases > MAX_YAML_ALIASES:
                raise PostError(
                    f"front matter uses too many YAML aliases (over {MAX_YAML_ALIASES})"
                )
            if any(anchor == event.anchor for anchor, _ in open_nodes):
                raise PostError(
                    f"front matter uses a YAML alias inside its own anchor (*{event.anchor}), "
                    "which never ends"
                )
            size = sizes.get(str(event.anchor), 0)
            repeated += size
            if repeated > MAX_ALIAS_EXPANSION:
                raise PostError(
                    "front matter uses too many YAML aliases: expanded they would repeat "
                    f"over {MAX_ALIAS_EXPANSION:,} characters"
                )
        elif isinstance(event, yaml.ScalarEvent):
            size = 1 + len(event.value)
            if event.anchor is not None:
                sizes[event.anchor] = size
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, (size,) = open_nodes.pop()
            if anchor is not None:
                sizes[anchor] = size
        else:
            continue
        if open_nodes:
            open_nodes[-1][1][0] += size


def load_front_matter(yaml_text: str) -> dict[str, Any]:
    """Parse front matter YAML into a dict, or PostError naming the line or the limit."""
    # UTF-8 takes at most 4 bytes a character, so short text needs no encoding to measure.
    if len(yaml_text) > MAX_FRONT_MATTER_BYTES // 4:
        size = len(yaml_text.encode("utf-8"))
        if size > MAX_FRONT_MATTER_BYTES:
            raise PostError(
                f"front matter is {size // 1024} KB, over the "
                f"{MAX_FRONT_MATTER_BYTES // 1024} KB limit"
            )
    try:
        _check_aliases(yaml_text)
        data = yaml.load(yaml_text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f" at line {mark.line + 2}" if mark is not None else ""  # +1 for `---`
        raise PostError(f"bad YAML in front matter{line}: {exc.problem or exc}") from exc
    except yaml.YAMLError as exc:
        raise PostError(f"bad YAML in front matter: {exc}") from exc
    except ValueError as exc:  # e.g. a timestamp PyYAML matches but cannot build
        raise PostError(f"bad YAML in front matter: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise PostError("front matter is not a mapping of `key: value` lines")
    return {str(k): v for k, v in data.items()}


def parse_date(value: object, tz: Any) -> datetime:
    """Utils.parse_date: a front matter or file name date, aware, in the site's zone `tz`.

    Jekyll runs `Time.parse(value.to_s).localtime`, so what YAML made of the value decides
    its zone: an unquoted timestamp (a datetime here, a Time in Ruby) without an offset is
    UTC, and its fraction of a second is lost in `to_s`; a date alone is midnight in the
    site's zone; a string (a quoted date) is read by Ruby's `Time.parse` in the site's zone.
    """
    when = _aware(value, tz)
    try:  # the site's zone and UTC must both hold it: year 1 or 9999 plus an offset may not
        when.astimezone(UTC)
        return when.astimezone(tz)
    except OverflowError as exc:
        raise PostError(f"date {str(value)!r} is out of range") from exc


def _aware(value: object, tz: Any) -> datetime:
    if isinstance(value, datetime):
        value = value.replace(microsecond=0)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value
    if isinstance(value, date):
        return datetime.combine(value, time(), tz)
    text = str(value)
    try:
        return ruby_time.parse(text, tz)
    except ruby_time.TimeParseError as exc:
        raise PostError(
            f"date {text!r} is not a date Jekyll can read ({exc}); use YYYY-MM-DD HH:MM:SS +0000"
        ) from exc


class RubyTime(datetime):
    """A datetime that prints like Ruby's Time (`2024-01-05 09:30:00 -0800`), as Liquid shows it."""

    def __str__(self) -> str:
        return self.strftime("%Y-%m-%d %H:%M:%S %z")

    @classmethod
    def of(cls, when: datetime) -> RubyTime:
        """The same instant as a RubyTime."""
        return cls.combine(when.date(), when.timetz())


def as_list(value: object, *, split: bool) -> list[str]:
    """A front matter list field: a list, or a string (split on spaces when `split`)."""
    if value is None:
        return []
    if isinstance(value, str):
        return value.split() if split else [value]
    if isinstance(value, list | tuple):
        out: list[str] = []
        for item in value:
            out.extend(as_list(item, split=False))
        return out
    return [str(value)]


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def categories_of(data: Mapping[str, Any]) -> tuple[str, ...]:
    """Document#populate_categories: `categories` plus a singular `category`."""
    plural = as_list(data.get("categories"), split=True)
    if data.get("category") is not None:
        return _unique(plural + as_list(data.get("category"), split=False))
    return _unique(plural)


def tags_of(data: Mapping[str, Any]) -> tuple[str, ...]:
    """Document#populate_tags: a singular `tag` wins over `tags`."""
    if data.get("tag") is not None:
        return _unique(as_list(data.get("tag"), split=False))
    return _unique(as_list(data.get("tags"), split=True))
