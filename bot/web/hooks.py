"""`POST /hooks/git`: the push webhook that makes the git source fetch at once.

GitHub, Gitea and Forgejo sign the exact body: `X-Hub-Signature-256: sha256=<HMAC-SHA256
hex>` (Gitea and Forgejo also send the bare hex as `X-Gitea-Signature` / `X-Forgejo-Signature`);
GitLab sends the secret itself as `X-Gitlab-Token`. Either is compared in constant time with
HERALD_WEBHOOK_SECRET, and a request that fails gets 401 and fetches nothing. The web app
may not import the sources: the composition root hands in `request_fetch`, which only
raises a flag, so a burst of hooks is one fetch.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from bot.web.limits import capped_body

log = logging.getLogger(__name__)

HOOK_PATH = "/hooks/git"
# Push payloads list at most 20 commits (GitHub) or 20 too (GitLab's default): far below this.
MAX_BODY_BYTES = 4 * 1024 * 1024
EVENT_HEADERS = ("x-github-event", "x-gitea-event", "x-forgejo-event", "x-gogs-event")
PUSH_EVENTS = frozenset({"push", "push hook"})  # GitLab says "Push Hook"

RequestFetch = Callable[[], object]
Branch = Callable[[], str | None]


@dataclass(frozen=True)
class Verdict:
    """What a hook gets: the status, a short text, and whether a fetch is asked for."""

    status: int
    text: str
    fetch: bool = False
    reason: str = ""  # for the log line: why a hook was refused or ignored


def github_signature(secret: str, body: bytes) -> str:
    """`X-Hub-Signature-256` for `body`: `sha256=` and the HMAC-SHA256 hex digest."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def authentic(headers: Mapping[str, str], body: bytes, secret: str) -> bool:
    """True when the hook carries a valid signature of `body`, or the secret, for `secret`."""
    expected = github_signature(secret, body)
    signed = headers.get("x-hub-signature-256")
    if signed is not None:
        return hmac.compare_digest(signed.strip().lower().encode(), expected.encode())
    for name in ("x-gitea-signature", "x-forgejo-signature", "x-gogs-signature"):
        bare = headers.get(name)
        if bare is not None:
            return hmac.compare_digest(bare.strip().lower().encode(), expected[7:].encode())
    token = headers.get("x-gitlab-token")
    if token is not None:
        return hmac.compare_digest(token.encode(), secret.encode())
    return False


def event_of(headers: Mapping[str, str]) -> str | None:
    """The event a hook announces (lower case), or None when it names none."""
    for name in (*EVENT_HEADERS, "x-gitlab-event"):
        value = headers.get(name)
        if value:
            return value.strip().lower()
    return None


def payload_of(body: bytes, content_type: str) -> dict[str, Any] | None:
    """The JSON payload (sent as JSON, or as a form's `payload` field); None when it is not."""
    try:
        text = body.decode()
        if content_type.split(";")[0].strip().lower() == "application/x-www-form-urlencoded":
            text = parse_qs(text).get("payload", [""])[0]
        data = json.loads(text) if text.strip() else {}
    except (UnicodeDecodeError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def decide(
    headers: Mapping[str, str],
    body: bytes,
    *,
    secret: str | None,
    branch: str | None,
) -> Verdict:
    """Answer one hook: refused, a ping, ignored (another branch, another event), or a fetch.

    `headers` are looked up by lower-case names; `branch` is the one followed (None: not
    known yet, so every push fetches).
    """
    if secret is None:
        return Verdict(401, "unauthorized", reason="HERALD_WEBHOOK_SECRET is not set")
    if not authentic(headers, body, secret):
        return Verdict(401, "unauthorized", reason="bad or missing signature")
    event = event_of(headers)
    if event == "ping":
        return Verdict(200, "pong")
    if event is not None and event not in PUSH_EVENTS:
        return Verdict(200, f"ignored: {event} is not a push", reason="not a push")
    payload = payload_of(body, headers.get("content-type", ""))
    if payload is None:
        return Verdict(400, "the body is not a JSON object", reason="body is not JSON")
    ref = payload.get("ref")
    if isinstance(ref, str) and branch is not None and ref != f"refs/heads/{branch}":
        return Verdict(200, f"ignored: following refs/heads/{branch}", reason=f"push to {ref}")
    return Verdict(202, "fetch queued", fetch=True)


def hook_routes(
    *, secret: str | None, request_fetch: RequestFetch, branch: Branch, path: str = HOOK_PATH
) -> list[Route]:
    """The webhook route; `request_fetch()` is called for each accepted push."""
    if secret is None:
        log.warning(
            "HERALD_WEBHOOK_SECRET is not set: POST %s refuses every hook; "
            "the clone is fetched on its interval only",
            path,
        )

    async def endpoint(request: Request) -> Response:
        try:
            body = await capped_body(request, MAX_BODY_BYTES)
        except ClientDisconnect:
            return Response(status_code=400)
        if body is None:
            log.warning("hook: refused a body over %d bytes", MAX_BODY_BYTES)
            return PlainTextResponse("payload too large\n", status_code=413)
        verdict = decide(request.headers, body, secret=secret, branch=branch())
        if verdict.fetch:
            request_fetch()
        event = (event_of(request.headers) or "unnamed event")[:40]
        if verdict.status == 401:
            log.warning("hook: refused (%s)", verdict.reason)
        else:
            log.info("hook: %s → %d %s", event, verdict.status, verdict.reason or verdict.text)
        return PlainTextResponse(verdict.text + "\n", status_code=verdict.status)

    return [Route(path, endpoint, methods=["POST"])]
