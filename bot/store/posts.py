"""Which posts Herald has seen and announced, so none is announced twice."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime

import aiosqlite

from bot.models import Post
from bot.store.db import transaction

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
]

_MATCH = "path = ? OR url = ? OR fingerprint = ?"

# posts.announced: a baseline post never goes out; a pending one is queued at the next chance.
BASELINE, ANNOUNCED, PENDING = 0, 1, 2


def post_to_json(post: Post) -> str:
    data = dataclasses.asdict(post)
    data["date"] = post.date.isoformat()
    return json.dumps(data, ensure_ascii=False)


def post_from_json(text: str) -> Post:
    data = json.loads(text)
    data["date"] = datetime.fromisoformat(data["date"])
    data["categories"] = tuple(data["categories"])
    data["tags"] = tuple(data["tags"])
    return Post(**data)


class PostLog:
    """The `posts` table: one row per post ever seen, however often it was edited or renamed."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def record(
        self,
        posts: Sequence[Post],
        *,
        announced: bool,
        now: datetime,
        versions: Mapping[str, str] | None = None,
    ) -> list[tuple[int, Post]]:
        """Remember posts in one transaction; returns (id, post) of those never seen before.

        New posts are stored as pending announcement (or, with `announced=False`, as the
        silent baseline); `mark_announced` settles them once they are queued.

        `versions` maps a post's path to its file version, remembered for `file_versions`.

        A post is the same post when its path (an edit), its URL or its day and title (a
        rename) match one seen before; the stored row then follows it to its new name.
        """
        fresh: list[tuple[int, Post]] = []
        async with transaction(self._conn):
            for post in posts:
                post_id = await self._record_one(post, announced=announced, now=now)
                if post_id is not None:
                    fresh.append((post_id, post))
            if versions:
                await self._conn.executemany(
                    "INSERT INTO post_files(path, version) VALUES (?, ?) "
                    "ON CONFLICT(path) DO UPDATE SET version = excluded.version",
                    [(p.path, versions[p.path]) for p in posts if p.path in versions],
                )
        return fresh

    async def _record_one(self, post: Post, *, announced: bool, now: datetime) -> int | None:
        key = (post.path, post.url, post.fingerprint)
        data = post_to_json(post)
        async with self._conn.execute(f"SELECT id, data FROM posts WHERE {_MATCH}", key) as cur:
            rows = list(await cur.fetchall())
        if len(rows) == 1 and rows[0][1] != data:
            await self._conn.execute(
                "UPDATE posts SET path = ?, url = ?, fingerprint = ?, title = ?, data = ? "
                "WHERE id = ?",
                (*key, post.title, data, rows[0][0]),
            )
        if rows:
            return None
        cur = await self._conn.execute(
            "INSERT INTO posts(path, url, fingerprint, title, published_at, breaking,"
            " first_seen_at, announced, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                *key,
                post.title,
                post.date.astimezone(UTC).isoformat(),
                int(post.breaking),
                now.astimezone(UTC).isoformat(),
                PENDING if announced else BASELINE,
                data,
            ),
        )
        return cur.lastrowid

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

    async def forget_file(self, path: str) -> None:
        """A file went away or stopped being a live post; its post stays known."""
        await self._conn.execute("DELETE FROM post_files WHERE path = ?", (path,))

    async def count(self) -> int:
        async with self._conn.execute("SELECT COUNT(*) FROM posts") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def announced_since(self, since: datetime, until: datetime) -> list[Post]:
        """Posts announced in [since, until), oldest first: the digest's content."""
        async with self._conn.execute(
            "SELECT data FROM posts WHERE announced = 1 AND first_seen_at >= ? "
            "AND first_seen_at < ? ORDER BY published_at, id",
            (since.astimezone(UTC).isoformat(), until.astimezone(UTC).isoformat()),
        ) as cur:
            return [post_from_json(str(r[0])) for r in await cur.fetchall()]

    async def latest(self, limit: int) -> list[Post]:
        """The newest posts by date, newest first (for /latest)."""
        async with self._conn.execute(
            "SELECT data FROM posts ORDER BY published_at DESC, id DESC LIMIT ?", (limit,)
        ) as cur:
            return [post_from_json(str(r[0])) for r in await cur.fetchall()]

    async def rows(self) -> AsyncIterator[tuple[int, Post]]:
        async with self._conn.execute("SELECT id, data FROM posts ORDER BY id") as cur:
            async for row in cur:
                yield int(row[0]), post_from_json(str(row[1]))

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
