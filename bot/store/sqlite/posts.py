"""Which posts Herald has seen and announced, so none is announced twice."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import aiosqlite

from bot.models import Post, Revision
from bot.store.postlog import (
    ANNOUNCED,
    BASELINE,
    PENDING,
    TOPIC_POSTS,
    Index,
    State,
    count_topics,
    post_from_json,
    post_to_json,
    revise,
    sort_out,
    visible,
)
from bot.store.sqlite.db import iso, transaction
from bot.store.sqlite.files import PostLogMarker

MIGRATIONS = [
    """
    CREATE TABLE posts (
        id INTEGER PRIMARY KEY,
        path TEXT NOT NULL,
        url TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        title TEXT NOT NULL,
        published_at TEXT NOT NULL,
        breaking INTEGER NOT NULL DEFAULT 0,
        first_seen_at TEXT NOT NULL,
        announced INTEGER NOT NULL DEFAULT 0,
        data TEXT NOT NULL
    );
    CREATE INDEX posts_path ON posts(path);
    CREATE INDEX posts_url ON posts(url);
    CREATE INDEX posts_fingerprint ON posts(fingerprint);
    CREATE INDEX posts_first_seen ON posts(first_seen_at);
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)
    """,
    # The file version behind each recorded post, so a restart skips unchanged files.
    "CREATE TABLE post_files (path TEXT PRIMARY KEY, version TEXT NOT NULL)",
    # Corrections: an announced post's revision counts up when what readers saw of it
    # changed (or it was withdrawn); `revised` is the revision whose correction is queued.
    """
    ALTER TABLE posts ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE posts ADD COLUMN revised INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE posts ADD COLUMN withdrawn INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE posts ADD COLUMN corrected_at TEXT;
    CREATE INDEX posts_unrevised ON posts(id) WHERE revision > revised;
    CREATE INDEX posts_corrected ON posts(corrected_at) WHERE corrected_at IS NOT NULL
    """,
]

_MATCH = "path = ? OR url = ? OR fingerprint = ?"


class PostLog:
    """The `posts` table: one row per post ever seen, however often it was edited or renamed."""

    def __init__(self, conn: aiosqlite.Connection, marker: PostLogMarker | None = None) -> None:
        self._conn = conn
        self._marker = marker  # left beside the database once it keeps a post log

    def _mark(self) -> None:
        if self._marker is not None:
            self._marker.write()

    async def kept(self) -> bool:
        """Whether a post log is kept here: posts recorded, or a note such as the baseline's."""
        async with self._conn.execute(
            "SELECT EXISTS(SELECT 1 FROM posts) OR EXISTS(SELECT 1 FROM meta)"
        ) as cur:
            row = await cur.fetchone()
        return bool(row and row[0])

    async def record(
        self,
        posts: Sequence[Post],
        *,
        announced: bool,
        now: datetime,
        versions: Mapping[str, str] | None = None,
        moved: Mapping[str, str] | None = None,
    ) -> list[tuple[int, Post]]:
        """Remember posts in one transaction; returns (id, post) of those never seen before.

        New posts are stored as pending announcement (or, with `announced=False`, as the
        silent baseline); `mark_announced` settles them once they are queued.

        `versions` maps a post's path to its file version, remembered for `file_versions`.

        A post is the same post when its path (an edit), its URL or its day and title (a
        rename) match one seen before, or else when `moved` maps its path to the path of one
        (a rename the caller recognised by content); the stored row then follows it to its
        new name, and a moved post's old file version is forgotten.

        An announced post whose visible content changed gets a new revision and
        `corrected_at`; a withdrawn one seen again is back, with a new revision too.
        """
        moved = moved or {}
        async with transaction(self._conn):
            index = await self._index(posts, list(moved.values()))
            found, inserts = sort_out(posts, index, moved)
            before = await self._states([row for row, _ in found])
            updates = [
                (p.path, p.url, p.fingerprint, p.title, post_to_json(p), added,
                 iso(now) if corrected else None, row)
                for row, p, added, corrected in revise(found, before)
            ]  # fmt: skip
            await self._conn.executemany(
                "UPDATE posts SET path = ?, url = ?, fingerprint = ?, title = ?, data = ?,"
                " revision = revision + ?, corrected_at = COALESCE(?, corrected_at),"
                " withdrawn = 0 WHERE id = ?",
                updates,
            )
            fresh = await self._insert(inserts, announced=announced, now=now)
            if versions:
                await self._conn.executemany(
                    "INSERT INTO post_files(path, version) VALUES (?, ?) "
                    "ON CONFLICT(path) DO UPDATE SET version = excluded.version",
                    [(p.path, versions[p.path]) for p in posts if p.path in versions],
                )
            if moved:
                await self._conn.executemany(
                    "DELETE FROM post_files WHERE path = ?", [(old,) for old in moved.values()]
                )
        if posts:
            self._mark()
        return fresh

    async def _states(self, ids: Sequence[int]) -> dict[int, State]:
        """id → (visible content, announced, withdrawn) of the rows about to be updated."""
        states: dict[int, State] = {}
        for start in range(0, len(ids), 500):  # SQLite's limit on parameters
            chunk = ids[start : start + 500]
            async with self._conn.execute(
                "SELECT id, data, announced, withdrawn FROM posts"
                f" WHERE id IN ({', '.join('?' * len(chunk))})",
                chunk,
            ) as cur:
                for r in await cur.fetchall():
                    states[int(r[0])] = (
                        visible(post_from_json(str(r[1]))),
                        int(r[2]) == ANNOUNCED,
                        bool(r[3]),
                    )
        return states

    async def _index(self, posts: Sequence[Post], paths: Sequence[str] = ()) -> Index:
        """path/url/fingerprint → id for the rows these posts (or these old `paths`) could match.

        A big batch (a start-up scan) reads the whole index once; a few posts look up theirs.
        """
        sql = "SELECT id, path, url, fingerprint FROM posts"
        args: list[str] = []
        if len(posts) + len(paths) <= 50:
            clauses = [f"({_MATCH})"] * len(posts) + ["path = ?"] * len(paths)
            sql += f" WHERE {' OR '.join(clauses) or '0'}"
            args = [v for p in posts for v in (p.path, p.url, p.fingerprint)] + list(paths)
        by_path: dict[str, int] = {}
        by_url: dict[str, int] = {}
        by_fingerprint: dict[str, int] = {}
        async with self._conn.execute(sql, args) as cur:
            async for row in cur:
                by_path[row[1]] = by_url[row[2]] = by_fingerprint[row[3]] = int(row[0])
        return by_path, by_url, by_fingerprint

    async def _insert(
        self, posts: Sequence[Post], *, announced: bool, now: datetime
    ) -> list[tuple[int, Post]]:
        """Insert new posts; (id, post) pairs in order (ids are consecutive in a transaction)."""
        if not posts:
            return []
        async with self._conn.execute("SELECT COALESCE(MAX(id), 0) FROM posts") as cur:
            row = await cur.fetchone()
        first_id = int(row[0]) + 1 if row else 1
        seen_at = now.astimezone(UTC).isoformat()
        state = PENDING if announced else BASELINE
        await self._conn.executemany(
            "INSERT INTO posts(id, path, url, fingerprint, title, published_at, breaking,"
            " first_seen_at, announced, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    first_id + n,
                    p.path,
                    p.url,
                    p.fingerprint,
                    p.title,
                    p.date.astimezone(UTC).isoformat(),
                    int(p.breaking),
                    seen_at,
                    state,
                    post_to_json(p),
                )
                for n, p in enumerate(posts)
            ],
        )
        return [(first_id + n, p) for n, p in enumerate(posts)]

    async def mark_announced(self, post_id: int) -> None:
        """The post's messages are queued: it is never announced again."""
        await self._conn.execute(
            "UPDATE posts SET announced = ? WHERE id = ?", (ANNOUNCED, post_id)
        )

    async def pending(self) -> list[tuple[int, Post]]:
        """Posts recorded as new whose announcement was not queued (a crash in between)."""
        async with self._conn.execute(
            "SELECT id, data FROM posts WHERE announced = ? ORDER BY id", (PENDING,)
        ) as cur:
            return [(int(r[0]), post_from_json(str(r[1]))) for r in await cur.fetchall()]

    async def file_versions(self) -> dict[str, str]:
        """Path → file version of every file whose post is recorded."""
        async with self._conn.execute("SELECT path, version FROM post_files") as cur:
            return {str(r[0]): str(r[1]) for r in await cur.fetchall()}

    async def announced_since(self, since: datetime, until: datetime) -> list[Post]:
        """Posts announced in [since, until), oldest first: the digest's content."""
        async with self._conn.execute(
            "SELECT data FROM posts WHERE announced = 1 AND withdrawn = 0"
            " AND first_seen_at >= ? AND first_seen_at < ? ORDER BY published_at, id",
            (since.astimezone(UTC).isoformat(), until.astimezone(UTC).isoformat()),
        ) as cur:
            return [post_from_json(str(r[0])) for r in await cur.fetchall()]

    async def latest(self, limit: int) -> list[Post]:
        """The newest posts by date, newest first (for /latest)."""
        async with self._conn.execute(
            "SELECT data FROM posts WHERE withdrawn = 0 ORDER BY published_at DESC, id DESC"
            " LIMIT ?",
            (limit,),
        ) as cur:
            return [post_from_json(str(r[0])) for r in await cur.fetchall()]

    async def withdraw(self, path: str, *, now: datetime) -> bool:
        """The announced post recorded from `path` is withdrawn: a new revision, once."""
        cur = await self._conn.execute(
            "UPDATE posts SET withdrawn = 1, revision = revision + 1"
            " WHERE path = ? AND announced = ? AND withdrawn = 0",
            (path, ANNOUNCED),
        )
        return cur.rowcount > 0

    async def revisions(self) -> list[Revision]:
        """Announced posts with a revision whose correction is not queued yet, oldest first."""
        async with self._conn.execute(
            "SELECT id, data, revision, withdrawn FROM posts"
            " WHERE revision > revised AND announced = ? ORDER BY id",
            (ANNOUNCED,),
        ) as cur:
            return [
                Revision(
                    post_id=int(r[0]),
                    post=post_from_json(str(r[1])),
                    revision=int(r[2]),
                    withdrawn=bool(r[3]),
                )
                for r in await cur.fetchall()
            ]

    async def mark_revised(self, post_id: int, revision: int) -> None:
        """The correction for `revision` is queued (an older revision number is ignored)."""
        await self._conn.execute(
            "UPDATE posts SET revised = ? WHERE id = ? AND revised < ?",
            (revision, post_id, revision),
        )

    async def corrected_since(self, since: datetime, until: datetime) -> list[Post]:
        """Posts (not withdrawn) corrected in [since, until), oldest first."""
        async with self._conn.execute(
            "SELECT data FROM posts WHERE corrected_at >= ? AND corrected_at < ?"
            " AND withdrawn = 0 ORDER BY corrected_at, id",
            (iso(since), iso(until)),
        ) as cur:
            return [post_from_json(str(r[0])) for r in await cur.fetchall()]

    async def topic_counts(self, limit: int) -> list[tuple[str, int]]:
        """Categories and tags of the newest posts (not withdrawn), most used first."""
        async with self._conn.execute(
            "SELECT data FROM posts WHERE withdrawn = 0"
            " ORDER BY published_at DESC, id DESC LIMIT ?",
            (TOPIC_POSTS,),
        ) as cur:
            rows = list(await cur.fetchall())
        return count_topics((post_from_json(str(r[0])) for r in reversed(rows)), limit)

    async def get_meta(self, key: str) -> str | None:
        async with self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)) as cur:
            row = await cur.fetchone()
        return str(row[0]) if row else None

    async def set_meta(self, key: str, value: str) -> None:
        await self._conn.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )
        self._mark()
