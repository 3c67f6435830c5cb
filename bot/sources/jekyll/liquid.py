"""Liquid in post bodies, rendered as Jekyll would; what cannot render is dropped and logged."""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable
from contextvars import ContextVar
from io import StringIO
from pathlib import Path
from typing import Any, TextIO

from liquid import Mode
from liquid.ast import BlockNode, Node
from liquid.exceptions import FilterArgumentError, LiquidError
from liquid.parser import get_parser
from liquid.tag import Tag
from liquid.token import TOKEN_EOF, TOKEN_EXPRESSION, TOKEN_TAG, Token

from bot.errors import PostError
from bot.settings import Site
from bot.sources.jekyll import filters as jekyll_filters
from bot.sources.jekyll import links as jekyll_links
from bot.sources.jekyll import liquid_limits, liquid_repair

log = logging.getLogger(__name__)

_INCLUDE_PARAM_RE = re.compile(
    r"([\w-]+)\s*=\s*(?:\"((?:[^\"\\]|\\.)*)\"|'((?:[^'\\]|\\.)*)'|([\w.-]+))"
)

_problems: ContextVar[list[str] | None] = ContextVar("liquid_problems", default=None)


def _note(problem: str) -> None:
    found = _problems.get()
    if found is not None:
        found.append(problem)


def _first_line(exc: BaseException) -> str:
    if isinstance(exc, LiquidError) and exc.message is not None:
        return str(exc.message)
    return str(exc).split("\n", 1)[0]


class JekyllEnvironment(liquid_limits.LimitedEnvironment):
    """A lax, limited environment that records every error it swallows."""

    keyword_assignment = True

    def __init__(self, site: Site) -> None:
        super().__init__(tolerance=Mode.LAX)
        self.site = site
        for name, func in jekyll_filters.filters(site).items():
            self.add_filter(name, _lax_filter(name, func))
        for tag in (HighlightTag, LinkTag, PostUrlTag, IncludeTag, IncludeRelativeTag):
            self.add_tag(tag)

    def error(
        self,
        exc: type[LiquidError] | LiquidError,
        msg: str | None = None,
        token: Token | None = None,
    ) -> None:
        """Record the problem and carry on, as Mode.LAX does; a resource limit ends the render."""
        if not isinstance(exc, LiquidError):
            exc = exc(msg, token=token)
        if isinstance(exc, liquid_limits.RENDER_LIMITS):
            raise exc
        _note(_first_line(exc))


def _lax_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """`func` with bad input (a date that is none, `'x' | to_integer`) as a Liquid error.

    Liquid drops the statement and notes the problem; any other exception would end the
    render, and with it the post.
    """

    @functools.wraps(func)
    def apply(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (PostError, ValueError, ArithmeticError) as exc:
            raise FilterArgumentError(f"{name}: {exc}", token=None) from exc

    return apply


def _expression(stream: Any, *, block: bool) -> tuple[Token, str]:
    """The tag token and the raw text after its name.

    The parser steps past a tag's last token itself, so an inline tag stops on it;
    a block tag moves on to the first token of its body.
    """
    token = stream.current
    markup = ""
    if stream.peek.kind == TOKEN_EXPRESSION:
        next(stream)
        markup = str(stream.current.value).strip()
    if block:
        next(stream)
    return token, markup


def _expand(context: Any, markup: str) -> str:
    """Jekyll lets tag arguments hold `{{ var }}`; render them first."""
    if "{{" not in markup:
        return markup
    env: JekyllEnvironment = context.env
    buf: StringIO = context.get_buffer()
    env.from_string(markup).render_with_context(context, buf)
    return buf.getvalue()


class _InlineNode(Node):
    """A one-line Jekyll tag whose output is a string computed from its markup."""

    __slots__ = ("func", "markup")

    def __init__(self, token: Token, markup: str, func: Any) -> None:
        super().__init__(token)
        self.markup = markup
        self.func = func
        self.blank = False

    def render_to_output(self, context: Any, buffer: TextIO) -> int:
        """Write the tag's output, or nothing (with a note) when it fails."""
        try:
            text = self.func(context, _expand(context, self.markup))
        except liquid_limits.RENDER_LIMITS:
            raise
        except (PostError, OSError, ValueError, LiquidError) as exc:
            _note(f"{{% {self.token.value} {self.markup} %}}: {_first_line(exc)}")
            return 0
        return buffer.write(text)


class _InlineTag(Tag):
    block = False

    def parse(self, stream: Any) -> Node:
        """Keep the tag's raw markup; Jekyll tags parse their own arguments."""
        token, markup = _expression(stream, block=False)
        return _InlineNode(token, markup, self.output)

    def output(self, context: Any, markup: str) -> str:
        """The tag's text; every subclass (link, post_url) defines its own."""
        raise TypeError(f"{type(self).__name__} does not define output()")


class LinkTag(_InlineTag):
    """`{% link path %}` → the absolute URL of that page or post."""

    name = "link"

    def output(self, context: Any, markup: str) -> str:
        return jekyll_links.link_url(context.env.site, markup.strip())


class PostUrlTag(_InlineTag):
    """`{% post_url 2010-07-21-name %}` → the absolute URL of that post."""

    name = "post_url"

    def output(self, context: Any, markup: str) -> str:
        site: Site = context.env.site
        rel = jekyll_links.find_post(site, markup.strip())
        return site.url + jekyll_links.post_file_url(site, rel)


class IncludeTag(_InlineTag):
    """`{% include file.html key=value %}` from `_includes/`, with `include.key`."""

    name = "include"

    def base(self, context: Any) -> Path:
        return Path(context.env.site.root) / "_includes"

    def output(self, context: Any, markup: str) -> str:
        name, _, params_text = markup.strip().partition(" ")
        base = self.base(context).resolve()
        path = (base / name).resolve()
        if not name or not path.is_relative_to(base) or not path.is_file():
            raise ValueError(f"included file {name!r} not found in {base.name}/")
        params: dict[str, Any] = {}
        for key, dq, sq, var in _INCLUDE_PARAM_RE.findall(params_text):
            if var:
                params[key] = _value(context, var)
            else:
                params[key] = re.sub(r"\\(.)", r"\1", dq or sq)
        env: JekyllEnvironment = context.env
        template = env.from_string(path.read_text(encoding="utf-8-sig"), name=name)
        buf: StringIO = context.get_buffer()
        with context.extend({"include": params}, template=template):
            template.render_with_context(context, buf, partial=True)
        return buf.getvalue()


def _value(context: Any, word: str) -> Any:
    """An unquoted include argument: a number, true/false/nil, or a variable."""
    if re.fullmatch(r"-?\d+", word):
        return int(word)
    if re.fullmatch(r"-?\d+\.\d+", word):
        return float(word)
    literals = {"true": True, "false": False, "nil": None, "null": None}
    if word in literals:
        return literals[word]
    return context.get(word.split("."), token=None, default=None)


class IncludeRelativeTag(IncludeTag):
    """`{% include_relative file %}`: relative to the post's own folder."""

    name = "include_relative"

    def base(self, context: Any) -> Path:
        page_path = str(context.resolve("page").get("path", "_posts/x"))
        return Path(context.env.site.root) / Path(page_path).parent


class HighlightNode(Node):
    """`{% highlight lang %}…{% endhighlight %}` as a fenced Markdown code block."""

    __slots__ = ("block", "lang")

    def __init__(self, token: Token, lang: str, block: BlockNode) -> None:
        super().__init__(token)
        self.lang = lang
        self.block = block
        self.blank = False

    def render_to_output(self, context: Any, buffer: TextIO) -> int:
        """Render the code, then fence it with more backticks than it contains."""
        buf = context.get_buffer(buffer)
        self.block.render(context, buf)
        code = buf.getvalue().strip("\r\n")
        runs = [len(r) for r in re.findall(r"`{3,}", code)]
        fence = "`" * max([3, *(n + 1 for n in runs)])
        return buffer.write(f"{fence}{self.lang}\n{code}\n{fence}")


class HighlightTag(Tag):
    """Parses the highlight block."""

    name = "highlight"
    end = "endhighlight"

    def parse(self, stream: Any) -> Node:
        """Language is the first word; options like `linenos` are ignored."""
        token, markup = _expression(stream, block=True)
        words = markup.split()
        block = get_parser(self.env).parse_block(stream, frozenset((self.end, TOKEN_EOF)))
        stream.expect(TOKEN_TAG, value=self.end)
        return HighlightNode(token, words[0] if words else "", block)


def _environment(site: Site) -> JekyllEnvironment:
    cached = _ENVS.get(id(site))
    if cached is None or cached.site is not site:
        cached = JekyllEnvironment(site)
        _ENVS.clear()  # one site per process; never grow without bound
        _ENVS[id(site)] = cached
    return cached


_ENVS: dict[int, JekyllEnvironment] = {}


def site_vars(site: Site) -> dict[str, Any]:
    """`site.*`: `_config.yml`, `url` and `baseurl` as the published site uses them, and
    `site.data` from `_data/`."""
    return {**site.config, **jekyll_filters.base_parts(site), "data": site.data}


def render(text: str, *, site: Site, page: dict[str, Any], path: str) -> str:
    """Render Liquid in `text`; problems are dropped from the output and logged once."""
    if "{{" not in text and "{%" not in text:
        return text
    problems: list[str] = []
    reset = _problems.set(problems)
    try:
        output = _render(text, site, page)
    finally:
        _problems.reset(reset)
    if problems:
        found = "; ".join(dict.fromkeys(problems))  # a problem repeated in a loop, once
        log.warning("%s: dropped Liquid it cannot render: %s", path, found)
    return output


def _render(text: str, site: Site, page: dict[str, Any]) -> str:
    env = _environment(site)
    source, problems = liquid_repair.balance(text)
    for problem in problems:
        _note(problem)
    data = {"site": site_vars(site), "page": page, "jekyll": {"environment": "production"}}
    for _ in range(20):
        try:
            template = env.from_string(source)
        except LiquidError as exc:  # the lexer gives up on e.g. an unclosed `{{`
            start = exc.token.start_index if exc.token is not None else -1
            _note(_first_line(exc))
            if start < 0:
                break
            match = liquid_repair.MARKUP_RE.match(source, start)
            # An unclosed `{{`/`{%` runs to the end of its line at most.
            line_end = source.find("\n", start)
            end = match.end() if match else (line_end if line_end >= 0 else len(source))
            source = source[:start] + source[end:]
            continue
        try:
            return str(template.render(**data))
        except liquid_limits.RENDER_LIMITS as exc:
            _note(f"{_first_line(exc)}; all of the post's Liquid is dropped")
            break
        except LiquidError as exc:
            _note(_first_line(exc))
            break
    return liquid_repair.strip_all(source)
