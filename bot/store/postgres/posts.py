"""Which posts Herald has seen and announced, so none is announced twice (PostgreSQL)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from bot.models import Post, Revision
from bot.store.postgres.db import Conn, Pool, affected, transaction
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

MIGRATIONS = [
    """
    CREATE TABLE posts (
        id BIGSERIAL PRIMARY KEY,
        path TEXT NOT NULL,
        url TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        title TEXT NOT NULL,
        published_at TIMESTAMPTZ NOT NULL,
        breaking BOOLEAN NOT NULL DEFAULT FALSE,
        first_seen_at TIMESTAMPTZ NOT NULL,
        announced SMALLINT NOT NULL DEFAULT 0,
        data TEXT NOT NULL
    );
    CREATE INDEX posts_path ON posts(path);
    CREATE INDEX posts_url ON posts(url);
    CREATE INDEX posts_fingerprint ON posts(fingerprint);
    CREATE INDEX posts_first_seen ON posts(first_seen_at);
    CREATE INDEX posts_pending ON posts(id) WHERE announced = 2;
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE post_files (path TEXT PRIMARY KEY, version TEXT NOT NULL)
    """,
    # Corrections (as on SQLite): an announced post's revision counts up when what readers
    # saw of it changed (or it was withdrawn); `revised` is the one whose correction is queued.
    """
    ALTER TABLE posts ADD COLUMN revision INTEGER NOT NULL DEFAULT 0,
        ADD COLUMN revised INTEGER NOT NULL DEFAULT 0,
        ADD COLUMN withdrawn BOOLEAN NOT NULL DEFAULT FALSE,
        ADD COLUMN corrected_at TIMESTAMPTZ;
    CREATE INDEX posts_unrevised ON posts(id) WHERE revision > revised;
    CREATE INDEX posts_corrected ON posts(corrected_at) WHERE corrected_at IS NOT NULL
    """,
]


class PostLog:
    """The `posts` table: one row per post ever seen, however often it was edited or renamed."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def kept(self) -> bool:
        """Whether a post log is kept here: posts recorded, or a note such as the baseline's."""
        return bool(
            await self._pool.fetchval(
                "SELECT EXISTS(SELECT 1 FROM posts) OR EXISTS(SELECT 1 FROM meta)"
            )
        )

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

        As on SQLite (see `bot.store.sqlite.posts.PostLog.record`): new posts are pending
        announcement (or the silent baseline), known ones follow their edits and renames,
        and an announced post whose visible content changed (or that is back after being
        withdrawn) gets a new revision.
        """
        moved = moved or {}
        async with transaction(self._pool) as conn:
            index = await _index(conn, posts, list(moved.values()))
            found, inserts = sort_out(posts, index, moved)
            if found:
                # One update per row: a row matched twice in a batch gets its last version.
                last: dict[int, tuple[Post, int, bool]] = {}
                for row, post, added, corrected in revise(found, await _states(conn, found)):
                    _, before, was = last.get(row, (post, 0, False))
                    last[row] = (post, before + added, was or corrected)
                await conn.execute(
                    "UPDATE posts p SET path = u.path, url = u.url, fingerprint = u.fp,"
                    " title = u.title, data = u.data, revision = p.revision + u.added,"
                    " corrected_at = CASE WHEN u.corrected THEN $9 ELSE p.corrected_at END,"
                    " withdrawn = FALSE FROM unnest($1::bigint[], $2::text[], $3::text[],"
                    " $4::text[], $5::text[], $6::text[], $7::integer[], $8::boolean[])"
                    " AS u(id, path, url, fp, title, data, added, corrected) WHERE p.id = u.id",
                    list(last),
                    [p.path for p, _, _ in last.values()],
                    [p.url for p, _, _ in last.values()],
                    [p.fingerprint for p, _, _ in last.values()],
                    [p.title for p, _, _ in last.values()],
                    [post_to_json(p) for p, _, _ in last.values()],
                    [n for _, n, _ in last.values()],
                    [c for _, _, c in last.values()],
                    now,
                )
            fresh = await _insert(conn, inserts, announced=announced, now=now)
            if versions:
                known = [p.path for p in posts if p.path in versions]
                await conn.execute(
                    "INSERT INTO post_files(path, version)"
                    " SELECT DISTINCT ON (path) path, version"
                    " FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS v(path, version, n)"
                    " ORDER BY path, n DESC"
                    " ON CONFLICT (path) DO UPDATE SET version = excluded.version",
                    known,
                    [versions[p] for p in known],
                )
            if moved:
                await conn.execute(
                    "DELETE FROM post_files WHERE path = ANY($1::text[])", list(moved.values())
                )
        return fresh

    async def mark_announced(self, post_id: int) -> None:
        """The post's messages are queued: it is never announced again."""
        await self._pool.execute(
            "UPDATE posts SET announced = $1 WHERE id = $2", ANNOUNCED, post_id
        )

    async def pending(self) -> list[tuple[int, Post]]:
        """Posts recorded as new whose announcement was not queued (a crash in between)."""
        rows = await self._pool.fetch(
            "SELECT id, data FROM posts WHERE announced = $1 ORDER BY id", PENDING
        )
        return [(int(r[0]), post_from_json(r[1])) for r in rows]

    async def file_versions(self) -> dict[str, str]:
        """Path → file version of every file whose post is recorded."""
        rows = await self._pool.fetch("SELECT path, version FROM post_files")
        return {str(r[0]): str(r[1]) for r in rows}

    async def announced_since(self, since: datetime, until: datetime) -> list[Post]:
        """Posts announced in [since, until), oldest first: the digest's content."""
        rows = await self._pool.fetch(
            "SELECT data FROM posts WHERE announced = $1 AND NOT withdrawn"
            " AND first_seen_at >= $2 AND first_seen_at < $3 ORDER BY published_at, id",
            ANNOUNCED,
            since,
            until,
        )
        return [post_from_json(r[0]) for r in rows]

    async def latest(self, limit: int) -> list[Post]:
        """The newest posts by date, newest first (for /latest)."""
        rows = await self._pool.fetch(
            "SELECT data FROM posts WHERE NOT withdrawn ORDER BY published_at DESC, id DESC"
            " LIMIT $1",
            limit,
        )
        return [post_from_json(r[0]) for r in rows]

    async def withdraw(self, path: str, *, now: datetime) -> bool:
        """The announced post recorded from `path` is withdrawn: a new revision, once."""
        status = await self._pool.execute(
            "UPDATE posts SET withdrawn = TRUE, revision = revision + 1"
            " WHERE path = $1 AND announced = $2 AND NOT withdrawn",
            path,
            ANNOUNCED,
        )
        return affected(status) > 0

    async def revisions(self) -> list[Revision]:
        """Announced posts with a revision whose correction is not queued yet, oldest first."""
        rows = await self._pool.fetch(
            "SELECT id, data, revision, withdrawn FROM posts"
            " WHERE revision > revised AND announced = $1 ORDER BY id",
            ANNOUNCED,
        )
        return [
            Revision(
                post_id=int(r[0]),
                post=post_from_json(r[1]),
                revision=int(r[2]),
                withdrawn=bool(r[3]),
            )
            for r in rows
        ]

    async def mark_revised(self, post_id: int, revision: int) -> None:
        """The correction for `revision` is queued (an older revision number is ignored)."""
        await self._pool.execute(
            "UPDATE posts SET revised = $2 WHERE id = $1 AND revised < $2", post_id, revision
        )

    async def corrected_since(self, since: datetime, until: datetime) -> list[Post]:
        """Posts (not withdrawn) corrected in [since, until), oldest first."""
        rows = await self._pool.fetch(
            "SELECT data FROM posts WHERE corrected_at >= $1 AND corrected_at < $2"
            " AND NOT withdrawn ORDER BY corrected_at, id",
            since,
            until,
        )
        return [post_from_json(r[0]) for r in rows]

    async def topic_counts(self, limit: int) -> list[tuple[str, int]]:
        """Categories and tags of the newest posts (not withdrawn), most used first."""
        rows = await self._pool.fetch(
            "SELECT data FROM posts WHERE NOT withdrawn"
            " ORDER BY published_at DESC, id DESC LIMIT $1",
            TOPIC_POSTS,
        )
        return count_topics((post_from_json(r[0]) for r in reversed(rows)), limit)

    async def get_meta(self, key: str) -> str | None:
        value = await self._pool.fetchval("SELECT value FROM meta WHERE key = $1", key)
        return None if value is None else str(value)

    async def set_meta(self, key: str, value: str) -> None:
        await self._pool.execute(
            "INSERT INTO meta(key, value) VALUES ($1, $2)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            key,
            value,
        )


async def _states(conn: Conn, found: Sequence[tuple[int, Post]]) -> dict[int, State]:
    """id → (visible content, announced, withdrawn) of the rows about to be updated."""
    rows = await conn.fetch(
        "SELECT id, data, announced, withdrawn FROM posts WHERE id = ANY($1::bigint[])",
        sorted({row for row, _ in found}),
    )
    return {
        int(r[0]): (visible(post_from_json(r[1])), int(r[2]) == ANNOUNCED, bool(r[3])) for r in rows
    }


async def _index(conn: Conn, posts: Sequence[Post], paths: Sequence[str]) -> Index:
    """path/url/fingerprint → id of the rows these posts (or these old `paths`) could match."""
    rows = await conn.fetch(
        "SELECT id, path, url, fingerprint FROM posts WHERE path = ANY($1::text[])"
        " OR url = ANY($2::text[]) OR fingerprint = ANY($3::text[]) ORDER BY id",
        [p.path for p in posts] + list(paths),
        [p.url for p in posts],
        [p.fingerprint for p in posts],
    )
    by_path: dict[str, int] = {}
    by_url: dict[str, int] = {}
    by_fingerprint: dict[str, int] = {}
    for row in rows:
        by_path[row[1]] = by_url[row[2]] = by_fingerprint[row[3]] = int(row[0])
    return by_path, by_url, by_fingerprint


async def _insert(
    conn: Conn, posts: Sequence[Post], *, announced: bool, now: datetime
) -> list[tuple[int, Post]]:
    """Insert new posts; (id, post) pairs in order, their ids drawn from the sequence first."""
    if not posts:
        return []
    ids = [
        int(r[0])
        for r in await conn.fetch(
            "SELECT nextval(pg_get_serial_sequence('posts', 'id')) FROM generate_series(1, $1)",
            len(posts),
        )
    ]
    await conn.execute(
        "INSERT INTO posts(id, path, url, fingerprint, title, published_at, breaking,"
        " first_seen_at, announced, data) SELECT id, path, url, fp, title, published, breaking,"
        " $9, $10, data FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[],"
        " $5::text[], $6::timestamptz[], $7::boolean[], $8::text[])"
        " AS n(id, path, url, fp, title, published, breaking, data)",
        ids,
        [p.path for p in posts],
        [p.url for p in posts],
        [p.fingerprint for p in posts],
        [p.title for p in posts],
        [p.date for p in posts],
        [p.breaking for p in posts],
        [post_to_json(p) for p in posts],
        now,
        PENDING if announced else BASELINE,
    )
    return list(zip(ids, posts, strict=True))
