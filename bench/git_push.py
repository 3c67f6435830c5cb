"""Git source benchmark: push → alert in outbox/telegram, by webhook and by polling.

Run: .venv/bin/python bench/git_push.py [--pushes 20] [--polled 5] [--poll-s 10]

Both halves run the real `herald run` on a clone of a local bare repository (the demo
site), in the same run of this script: first with HERALD_GIT_POLL_S=3600 and a signed
`POST /hooks/git` after each push, then, as the baseline, with no hook and HERALD_GIT_POLL_S
set to --poll-s (the default 300 s would give minutes). Each push is timed from `git push`
returning to the alert's file appearing in outbox/telegram.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.web.hooks import github_signature  # noqa: E402
from tests.support.acceptance import DEMO_SITE, Herald, files_under, recent  # noqa: E402
from tests.support.gitrepo import Remote, git_env  # noqa: E402

SECRET = "bench-webhook-secret"
PUSH = json.dumps({"ref": "refs/heads/trunk"}).encode()
HEADERS = {
    "content-type": "application/json",
    "x-github-event": "push",
    "x-hub-signature-256": github_signature(SECRET, PUSH),
}
ARRIVAL_S = 120.0


def post(n: int, label: str) -> tuple[str, str]:
    """A new breaking post's file name and text."""
    when = recent()
    title = f"Breaking: bench {label} push {n}"
    text = f'---\ntitle: "{title}"\ndate: {when.isoformat()}\n---\n\nPushed for the bench.\n'
    return f"{when:%Y-%m-%d}-bench-{label}-{n}.md", text


async def pushes(
    home: Path, remote: Remote, label: str, count: int, *, poll_s: float, hook: bool
) -> list[float]:
    """Seconds from each `git push` to its alert file, for `count` pushes."""
    herald = Herald(home, HERALD_SITE_GIT=remote.url, HERALD_GIT_POLL_S=f"{poll_s:g}")
    if hook:
        herald.env["HERALD_WEBHOOK_SECRET"] = SECRET
    del herald.env["HERALD_SITE_DIR"]  # the clone goes to data/site
    outbox = herald.outbox / "telegram"
    seen: list[float] = []
    async with herald.run() as run, httpx.AsyncClient(timeout=10) as client:
        for n in range(count):
            if not hook:  # land anywhere in the poll interval, as real pushes do
                await asyncio.sleep(random.uniform(0, poll_s))
            before = len(files_under(outbox))
            name, text = post(n, label)
            remote.write(f"_posts/{name}", text)
            await asyncio.to_thread(remote.push, f"bench {label} {n}")
            start = time.perf_counter()
            if hook:
                answer = await client.post(
                    f"{herald.public_url}/hooks/git", content=PUSH, headers=HEADERS
                )
                assert answer.status_code == 202, answer.text
            while len(files_under(outbox)) <= before:
                if time.perf_counter() - start > ARRIVAL_S:
                    raise SystemExit(f"no alert {ARRIVAL_S} s after push {n}; log:\n{run.log}")
                await asyncio.sleep(0.005)
            seen.append(time.perf_counter() - start)
        await run.stop()
    return seen


def summary(label: str, seen: list[float]) -> str:
    ms = [s * 1000 for s in seen]
    return (
        f"{label:<34} n={len(ms):<3} median {statistics.median(ms):6.0f} ms"
        f"   min {min(ms):6.0f} ms   max {max(ms):6.0f} ms"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pushes", type=int, default=20, help="pushes announced by webhook")
    parser.add_argument("--polled", type=int, default=5, help="pushes found by polling")
    parser.add_argument("--poll-s", type=float, default=10.0, help="baseline HERALD_GIT_POLL_S")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="herald-bench-git-") as tmp:
        base = Path(tmp)
        os.environ.update(git_env(base))
        remote = Remote(base / "repo", site=DEMO_SITE)
        hooked = await pushes(base / "hook", remote, "hook", args.pushes, poll_s=3600, hook=True)
        polled = await pushes(
            base / "poll", remote, "poll", args.polled, poll_s=args.poll_s, hook=False
        )
    print(summary("push → alert, webhook", hooked))
    print(summary(f"push → alert, polling every {args.poll_s:g} s", polled))
    ratio = statistics.median(polled) / statistics.median(hooked)
    print(f"webhook is {ratio:.1f}× faster (median); with the default 300 s poll, ~150 s median")


if __name__ == "__main__":
    asyncio.run(main())
