"""Polls the site's Atom or RSS feed and hands each new entry on as a `Post`, once.

For sites whose files Herald cannot see. The feed is fetched every `poll_s` with a
conditional GET (`If-None-Match` / `If-Modified-Since`), size-capped and time-bounded, and
parsed with feedparser. Entries are keyed by their id (then link) as `Post.path`
`feed:<id>`, and recorded in the post log exactly as the file watcher records files: the
very first good poll records every entry silently; after that an entry never seen is
announced once, and a changed entry is the same post. A broken or truncated feed is
logged and fetched again at the next poll; what was seen stays seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any
from urllib.parse import urljoin, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import aiohttp
import feedparser

from bot.errors import ConfigError, HeraldError
from bot.models import Post
from bot.settings import Settings, Site
from bot.sources.feed_html import convert, html_text, text_to_markdown
from bot.sources.jekyll.reader import BreakingRules, breaking_rules
from bot.sources.jekyll.rules import titleize
from bot.sources.seen import OnPost, SeenPosts, announce, utc_now

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

KEY_PREFIX = "feed:"
BASELINE_KEY = "feed.baseline_done"
# The digest of the last document read whole: the same bytes again (a server that ignores
# conditional GETs, or a rebuild that changed the ETag only) are not parsed again.
DIGEST_KEY = "feed.document"
MAX_BYTES = 5 * 1024 * 1024
FETCH_TIMEOUT_S = 30.0
USER_AGENT = "Herald (+https://github.com/herald-news; feed reader)"
ACCEPT = (
    "application/atom+xml, application/rss+xml, application/rdf+xml;q=0.9, "
    "application/xml;q=0.9, text/xml;q=0.8, */*;q=0.5"
)
TITLE_CHARS = 80
# A complete document ends with its root's end tag; a cut-off body does not.
_CLOSED = re.compile(rb"</(?:[\w.-]+:)?(?:feed|rss|RDF)\s*>\s*(?:<!--.*?-->\s*)*\Z", re.S)
_HTML_TYPES = ("text/html", "application/xhtml+xml", "html", "xhtml")


class FeedUnavailable(HeraldError):
    """The feed could not be fetched or read this time; the message says why."""


@dataclass(frozen=True)
class FeedEntry:
    """One entry as a post, with a version that changes whenever the entry does."""

    post: Post
    version: str


@dataclass(frozen=True)
class ParsedFeed:
    """What one feed document gave: the site's title and link, entries, and any problem."""

    title: str
    link: str | None
    entries: tuple[FeedEntry, ...] = ()
    problem: str | None = None  # set: the document is not to be used (broken, truncated)
    warning: str | None = None  # the document has XML errors but is complete: read leniently
    skipped: tuple[str, ...] = ()  # entries left out, with the reason


@dataclass(frozen=True)
class Fetched:
    """One answer of the feed's server: 200 with a body, or 304 (unchanged)."""

    status: int
    body: bytes = b""
    etag: str | None = None
    last_modified: str | None = None
    url: str = ""
    content_type: str | None = None


# -- the pure part: a document → entries ------------------------------------------------


def _is_html(detail: Any) -> bool:
    kind = str((detail or {}).get("type") or "text/html")
    return kind.startswith(_HTML_TYPES)


def _first_paragraph(markdown: str) -> str:
    """The first block with text (not an image alone): the excerpt when there is no summary."""
    for block in markdown.split("\n\n"):
        if block.strip() and not block.lstrip().startswith("!["):
            return block.strip()
    return markdown.strip()


def _base(detail: Any, link: str) -> str:
    """Where a value's relative links start: its xml:base or the feed's URL, else the link."""
    return str((detail or {}).get("base") or "") or link


def _media_image(entry: Any, base_url: str) -> str | None:
    """media:thumbnail, else media:content, else an image enclosure, made absolute."""
    for thumb in entry.get("media_thumbnail") or ():
        if thumb.get("url"):
            return urljoin(base_url, str(thumb["url"]))
    for media in entry.get("media_content") or ():
        kind = str(media.get("medium") or media.get("type") or "image")
        if media.get("url") and kind.startswith("image"):
            return urljoin(base_url, str(media["url"]))
    for enclosure in entry.get("enclosures") or ():
        if enclosure.get("href") and str(enclosure.get("type") or "").startswith("image/"):
            return urljoin(base_url, str(enclosure["href"]))
    return None


def _date(entry: Any, tz: tzinfo, now: datetime) -> tuple[datetime, str]:
    """The entry's date in the site's zone, and how it was written (empty when missing)."""
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        stamp = entry.get(key)
        if stamp:
            y, mo, d, h, mi, sec = stamp[:6]
            when = datetime(y, mo, d, h, mi, sec, tzinfo=UTC)
            return when.astimezone(tz), time.strftime("%FT%T", stamp)
    return now.astimezone(tz), ""


def _cut(text: str, limit: int) -> str:
    """At most `limit` characters, cut at a word boundary, with … when cut."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0] if " " in text[: limit - 1] else text[: limit - 1]
    return cut.rstrip(" ,;:.-") + "…"


def _slug(link: str) -> str:
    last = urlsplit(link).path.rstrip("/").rsplit("/", 1)[-1]
    return last.rsplit(".", 1)[0] if "." in last else last


def entry_post(
    entry: Any, *, base_url: str, tz: tzinfo, rules: BreakingRules, now: datetime
) -> FeedEntry | str:
    """One feedparser entry as a post, or the reason it cannot be one."""
    ident = str(entry.get("id") or "").strip()
    link = str(entry.get("link") or "").strip()
    raw_title = str(entry.get("title") or "")
    if not link:
        return f"entry {ident or raw_title!r} has no link"
    link = urljoin(base_url, link)
    if urlsplit(link).scheme not in ("http", "https"):
        return f"entry {ident or raw_title!r} links to {link!r}, not an http(s) page"
    contents = [c for c in entry.get("content") or () if str(c.get("value") or "").strip()]
    content = contents[0] if contents else None
    summary = str(entry.get("summary") or "")
    summary_detail = entry.get("summary_detail")
    main, detail = (str(content["value"]), content) if content else (summary, summary_detail)
    found: str | None = None
    if not main:
        body = lead = ""
    elif _is_html(detail):
        read = convert(main, base_url=_base(detail, link))
        body, lead, found = read.markdown, read.lead, read.image
    else:
        body = text_to_markdown(main)
        lead = _first_paragraph(body)
    excerpt = lead
    if content is not None and summary.strip() and summary.strip() != main.strip():
        if _is_html(summary_detail):
            read = convert(summary, base_url=_base(summary_detail, link))
            excerpt, found = read.markdown, found or read.image
        else:
            excerpt = text_to_markdown(summary)
    title = html_text(raw_title) if _is_html(entry.get("title_detail")) else raw_title
    title = " ".join(title.split())
    if not title:
        words = html_text(main) if _is_html(detail) else " ".join(main.split())
        title = _cut(words, TITLE_CHARS) or titleize(_slug(link)) or link
    terms = (str(t.get("term") or t.get("label") or "").strip() for t in entry.get("tags") or ())
    categories = tuple(dict.fromkeys(t for t in terms if t))
    when, written = _date(entry, tz, now)
    breaking, shown, label = rules.apply({}, title, categories, ())
    image = _media_image(entry, link) or found
    author = str(entry.get("author") or "").strip() or None
    post = Post(
        path=KEY_PREFIX + (ident or link),
        slug=_slug(link),
        title=shown,
        date=when,
        url=link,
        body=body,
        excerpt=excerpt,
        author=author,
        categories=categories,
        image=image,
        breaking=breaking,
        label=label,
    )
    # What the feed says about the entry, not what `now` filled in for a missing date.
    facts = [ident, link, raw_title, written, body, excerpt, categories, image, author]
    digest = hashlib.blake2b(json.dumps(facts).encode(), digest_size=12).hexdigest()
    return FeedEntry(post, f"entry:{digest}")


def parse_feed(
    body: bytes,
    *,
    url: str,
    tz: tzinfo,
    rules: BreakingRules,
    now: datetime,
    content_type: str | None = None,
) -> ParsedFeed:
    """A feed document (Atom, RSS, RDF) → its entries as posts; pure of I/O."""
    headers = {"content-location": url, "content-type": content_type or "application/xml"}
    # A stream, never bytes or str: feedparser opens strings that look like paths or URLs.
    # Not sanitized nor resolved by feedparser (each costs a parse of every HTML value): the
    # HTML is reduced to Markdown here, links resolved against each value's own base.
    doc = feedparser.parse(
        io.BytesIO(body),
        response_headers=headers,
        sanitize_html=False,
        resolve_relative_uris=False,
    )
    meta = doc.get("feed") or {}
    title = " ".join(str(meta.get("title") or "").split())
    if _is_html(meta.get("title_detail")):
        title = html_text(title)
    link = str(meta.get("link") or "").strip() or None
    if not doc.get("version"):
        reason = doc.get("bozo_exception")
        detail = f" ({reason})" if reason else ""
        return ParsedFeed(title, link, problem=f"is not an Atom or RSS feed{detail}")
    warning = None
    error = doc.get("bozo_exception") if doc.get("bozo") else None
    if error is not None and not isinstance(error, feedparser.ThingsNobodyCaresAboutButMe):
        if not _CLOSED.search(body[-4096:]):
            return ParsedFeed(title, link, problem=f"is cut off or broken ({error})")
        warning = f"has XML errors ({error}); read leniently"
    entries: list[FeedEntry] = []
    skipped: list[str] = []
    for entry in doc.get("entries") or ():
        try:
            made = entry_post(entry, base_url=url, tz=tz, rules=rules, now=now)
        except Exception as exc:  # a bug met by one odd entry must not stop the feed
            log.debug("feed entry %r could not be read", entry.get("id"), exc_info=True)
            made = f"entry {entry.get('id') or entry.get('link')!r} cannot be read ({exc!r})"
        if isinstance(made, str):
            skipped.append(made)
        else:
            entries.append(made)
    return ParsedFeed(title, link, tuple(entries), warning=warning, skipped=tuple(skipped))


def feed_site(settings: Settings, feed: ParsedFeed, feed_url: str) -> Site:
    """The site as its feed describes it: HERALD_SITE_URL and HERALD_TIMEZONE win."""
    parts = urlsplit(feed_url)
    url = (settings.site_url or feed.link or f"{parts.scheme}://{parts.netloc}").rstrip("/")
    tz_name = settings.timezone or "UTC"
    try:
        tz = ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(
            f"HERALD_TIMEZONE={tz_name!r} is unknown; use an IANA name such as Europe/Berlin"
        ) from exc
    return Site(
        root=settings.site_dir, url=url, tz=tz, permalink="date", title=feed.title or parts.netloc
    )


# -- the I/O part ------------------------------------------------------------------------


def http_session(timeout_s: float = FETCH_TIMEOUT_S) -> aiohttp.ClientSession:
    """The client the feed (and the publish gate) use: bounded in time, named."""
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=timeout_s, sock_connect=min(timeout_s, 10.0)),
        headers={"User-Agent": USER_AGENT},
    )


async def fetch_feed(
    session: aiohttp.ClientSession,
    url: str,
    *,
    etag: str | None = None,
    last_modified: str | None = None,
    max_bytes: int = MAX_BYTES,
) -> Fetched:
    """GET the feed, conditionally; FeedUnavailable says why there is no usable answer."""
    headers = {"Accept": ACCEPT}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    try:
        async with session.get(url, headers=headers) as resp:
            if resp.status == 304:
                return Fetched(304, etag=etag, last_modified=last_modified, url=str(resp.url))
            if resp.status != 200:
                raise FeedUnavailable(f"answered HTTP {resp.status} {resp.reason or ''}".strip())
            too_big = f"is larger than {max_bytes / 2**20:g} MB"
            if resp.content_length is not None and resp.content_length > max_bytes:
                raise FeedUnavailable(too_big)
            body = bytearray()
            async for chunk in resp.content.iter_chunked(64 * 1024):
                body += chunk
                if len(body) > max_bytes:
                    raise FeedUnavailable(too_big)
            return Fetched(
                200,
                bytes(body),
                etag=resp.headers.get("ETag"),
                last_modified=resp.headers.get("Last-Modified"),
                url=str(resp.url),
                content_type=resp.headers.get("Content-Type"),
            )
    except (aiohttp.ClientError, TimeoutError) as exc:
        reason = str(exc) or type(exc).__name__
        raise FeedUnavailable(f"cannot be fetched ({reason})") from exc


async def load_feed_site(settings: Settings, stop: asyncio.Event) -> Site | None:
    """Fetch the feed until it answers (or `stop`): the site's title and URL come from it."""
    url = settings.feed_url
    if url is None:
        raise ConfigError("HERALD_FEED_URL is not set")
    delay_s = 2.0
    async with http_session() as session:
        while not stop.is_set():
            try:
                fetched = await fetch_feed(session, url)
                feed = await asyncio.to_thread(
                    parse_feed,
                    fetched.body,
                    url=fetched.url or url,
                    tz=UTC,
                    rules=BreakingRules(),
                    now=utc_now(),
                    content_type=fetched.content_type,
                )
                if feed.problem is None:
                    return feed_site(settings, feed, url)
                reason = feed.problem
            except FeedUnavailable as exc:
                reason = str(exc)
            log.warning("feed %s %s; trying again in %.0f s", url, reason, delay_s)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay_s)
            delay_s = min(delay_s * 2, 60.0)
    return None


class FeedPoller:
    """Turns the feed into a stream of new posts for `on_post`."""

    def __init__(
        self,
        url: str,
        site: Site,
        posts: SeenPosts,
        on_post: OnPost,
        *,
        poll_s: float,
        clock: Clock = utc_now,
        max_bytes: int = MAX_BYTES,
        timeout_s: float = FETCH_TIMEOUT_S,
    ) -> None:
        self.url = url
        self.site = site
        self.rules = breaking_rules(site)
        self._posts = posts
        self._on_post = on_post
        self._poll_s = poll_s
        self._clock = clock
        self._max_bytes = max_bytes
        self._timeout_s = timeout_s
        self._etag: str | None = None
        self._last_modified: str | None = None
        self._versions: dict[str, str] = {}  # feed:<id> → version of the entry recorded
        self._held: dict[str, FeedEntry] = {}  # future-dated entries, by key
        self._baseline = False
        self._failing: str | None = None  # the reason of the current spell of failures
        self._told: set[str] = set()  # warnings already logged (skipped entries, lenient reads)
        self._digest = ""  # of the last document whose entries were all recorded
        self.polls = 0  # answers handled (200 or 304), for tests and health

    async def check(self) -> str | None:
        """The health check of the feed part: None while the last poll worked."""
        return None if self._failing is None else f"feed {self._failing}"

    async def start(self) -> None:
        """Hand on posts left pending by a stop; learn which entries are recorded."""
        self._baseline = await self._posts.get_meta(BASELINE_KEY) is None
        self._digest = await self._posts.get_meta(DIGEST_KEY) or ""
        for post_id, post in await self._posts.pending():
            log.info("post %s was recorded but not queued before a stop; queuing it now", post.path)
            await self._announce(post_id, post)
        known = await self._posts.file_versions()
        self._versions = {k: v for k, v in known.items() if k.startswith(KEY_PREFIX)}

    async def poll(self, session: aiohttp.ClientSession, stop: asyncio.Event | None = None) -> bool:
        """Fetch once and record what is new; False when the feed could not be used.

        A fetch still running when `stop` is set is abandoned (recording never is).
        """
        try:
            fetched = await self._fetch(session, stop)
        except FeedUnavailable as exc:
            self._fail(str(exc))
            return False
        if fetched is None:
            return False
        digest = hashlib.blake2b(fetched.body, digest_size=16).hexdigest()
        if fetched.status == 304 or digest == self._digest:
            self._etag, self._last_modified = fetched.etag, fetched.last_modified
            self._ok()
            return True
        now = self._clock()
        try:
            feed = await asyncio.to_thread(
                parse_feed,
                fetched.body,
                url=fetched.url or self.url,
                tz=self.site.tz,
                rules=self.rules,
                now=now,
                content_type=fetched.content_type,
            )
        except Exception as exc:  # a parser bug met by one odd document must not stop us
            log.debug("parsing feed %s failed", self.url, exc_info=True)
            self._fail(f"cannot be parsed ({type(exc).__name__}: {exc})")
            return False
        if feed.problem is not None:
            self._fail(feed.problem)  # validators kept: the next poll fetches it whole
            return False
        for note in (feed.warning, *feed.skipped):
            if note is not None and note not in self._told:
                self._told.add(note)
                log.warning("feed %s: %s", self.url, note)
        try:
            await self._absorb(feed.entries, now)
        except Exception:
            log.exception(
                "feed %s: recording its entries failed; trying at the next poll", self.url
            )
            self._failing = "entries could not be recorded"
            return False
        self._etag, self._last_modified = fetched.etag, fetched.last_modified
        self._digest = digest
        # Kept for a restart only when nothing is held: held entries live in memory alone.
        await self._posts.set_meta(DIGEST_KEY, "" if self._held else digest)
        self._ok()
        return True

    async def _fetch(
        self, session: aiohttp.ClientSession, stop: asyncio.Event | None
    ) -> Fetched | None:
        """The feed's answer, or None when `stop` came first."""
        fetch = asyncio.ensure_future(
            fetch_feed(
                session,
                self.url,
                etag=self._etag,
                last_modified=self._last_modified,
                max_bytes=self._max_bytes,
            )
        )
        waiters: set[asyncio.Future[Any]] = {fetch}
        stopping = asyncio.ensure_future(stop.wait()) if stop is not None else None
        if stopping is not None:
            waiters.add(stopping)
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if stopping is not None:
                stopping.cancel()
            if not fetch.done():
                fetch.cancel()
        return fetch.result() if fetch.done() and not fetch.cancelled() else None

    def _fail(self, reason: str) -> None:
        if reason != self._failing:
            log.warning(
                "feed %s %s; posts already seen stay seen; trying again in %g s",
                self.url,
                reason,
                self._poll_s,
            )
        self._failing = reason

    def _ok(self) -> None:
        self.polls += 1
        if self._failing is not None:
            log.info("feed %s can be read again", self.url)
        self._failing = None

    async def _absorb(self, entries: Sequence[FeedEntry], now: datetime) -> None:
        """Record changed entries; hold future-dated ones; announce the new ones."""
        changed = [e for e in entries if self._versions.get(e.post.path) != e.version]
        self._held = {}
        ready = []
        for entry in changed:
            if entry.post.date > now:
                if entry.post.path not in self._held:
                    log.info(
                        "feed entry %s is dated %s: held until then",
                        entry.post.path,
                        entry.post.date.isoformat(),
                    )
                self._held[entry.post.path] = entry
            else:
                ready.append(entry)
        await self._record(ready, now)

    async def _record(self, entries: Sequence[FeedEntry], now: datetime) -> None:
        if not entries and not self._baseline:
            return
        fresh = await self._posts.record(
            [e.post for e in entries],
            announced=not self._baseline,
            now=now,
            versions={e.post.path: e.version for e in entries},
        )
        self._versions.update({e.post.path: e.version for e in entries})
        if self._baseline:
            await self._posts.set_meta(BASELINE_KEY, now.isoformat())
            self._baseline = False
            log.info("feed: first start: %d existing entries recorded, none announced", len(fresh))
            return
        for post_id, post in fresh:
            await self._announce(post_id, post)

    async def _announce(self, post_id: int, post: Post) -> None:
        await announce(self._posts, self._on_post, post_id, post)

    async def _release_due(self) -> None:
        """Record the held entries whose time has come."""
        now = self._clock()
        due = [e for e in self._held.values() if e.post.date <= now]
        if not due:
            return
        for entry in due:
            del self._held[entry.post.path]
        try:
            await self._record(due, now)
        except Exception:
            log.exception("feed: recording %d entries failed; trying at the next poll", len(due))

    async def run(self, stop: asyncio.Event, ready: asyncio.Event | None = None) -> None:
        """Poll, signal `ready` after the first poll, then poll every `poll_s` until `stop`."""
        async with http_session(self._timeout_s) as session:
            await self.start()
            await self.poll(session, stop)
            log.info("following feed %s every %g s", self.url, self._poll_s)
            if ready is not None:
                ready.set()
            next_poll_s = time.monotonic() + self._poll_s
            while not stop.is_set():
                now = self._clock()
                delays = [(e.post.date - now).total_seconds() for e in self._held.values()]
                wait_s = min([next_poll_s - time.monotonic(), *delays])
                if wait_s > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), wait_s)
                if stop.is_set():
                    return
                await self._release_due()
                if time.monotonic() >= next_poll_s:
                    await self.poll(session, stop)
                    next_poll_s = time.monotonic() + self._poll_s
