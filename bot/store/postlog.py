"""What every backend's post log shares: a post's JSON, its states, and the matching of posts
seen now to the rows recorded before. Pure: no database here."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from bot.choices import topic_key
from bot.models import Post

# posts.announced: a baseline post never goes out; a pending one is queued at the next chance.
BASELINE, ANNOUNCED, PENDING = 0, 1, 2
NEW = -1  # index placeholder for a row inserted by the current batch

# Posts whose categories and tags `topic_counts` reads: the newest, enough for an offer.
TOPIC_POSTS = 2000

# path → id, url → id, fingerprint → id of the rows the posts could match.
Index = tuple[dict[str, int], dict[str, int], dict[str, int]]


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


def visible(post: Post) -> tuple[object, ...]:
    """What a reader sees of a post in its alert: a change here is a correction to send.

    The body is not in it: an alert shows the excerpt, not the whole text.
    """
    return (post.title, post.excerpt, post.image, post.url, post.label)


def count_topics(posts: Iterable[Post], limit: int) -> list[tuple[str, int]]:
    """Categories and tags of `posts` (oldest first), most used first, at most `limit`.

    Counted case-insensitively, once per post, each named as first written; ties by name.
    """
    counts: dict[str, int] = {}
    names: dict[str, str] = {}
    for post in posts:
        keys: dict[str, str] = {}
        for name in (*post.categories, *post.tags):
            key = topic_key(name)
            if key:
                keys.setdefault(key, " ".join(name.split()))
        for key, name in keys.items():
            names.setdefault(key, name)
            counts[key] = counts.get(key, 0) + 1
    ranked = sorted(counts, key=lambda k: (-counts[k], k))
    return [(names[k], counts[k]) for k in ranked[: max(0, limit)]]


# A recorded row before an update: what readers saw of it, announced, withdrawn.
State = tuple[tuple[object, ...], bool, bool]


def revise(
    found: Sequence[tuple[int, Post]], before: dict[int, State]
) -> list[tuple[int, Post, int, bool]]:
    """(row, post, revisions to add, corrected) for each update of `found`, in order.

    An announced post whose visible content changed is corrected; a withdrawn one seen
    again is back: both count a revision. A baseline or pending post was never sent as it
    was, so it has none. `before` follows the updates (a row updated twice in a batch).
    """
    out: list[tuple[int, Post, int, bool]] = []
    for row, post in found:
        seen, announced, withdrawn = before[row]
        shown = visible(post)
        changed = announced and shown != seen
        out.append((row, post, int(changed or (announced and withdrawn)), changed))
        before[row] = (shown, announced, False)
    return out


def sort_out(
    posts: Sequence[Post], index: Index, moved: Mapping[str, str]
) -> tuple[list[tuple[int, Post]], list[Post]]:
    """(row id, post) of the posts seen before, and the posts never seen.

    A post is the same post when its path (an edit), its URL or its day and title (a
    rename) match one row, or else when `moved` maps its path to the path of one. A post
    matching several rows is left alone; a copy later in the same batch is the same post.
    `index` is updated with the new posts.
    """
    updates: list[tuple[int, Post]] = []
    inserts: list[Post] = []
    for post in posts:
        key = (post.path, post.url, post.fingerprint)
        ids = {index[0].get(key[0]), index[1].get(key[1]), index[2].get(key[2])}
        ids.discard(None)
        before = moved.get(post.path)
        if not ids and before is not None and before in index[0]:
            ids = {index[0][before]}
        if not ids:
            inserts.append(post)
            for column, value in zip(index, key, strict=True):
                column[value] = NEW
        elif len(ids) == 1 and NEW not in ids:
            found = ids.pop()
            assert found is not None
            updates.append((found, post))
    return updates, inserts
