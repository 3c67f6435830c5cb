"""Watches the site's `_posts/` folders and hands each newly published post on, once.

Like Jekyll, it reads `_posts/` in the site root and in every site folder Jekyll walks
(`news/_posts/`: posts in the category `news`); those folders are watched too, so a new
`<folder>/_posts/` is seen as it appears.

The folder watch (watchfiles, no polling loop) is set up first, then a full scan; from then
on every change comes as an event. Broken files are logged once per version and retried
when they change; future-dated posts are held until their time; a file still being written
is left until it is complete and parses.

An announced post is withdrawn (its alerts deleted) when its file says `published: false`,
or when its file is deleted and, after a short grace, no rename took its place (the post
log moves a renamed post's path when the new file is recorded, so `withdraw` of the old path
then finds nothing). Many files gone at once look like an accident (a folder moved, a bad
checkout): they are not withdrawn, and the log says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import logging
import os
import stat
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Mapping,
    Sequence,
)
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from watchfiles import Change, awatch

from bot.errors import PostError
from bot.models import Post
from bot.settings import Site
from bot.sources.jekyll import rules as jekyll
from bot.sources.jekyll.reader import breaking_rules, is_post_path, parse_post
from bot.sources.seen import OnPost, SeenPosts, announce, utc_now

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

BASELINE_KEY = "watcher.baseline_done"
# A file that fails to parse and changed this recently may still be being written.
SETTLE_S = 1.0
SCAN_CHUNK = 1000
REWATCH_S = 2.0  # how often to check that the watched folder is still the same folder
# Posts whose recording failed (a locked or failing database) are read again after this.
RETRY_S = 30.0
# A read that failed for a passing reason (TRANSIENT_ERRNOS) is tried again after this.
AGAIN_S = 1.0
# A deleted post file is withdrawn this long after, if no rename took its place meanwhile.
GONE_S = 3.0
# More post files than this gone within one grace: not withdrawn (a folder moved, a bad
# checkout); withdraw posts one by one, or with `published: false`.
MASS_GONE = 20
# The process or system ran out of descriptors or memory, or the file was busy: it is the
# moment, not the file, so the file is read again soon rather than logged as broken.
TRANSIENT_ERRNOS = frozenset(
    {
        errno.EMFILE,
        errno.ENFILE,
        errno.EAGAIN,
        errno.EWOULDBLOCK,
        errno.EINTR,
        errno.ENOMEM,
        errno.ENOBUFS,
        errno.EBUSY,
        errno.ETIMEDOUT,
    }
)


Changes = set[tuple[Change, str]]
Outcome = Literal["stopped", "replaced", "new folders"]


class FolderGone(Exception):
    """A folder to watch went away before its watch was in place."""


@contextlib.asynccontextmanager
async def folder_changes(
    folders: Sequence[Path], stop: asyncio.Event
) -> AsyncIterator[AsyncIterator[Changes]]:
    """Batches of changes in `folders` (each watched alone, not its subfolders), with the OS
    watch already in place on entry.

    Not recursive, because a recursive watch follows symlinks: with `ln -s / _posts/root`
    it would watch the whole machine (or fail to start). The caller lists the real folders.

    watchfiles sets its watch up in the generator's first step, before that step first
    waits; running that step here, not at the first `async for` turn, is what makes
    "entered" mean "watching": every change from then on comes in a batch. A batch may be
    empty (a timeout turn), so callers get to look at the folder itself regularly.
    """
    closing = asyncio.Event()  # `stop`, or leaving this block (awatch also sets it if cancelled)
    relay = asyncio.ensure_future(stop.wait())
    relay.add_done_callback(lambda _: closing.set())
    batches = awatch(
        *folders,
        stop_event=closing,
        step=30,
        debounce=400,
        rust_timeout=int(REWATCH_S * 1000),
        yield_on_timeout=True,
        recursive=False,
    )
    first = asyncio.ensure_future(anext(batches))
    await asyncio.sleep(0)  # one loop turn: that first step runs up to its wait
    try:
        if first.done() and (error := first.exception()) is not None:
            if isinstance(error, FileNotFoundError):
                raise FolderGone(str(error)) from error
            raise error  # the watch could not be set up

        async def turns() -> AsyncGenerator[Changes]:
            try:
                yield await first
            except StopAsyncIteration:  # stopped before the first turn
                return
            async for changes in batches:
                yield changes

        following = turns()
        try:
            yield following
        finally:
            await following.aclose()
    finally:
        closing.set()
        relay.cancel()
        if not first.done():
            with contextlib.suppress(Exception):  # leaving anyway; StopAsyncIteration at best
                await first
        await batches.aclose()


@dataclass(frozen=True)
class FileState:
    """What a file's last read gave: its version, and the reason when it was broken."""

    version: tuple[int, int]  # (mtime_ns, size)
    reason: str | None = None


@dataclass(frozen=True)
class Reading:
    """One look at one file: the post, or why there is none."""

    rel: str
    version: tuple[int, int] = (0, 0)  # (mtime_ns, size)
    post: Post | None = None
    reason: str | None = None
    missing: bool = False
    unchanged: bool = False  # same version as when its post was recorded: not parsed
    transient: bool = False  # the read failed for a passing reason: try again soon


def folder_identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of a folder, or None when it is gone; a replaced folder changes it."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def version_text(version: tuple[int, int], key: str | None = None) -> str:
    """The file version as stored with a recorded post, with its `content_key` when known."""
    text = f"{version[0]}:{version[1]}"
    return f"{text}:{key}" if key else text


def split_version(text: str) -> tuple[str, str | None]:
    """(file version, content key) of a stored version text; older texts have no key."""
    mtime, size, *key = text.split(":", 2)
    return f"{mtime}:{size}", key[0] if key else None


def content_key(post: Post) -> str:
    """What a rename keeps, whatever the new name makes of the date: the title and the body."""
    digest = hashlib.blake2b(digest_size=12)
    digest.update(post.title.encode())
    digest.update(b"\0")
    digest.update(post.body.encode())
    return digest.hexdigest()


def _walk_failed(exc: OSError) -> None:
    """os.walk's error hook: a folder that cannot be listed is said, not silently skipped."""
    if not isinstance(exc, FileNotFoundError):  # gone meanwhile: nothing to list
        log.warning(
            "cannot list folder %s (%s); its posts are read when they change",
            exc.filename,
            exc.strerror,
        )


def read_post(path: Path, rel: str, site: Site) -> Reading:
    """Read and parse one post file."""
    version = (0, 0)
    try:
        st = path.stat()
        version = (st.st_mtime_ns, st.st_size)
        raw = path.read_bytes()
    except FileNotFoundError:
        return Reading(rel, missing=True)
    except OSError as exc:
        transient = exc.errno in TRANSIENT_ERRNOS
        return Reading(rel, version, reason=f"cannot be read ({exc.strerror})", transient=transient)
    try:
        return Reading(rel, version, post=parse_post(rel, raw, site))
    except PostError as exc:
        return Reading(rel, version, reason=str(exc))
    except Exception as exc:  # a bug met by one odd file must not stop the watcher
        log.debug("parsing %s failed", rel, exc_info=True)
        return Reading(rel, version, reason=f"cannot be parsed ({type(exc).__name__}: {exc})")


class Watcher:
    """Turns the posts folder into a stream of new posts for `on_post`."""

    def __init__(
        self,
        site: Site,
        posts: SeenPosts,
        on_post: OnPost,
        *,
        clock: Clock = utc_now,
        settle_s: float = SETTLE_S,
        retry_s: float = RETRY_S,
        again_s: float = AGAIN_S,
        gone_s: float = GONE_S,
    ) -> None:
        breaking_rules(site)  # a bad `herald.breaking` in _config.yml is a ConfigError now
        self.site = site
        self.site_root = site.root.absolute()  # events name absolute paths
        self.root = site.posts_dir.absolute()
        self._posts = posts
        self._on_post = on_post
        self._clock = clock
        self._settle_s = settle_s
        self._retry_s = retry_s
        self._again_s = again_s
        self._gone_s = gone_s
        self._gone: dict[str, float] = {}  # rel path of a deleted file → epoch s to withdraw
        self._unreadable: set[str] = set()  # rel paths whose last read failed for a passing reason
        self._states: dict[str, FileState] = {}
        self._held: dict[str, datetime] = {}  # rel path → when it may be published
        self._recheck: dict[str, float] = {}  # rel path → epoch seconds to look again
        self._keys: dict[str, str] = {}  # rel path → content key of the post recorded from it
        self._wake = asyncio.Event()
        self._baseline = False

    def rel(self, path: Path) -> str:
        """The key of the post file at `path` (see rules.site_path); ValueError when no
        `_posts/` folder holds it."""
        key = jekyll.post_key(path.relative_to(self.site_root).as_posix())
        if key is None:
            raise ValueError(f"{path} is in no _posts/ folder")
        return key

    def _file(self, rel: str) -> Path:
        """The file of the post keyed `rel`."""
        return self.site_root / jekyll.site_path(rel)

    def _is_post(self, path: Path) -> bool:
        try:
            return is_post_path(self.rel(path), self.site)
        except ValueError:  # outside the site or its _posts/ folders
            return False

    def _linked_folder(self, site_rel: str, seen: dict[str, bool] | None = None) -> str | None:
        """The first folder on the way to `site_rel` (site-relative) that is a symlink, if any.

        Linked folders are never looked into (the scan's os.walk never descends them
        either): one may lead anywhere, `ln -s / _posts/root` to the whole machine. The
        site's own `_posts` may be a link, as it always could. `seen` caches the answer per
        folder over many files (os.path, not pathlib: a big scan asks this for every file).
        """
        folder = ""
        for n, part in enumerate(site_rel.split("/")[:-1]):
            folder = f"{folder}/{part}" if folder else part
            if n == 0 and part == jekyll.POSTS_DIR:
                continue
            linked = seen.get(folder) if seen is not None else None
            if linked is None:
                linked = os.path.islink(os.path.join(self.site_root, folder))
                if seen is not None:
                    seen[folder] = linked
            if linked:
                return folder
        return None

    def _link_problem(
        self, path: Path, rel: str, lstat: os.stat_result, seen: dict[str, bool]
    ) -> str | None:
        """Why a post file is not read through the links on its way, or None when it is."""
        folder = self._linked_folder(jekyll.site_path(rel), seen)
        if folder is not None:
            return f"it is inside {folder}/, a linked folder (never followed)"
        if not stat.S_ISLNK(lstat.st_mode):
            return None
        try:
            target = path.resolve(strict=True)
        except (OSError, RuntimeError):  # dangling or looping: reading it says so
            return None
        if target.is_relative_to(self.site.root.resolve()) or target.is_relative_to(
            self.root.resolve()
        ):
            return None
        return f"it is a link to {target}, outside the site (never followed)"

    async def scan(self) -> int:
        """Read every post file once; on the very first start, record them silently."""
        self._baseline = await self._posts.get_meta(BASELINE_KEY) is None
        for post_id, post in await self._posts.pending():
            log.info("post %s was recorded but not queued before a stop; queuing it now", post.path)
            await self._announce(post_id, post)
        paths = await asyncio.to_thread(self._list_files, self.site_root)
        known = await self._posts.file_versions()
        self._keys = {rel: key for rel, text in known.items() if (key := split_version(text)[1])}
        now = self._clock()
        fresh: list[tuple[int, Post]] = []
        drafts: list[Post] = []
        baseline_count = 0
        # In chunks, so a big site's bodies are never all in memory at once.
        for start in range(0, len(paths), SCAN_CHUNK):
            chunk = paths[start : start + SCAN_CHUNK]
            posts = self._absorb(await asyncio.to_thread(self._read_many, chunk, known))
            ready = [post for post in posts if self._classify(post, now)]
            drafts += [post for post in posts if not post.published]
            new = await self._record(ready, announced=not self._baseline, now=now)
            baseline_count += len(new) if self._baseline else 0
            fresh += [] if self._baseline else new
        if not self._baseline:
            await self._withdraw_drafts(drafts, now)
            self._gone_while_stopped(known, paths)
        self._wake.set()
        if self._baseline:
            await self._posts.set_meta(BASELINE_KEY, now.isoformat())
            log.info("first start: %d existing posts recorded, none announced", baseline_count)
            self._baseline = False
        else:
            for post_id, post in fresh:
                await self._announce(post_id, post)
        return len(paths)

    def _gone_while_stopped(self, known: Mapping[str, str], paths: Sequence[Path]) -> None:
        """Recorded post files not there at start are withdrawn (at once: the scan recorded
        the renames already), unless the folder looks wrong: empty, or most of them gone."""
        listed = {self.rel(path) for path in paths}
        gone = [rel for rel in known if rel not in listed]
        if not gone:
            return
        if not listed or len(gone) * 2 > len(known):
            log.warning(
                "%d of %d recorded post files are not in %s; none is withdrawn (is the site "
                "folder right?)",
                len(gone),
                len(known),
                self.root,
            )
            return
        at = time.time()
        self._gone.update({rel: at for rel in gone})

    async def _withdraw_drafts(self, posts: Sequence[Post], now: datetime) -> None:
        """Drafts (`published: false`) that were announced are withdrawn; the others are
        nothing to the post log."""
        for post in posts:
            try:
                if await self._posts.withdraw(post.path, now=now):
                    log.info("post %s is a draft again: withdrawn", post.path)
            except Exception:
                log.exception("withdrawing post %s failed; reading it again later", post.path)
                self._recheck[post.path] = time.time() + self._retry_s

    async def _withdraw_gone(self, due: Sequence[str], now: datetime) -> None:
        """Withdraw the posts whose files were deleted and are still gone after the grace."""
        if self._recheck or self._unreadable:  # a file read again soon may be a rename
            later = time.time() + self._gone_s
            self._gone.update({rel: later for rel in due})
            return
        gone = await asyncio.to_thread(self._still_gone, due)
        if len(gone) > MASS_GONE:
            log.warning(
                "%d post files were deleted at once; none is withdrawn (set `published: false`"
                " in a post to withdraw it)",
                len(gone),
            )
            return
        for rel in gone:
            try:
                if await self._posts.withdraw(rel, now=now):
                    log.info("post %s was deleted: withdrawn", rel)
            except Exception:
                log.exception("withdrawing deleted post %s failed; trying again", rel)
                self._gone[rel] = time.time() + self._retry_s

    def _still_gone(self, rels: Sequence[str]) -> list[str]:
        return [rel for rel in rels if not os.path.lexists(self._file(rel))]

    def _deleted(self, rel: str) -> None:
        """A post file went: forget it, and withdraw its post after the grace if still gone.

        Each deletion moves the others waiting on too: files deleted in one burst are looked
        at together, once the grace has passed after the last (many at once: none withdrawn).
        """
        self._forget(rel)
        at = time.time() + self._gone_s
        self._gone = dict.fromkeys([*self._gone, rel], at)
        self._wake.set()

    def _posts_trees(self, folder: Path) -> list[Path]:
        """The posts folders at or below `folder`: `folder` itself when a `_posts/` holds it,
        else the `_posts/` folders Jekyll finds in and below that site folder."""
        if folder == self.site_root:
            if not self.root.is_dir():
                log.warning("posts folder %s does not exist yet; waiting for it", self.root)
            start = ""
        else:
            start = folder.relative_to(self.site_root).as_posix()
            parts = start.split("/")
            if jekyll.POSTS_DIR in parts:
                return [folder]
            if not jekyll.walked_path(self.site.config, start):
                return []
        _, posts = jekyll.site_folders(self.site_root, self.site.config, start, _walk_failed)
        return [self.site_root / p for p in posts if (self.site_root / p).is_dir()]

    def _list_files(self, folder: Path) -> list[Path]:
        """Post files at or below `folder` (the site root: all of them)."""
        found: list[Path] = []
        for tree in self._posts_trees(folder):
            for dirpath, dirnames, filenames in os.walk(tree, onerror=_walk_failed):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "_")))
                here = Path(dirpath)
                found.extend(here / f for f in sorted(filenames) if self._is_post(here / f))
        return found

    def _read_many(
        self, paths: Iterable[Path], known: Mapping[str, str] | None = None
    ) -> list[Reading]:
        """Read and parse files, skipping those `known` at the same version.

        Pure of watcher state, so it can run in a worker thread.
        """
        readings = []
        linked: dict[str, bool] = {}
        for path in paths:
            rel = self.rel(path)
            try:
                st = os.lstat(path)
            except OSError:  # gone, or cannot be looked at: reading it says which
                readings.append(read_post(path, rel, self.site))
                continue
            problem = self._link_problem(path, rel, st, linked)
            if problem is not None:
                readings.append(Reading(rel, (st.st_mtime_ns, st.st_size), reason=problem))
                continue
            if known and rel in known:
                with contextlib.suppress(OSError):
                    if stat.S_ISLNK(st.st_mode):  # a link within the site: its target's version
                        st = path.stat()
                    if version_text((st.st_mtime_ns, st.st_size)) == split_version(known[rel])[0]:
                        readings.append(Reading(rel, (st.st_mtime_ns, st.st_size), unchanged=True))
                        continue
            readings.append(read_post(path, rel, self.site))
        return readings

    async def _record(
        self, posts: list[Post], *, announced: bool, now: datetime
    ) -> list[tuple[int, Post]]:
        """Record live posts, renames recognised; (id, post) of the new ones."""
        keys = {p.path: content_key(p) for p in posts}
        moved = self._moves(keys)
        fresh = await self._posts.record(
            posts,
            announced=announced,
            now=now,
            versions={
                p.path: version_text(self._states[p.path].version, keys[p.path]) for p in posts
            },
            moved=moved,
        )
        for old in moved.values():
            self._keys.pop(old, None)
        self._keys.update(keys)
        return fresh

    def _moves(self, keys: Mapping[str, str]) -> dict[str, str]:
        """New path → old path, for posts that are a recorded post's file under a new name.

        Same title and body as the post recorded from a file that is gone: a rename (or a
        delete and a re-add under another name). Path, URL and day + title miss this when
        the date comes from the file name and the new name has another date.
        """
        wanted: dict[str, list[str]] = {}
        for path, key in keys.items():
            if path not in self._keys:
                wanted.setdefault(key, []).append(path)
        moved: dict[str, str] = {}
        if not wanted:
            return moved
        for old, key in self._keys.items():
            if key in wanted and wanted[key] and not os.path.lexists(self._file(old)):
                moved[wanted[key].pop()] = old
        return moved

    def _absorb(self, readings: Iterable[Reading]) -> list[Post]:
        """Update file states from readings (in the event loop); returns the parsed posts."""
        posts = []
        for r in readings:
            if r.transient:
                self._try_again(r.rel, r.reason or "cannot be read")
                continue
            self._unreadable.discard(r.rel)
            if r.unchanged:
                self._states[r.rel] = FileState(r.version)
            elif r.missing:
                self._forget(r.rel)
            elif r.post is None:
                self._broken(r.rel, r.version, r.reason or "unknown problem")
            else:
                self._states[r.rel] = FileState(r.version)
                self._recheck.pop(r.rel, None)
                posts.append(r.post)
        return posts

    def _try_again(self, rel: str, reason: str) -> None:
        """A read failed for a passing reason (no descriptor free, …): read it again soon."""
        if rel not in self._unreadable:
            self._unreadable.add(rel)
            log.warning("post %s %s for now; reading it again in %g s", rel, reason, self._again_s)
        self._recheck[rel] = time.time() + self._again_s

    def _broken(self, rel: str, version: tuple[int, int], reason: str) -> None:
        before = self._states.get(rel)
        modified_s = version[0] / 1e9
        if 0 <= time.time() - modified_s < self._settle_s:
            # Probably half-written: look again once it has been quiet for a while.
            self._recheck[rel] = modified_s + self._settle_s
            return
        self._recheck.pop(rel, None)
        if before is None or before.version != version or before.reason != reason:
            log.warning("skipping post %s: %s", rel, reason)
        self._states[rel] = FileState(version, reason)

    def _forget(self, rel: str) -> None:
        self._states.pop(rel, None)
        self._unreadable.discard(rel)
        self._held.pop(rel, None)
        self._recheck.pop(rel, None)

    def _classify(self, post: Post, now: datetime) -> bool:
        """True when the post is live now; drafts are dropped, future posts held."""
        self._held.pop(post.path, None)
        if not post.published:
            log.debug("draft %s not announced", post.path)
            return False
        if post.date > now:
            self._held[post.path] = post.date
            log.info("post %s is dated %s: held until then", post.path, post.date.isoformat())
            return False
        return True

    async def _announce(self, post_id: int, post: Post) -> None:
        await announce(self._posts, self._on_post, post_id, post)

    async def handle(self, paths: Iterable[Path]) -> None:
        """Look at changed files: new live posts are recorded and announced."""
        posts = self._absorb(await asyncio.to_thread(self._read_many, list(paths)))
        now = self._clock()
        ready = [post for post in posts if self._classify(post, now)]
        self._wake.set()  # new held or half-written files may need an earlier timer
        try:
            fresh = await self._record(ready, announced=True, now=now)
        except Exception:
            log.exception("recording %d new posts failed; reading them again later", len(ready))
            for post in ready:
                self._recheck[post.path] = time.time() + self._retry_s
            self._wake.set()
            return
        for post_id, post in fresh:
            await self._announce(post_id, post)
        await self._withdraw_drafts([post for post in posts if not post.published], now)

    async def run(self, stop: asyncio.Event, ready: asyncio.Event | None = None) -> None:
        """Watch the folder, scan it, signal `ready`, then follow events until `stop` is set.

        The watch is in place before the scan lists the folder, so a post written at any
        moment of the start (or right after `ready`) is seen: by the scan or as an event.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        async with asyncio.TaskGroup() as tg:

            async def started() -> None:
                count = await self.scan()
                log.info("watching %s: %d post files", self.site_root, count)
                tg.create_task(self._timers(stop))
                if ready is not None:
                    ready.set()

            try:
                await self._events(stop, started)
            finally:
                self._wake.set()  # the timers see `stop` now, not at their next wake-up

    async def _events(self, stop: asyncio.Event, started: Callable[[], Awaitable[None]]) -> None:
        """Follow events; watch anew when a folder appears or the posts folder is replaced.

        (A replaced posts folder is a deploy or a checkout.) `started`, the first scan, runs
        once the first watch is in place; each later watch looks at the files again, so
        nothing written while it was being set up is missed. While the site's `_posts/` is
        gone the rest of the site is still watched, and its return is a new folder there.
        """
        first = True
        while True:
            identity = folder_identity(self.root)
            folders = await asyncio.to_thread(self._folders)
            outcome: Outcome = "replaced"
            if folders:
                try:
                    async with folder_changes(folders, stop) as turns:
                        if first:
                            await started()
                            first = False
                        else:
                            await self._rescan()
                        outcome = await self._follow(turns, identity, set(folders))
                except FolderGone:
                    if folder_identity(self.root) == identity:  # only a subfolder went
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(stop.wait(), REWATCH_S / 20)
                        if stop.is_set():
                            return
                        continue  # list the folders again
            if outcome == "stopped":
                return
            if outcome == "replaced":
                log.warning("posts folder %s was moved or replaced; watching it anew", self.root)
                while folder_identity(self.site_root) is None:  # wait for it, never create
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), REWATCH_S)
                    if stop.is_set():
                        return

    async def _follow(
        self, turns: AsyncIterator[Changes], identity: object, watched: set[Path]
    ) -> Outcome:
        """Handle events until `stop`, or until the watch must be set up anew."""
        async for changes in turns:
            for change, name in changes:
                if change == Change.deleted and self._is_post(Path(name)):
                    self._deleted(self.rel(Path(name)))
            changed = await asyncio.to_thread(self._changed_files, changes)
            if changed:
                await self.handle(changed)
            if folder_identity(self.root) != identity:
                return "replaced"
            new_folders = bool(changes) and await asyncio.to_thread(
                self._new_folders, changes, watched
            )
            if new_folders:
                return "new folders"
        return "stopped"

    def _folders(self) -> list[Path]:
        """The folders to watch: the site folders Jekyll walks (where a new `_posts/` may
        appear), and each posts folder and subfolder the scan reads.

        Never a linked folder (os.walk does not descend links); none when the site is gone.
        """
        if not self.site_root.is_dir():
            return []
        walked, _ = jekyll.site_folders(self.site_root, self.site.config, "", _walk_failed)
        found = [self.site_root / w if w else self.site_root for w in walked]
        for tree in self._posts_trees(self.site_root):
            for dirpath, dirnames, _ in os.walk(tree, onerror=_walk_failed):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "_")))
                found.append(Path(dirpath))
        return found

    def _new_folders(self, changes: Changes, watched: set[Path]) -> bool:
        """True when a batch added a folder that the watch must now include."""
        added = any(c == Change.added and Path(name).is_dir() for c, name in changes)
        return added and not set(self._folders()) <= watched

    async def _rescan(self) -> None:
        """Read the files that changed while no watch was in place; forget those gone."""
        paths = await asyncio.to_thread(self._list_files, self.site_root)
        listed = {self.rel(path) for path in paths}
        for rel in [rel for rel in self._states if rel not in listed]:
            self._deleted(rel)
        changed = await asyncio.to_thread(self._unseen, paths)
        if changed:
            await self.handle(changed)

    def _unseen(self, paths: Iterable[Path]) -> list[Path]:
        """Those of `paths` not yet read at their current version (only reads watcher state)."""
        unseen = []
        for path in paths:
            state = self._states.get(self.rel(path))
            try:
                st = path.stat()
            except OSError:
                continue
            if state is None or state.version != (st.st_mtime_ns, st.st_size):
                unseen.append(path)
        return unseen

    def _changed_files(self, changes: set[tuple[Change, str]]) -> list[Path]:
        """Post files to (re)read for a batch of events; a folder moved in is read whole."""
        changed: set[Path] = set()
        for change, name in changes:
            path = Path(name)
            if change == Change.deleted or not path.is_relative_to(self.site_root):
                continue
            if self._linked_folder(path.relative_to(self.site_root).as_posix()) is not None:
                continue  # beneath a linked folder: never ours
            if path.is_dir():
                if not path.is_symlink():
                    changed.update(self._list_files(path))
            elif self._is_post(path):
                changed.add(path)
        return sorted(changed)

    async def _timers(self, stop: asyncio.Event) -> None:
        """Release held posts at their time and re-read files that were mid-write."""
        while not stop.is_set():
            self._wake.clear()
            now = self._clock()
            epoch_s = time.time()
            due = [rel for rel, at in self._held.items() if at <= now]
            due += [rel for rel, at in self._recheck.items() if at <= epoch_s]
            delays = [(at - now).total_seconds() for at in self._held.values()]
            delays += [at - epoch_s for at in self._recheck.values()]
            gone = [rel for rel, at in self._gone.items() if at <= epoch_s]
            delays += [at - epoch_s for at in self._gone.values()]
            if gone:
                for rel in gone:
                    del self._gone[rel]
                await self._withdraw_gone(gone, now)
                continue
            if due:
                for rel in due:
                    self._held.pop(rel, None)
                    self._recheck.pop(rel, None)
                await self.handle(self._file(rel) for rel in due)
                continue
            # Held posts may sit for days: wake at least hourly in case the clock jumped.
            timeout = min([*delays, 3600.0])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=max(timeout, 0.01))
