"""What one post's Liquid may cost: loop iterations, output, variables, filter results.

A post is untrusted input to a long-running bot: a loop bomb or a filter fed a billion-item
range must end in a dropped render, not a stalled process. python-liquid bounds output,
variables, context depth and nested loops; this adds a budget of loop iterations over the
whole render (sequential loops add up) and a size check around every filter.
"""

from __future__ import annotations

from collections.abc import Callable, Sized
from typing import Any

from liquid import Environment
from liquid.context import RenderContext
from liquid.exceptions import (
    ContextDepthError,
    LocalNamespaceLimitError,
    LoopIterationLimitError,
    OutputStreamLimitError,
    ResourceLimitError,
)
from liquid.template import BoundTemplate
from liquid.token import Token

OUTPUT_LIMIT_BYTES = 4_000_000
LOCALS_LIMIT_BYTES = 4_000_000  # as python-liquid measures it: sys.getsizeof of each value
LOOP_ITERATION_LIMIT = 100_000  # per post, all loops together (about 0.3 s of work)
CONTEXT_DEPTH_LIMIT = 30  # nested includes and loops
FILTER_ITEMS_LIMIT = LOOP_ITERATION_LIMIT


class FilterSizeLimitError(ResourceLimitError):
    """A filter was given or made more than the limits allow."""


# Hitting one of these ends the render: in lax mode Liquid would log and carry on with the
# next statement, which for a bomb means paying for it again.
RENDER_LIMITS: tuple[type[ResourceLimitError], ...] = (
    ContextDepthError,
    LoopIterationLimitError,
    OutputStreamLimitError,
    LocalNamespaceLimitError,
    FilterSizeLimitError,
)


def _check_size(name: str, value: object) -> None:
    if isinstance(value, str):
        if len(value) > OUTPUT_LIMIT_BYTES:
            raise FilterSizeLimitError(
                f"{name}: a result over {OUTPUT_LIMIT_BYTES:,} characters", token=None
            )
    elif isinstance(value, Sized) and len(value) > FILTER_ITEMS_LIMIT:
        raise FilterSizeLimitError(f"{name}: over {FILTER_ITEMS_LIMIT:,} items", token=None)


def _bounded(name: str, func: Callable[..., object]) -> Callable[..., object]:
    """`func`, refusing inputs with too many items and results over the output limit."""

    def apply(value: object, *args: Any, **kwargs: Any) -> object:
        for arg in (value, *args):
            _check_size(name, arg)
        result = func(value, *args, **kwargs)
        _check_size(name, result)
        return result

    return apply


class LimitedContext(RenderContext):
    """A render context that counts every loop iteration and bounds every filter."""

    __slots__ = ("iterations",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.iterations = 0

    def raise_for_loop_limit(self, length: int = 1) -> None:
        """python-liquid's check for nested loops, plus a budget for the whole render."""
        super().raise_for_loop_limit(length)
        self.iterations += length
        if self.iterations > LOOP_ITERATION_LIMIT:
            raise LoopIterationLimitError(
                f"loop iteration limit reached (over {LOOP_ITERATION_LIMIT:,} in one post)",
                token=None,
            )

    def filter(self, name: str, token: Token | None) -> Callable[..., object]:
        """The named filter, wrapped in the size checks."""
        return _bounded(name, super().filter(name, token))


class LimitedTemplate(BoundTemplate):
    """A template rendered with a LimitedContext."""

    context_class = LimitedContext


class LimitedEnvironment(Environment):
    """An environment with every limit above switched on."""

    output_stream_limit = OUTPUT_LIMIT_BYTES
    local_namespace_limit = LOCALS_LIMIT_BYTES
    loop_iteration_limit = LOOP_ITERATION_LIMIT
    context_depth_limit = CONTEXT_DEPTH_LIMIT
    template_class = LimitedTemplate
