"""Request bodies: validated from bytes, and large ones off the event loop in small steps.

A small body (up to ``INLINE_BODY_BYTES``) is validated at once by pydantic's Rust JSON parser,
the fastest way for the usual request. A larger one (up to DDNN_MAX_BODY_BYTES) goes to a worker
thread, but a thread alone would not free the event loop: pydantic-core holds the GIL for the
whole parse (measured: /healthz stalled 0.5 s behind a 26 MB batch parsed on a thread). So
``parse_in_steps`` reads the top-level object member by member with the standard library's
decoder and validates each element of a list field (a window, a row of z) on its own: many
short steps, between which the interpreter hands the GIL to the event loop. Both paths give the
same model and the same errors (``RequestValidationError``, located under ``body``). No FastAPI
routes here.
"""

from __future__ import annotations

import asyncio
import json
import re
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import Any, ParamSpec, TypeVar

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from service.collector import paused

M = TypeVar("M", bound=BaseModel)
P = ParamSpec("P")
R = TypeVar("R")

INLINE_BODY_BYTES = 256 * 1024  # at most this is parsed on the event loop (well under 1 ms)


async def read_body(model: type[M], body: bytes) -> M:
    """The body as `model`: inline when small, else in steps on a worker thread."""
    if len(body) <= INLINE_BODY_BYTES:
        return parse_body(model, body)
    return await off_loop(parse_in_steps, model, body)


async def off_loop(function: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """Run `function` on a worker thread with the cyclic garbage collector paused
    (service.collector.paused: the work of a large body, millions of floats in lists or tens of
    thousands of result models, would trigger full collections that stall the event loop,
    measured 150-350 ms at a time)."""

    def without_collector() -> R:
        with paused():
            return function(*args, **kwargs)

    return await asyncio.to_thread(without_collector)


def parse_body(model: type[M], body: bytes) -> M:
    """Validate a JSON body straight from bytes (pydantic's Rust parser, several times faster
    than FastAPI's json.loads + validate for thousands of floats); 422 like FastAPI's own."""
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise RequestValidationError(body_errors(exc)) from None


def body_errors(exc: ValidationError, where: tuple[str | int, ...] = ()) -> list[dict[str, Any]]:
    """A body's validation errors located under `body` (and `where`), without the input except
    the value of a non-finite number (which names what was refused: nan, inf or -inf)."""
    located: list[dict[str, Any]] = []
    for error in exc.errors(include_url=False):
        message = error["msg"]
        if error["type"] == "finite_number":
            message = f"{message}, got {error.get('input')}"
        item: dict[str, Any] = {"type": error["type"], "loc": ("body", *where, *error["loc"])}
        item["msg"] = message
        if "ctx" in error:
            item["ctx"] = error["ctx"]
        located.append(item)
    return located


# ---- in steps ----------------------------------------------------------------------------------

_SPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


class _InvalidJSON(ValueError):
    def __init__(self, message: str, position: int) -> None:
        super().__init__(message)
        self.position = position


class _Cursor:
    """A position in the body's text; each method is one short step."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def next_char(self) -> str:
        match = _SPACE.match(self.text, self.pos)
        self.pos = match.end() if match else self.pos
        return self.text[self.pos : self.pos + 1]

    def take(self, expected: str) -> str:
        char = self.next_char()
        if not char or char not in expected:
            wanted = " or ".join(repr(c) for c in expected)
            raise _InvalidJSON(f"expected {wanted}, found {char or 'the end'!r}", self.pos)
        self.pos += 1
        return char

    def value(self) -> str:
        """The JSON text of the value that starts here (decoded once, to find its end)."""
        self.next_char()
        start = self.pos
        try:
            _, self.pos = _DECODER.raw_decode(self.text, start)
        except json.JSONDecodeError as exc:
            raise _InvalidJSON(exc.msg, exc.pos) from None
        return self.text[start : self.pos]

    def items(self) -> Iterator[str]:
        """The JSON texts of the elements of the array that starts here, one at a time."""
        self.take("[")
        if self.next_char() == "]":
            self.pos += 1
            return
        while True:
            yield self.value()
            if self.take(",]") == "]":
                return


@dataclass
class _Streamed:
    """A list field read element by element: its valid elements, how many there were, and the
    JSON text of the first valid one (it stands in for the list when the model validates)."""

    items: list[Any] = field(default_factory=list)
    count: int = 0
    first: str | None = None


@dataclass
class _Object:
    members: dict[str, str] = field(default_factory=dict)  # name -> JSON text of the value
    streamed: dict[str, _Streamed] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)  # of the streamed elements


def parse_in_steps(model: type[M], body: bytes) -> M:
    """The same result as parse_body, in short steps (run it on a worker thread): each element
    of a list field is validated on its own by pydantic's JSON parser, then the rest of the
    object once, with each list's first element standing in for it; then the lists are set.
    A body with no list at all (a batch as windows_base64) has nothing to stream: it is parsed
    at once (one 12 MB string: ~3 ms, against ~25 ms through the steps)."""
    if b"[" not in body:
        return parse_body(model, body)
    try:
        found = _read_object(_Cursor(body.decode("utf-8")), model)
    except UnicodeDecodeError as exc:
        raise _json_error(f"the body is not UTF-8 ({exc.reason})", exc.start) from None
    except _InvalidJSON as exc:
        raise _json_error(str(exc), exc.position) from None
    members, dropped = dict(found.members), set()
    for key, streamed in found.streamed.items():
        if streamed.first is not None or streamed.count == 0:
            members[key] = f"[{streamed.first or ''}]"
        else:  # elements, none of them valid: their own errors say so
            dropped.add(("body", key))
    document = "{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in members.items()) + "}"
    try:
        parsed = model.model_validate_json(document)
    except ValidationError as exc:
        rest = [e for e in body_errors(exc) if tuple(e["loc"]) not in dropped]
        raise RequestValidationError(rest + found.errors) from None
    if found.errors:
        raise RequestValidationError(found.errors)
    for key, streamed in found.streamed.items():
        setattr(parsed, key, streamed.items)  # validated element by element
    return parsed


def _read_object(cursor: _Cursor, model: type[BaseModel]) -> _Object:
    """The top-level object's members: list fields element by element (validated), the others
    as JSON text (validated with the model afterwards)."""
    found = _Object()
    if cursor.next_char() and cursor.next_char() in '["-0123456789tfn':
        raise RequestValidationError(  # JSON, but not an object: what pydantic says
            [{"type": "model_type", "loc": ("body",), "msg": "Input should be an object"}]
        )
    cursor.take("{")
    if cursor.next_char() == "}":
        cursor.pos += 1
    else:
        while True:
            if cursor.next_char() != '"':
                raise _InvalidJSON("expected a member name in double quotes", cursor.pos)
            key = json.loads(cursor.value())
            cursor.take(":")
            element = _element_adapter(model, key)
            found.members.pop(key, None)  # a repeated name: the last one counts
            found.streamed.pop(key, None)
            if element is not None and cursor.next_char() == "[":
                found.streamed[key] = _read_items(cursor, element, key, found.errors)
            else:
                found.members[key] = cursor.value()
            if cursor.take(",}") == "}":
                break
    if cursor.next_char():
        raise _InvalidJSON("extra data after the object", cursor.pos)
    return found


def _read_items(
    cursor: _Cursor, element: TypeAdapter[Any], key: str, errors: list[dict[str, Any]]
) -> _Streamed:
    streamed = _Streamed()
    for index, text in enumerate(cursor.items()):
        streamed.count += 1
        try:
            streamed.items.append(element.validate_json(text))
        except ValidationError as exc:
            errors.extend(body_errors(exc, (key, index)))
            continue
        if streamed.first is None:
            streamed.first = text
    return streamed


@cache
def _element_adapter(model: type[BaseModel], key: str) -> TypeAdapter[Any] | None:
    """A validator for one element of `key`, a field annotated list[X] (or list[X] | None)."""
    field_info = model.model_fields.get(key)
    if field_info is None:
        return None
    annotation = field_info.annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        annotation = options[0] if len(options) == 1 else None
    if typing.get_origin(annotation) is not list:
        return None
    (item,) = typing.get_args(annotation)
    config = model.model_config
    rules = ConfigDict(
        strict=config.get("strict", False), allow_inf_nan=config.get("allow_inf_nan", True)
    )
    return TypeAdapter(item, config=rules)  # numbers as strict as the model's own


def _json_error(message: str, position: int) -> RequestValidationError:
    """Like pydantic's own json_invalid error."""
    at = f"{message} at character {position}"
    return RequestValidationError(
        [
            {
                "type": "json_invalid",
                "loc": ("body",),
                "msg": f"Invalid JSON: {at}",
                "ctx": {"error": at},
            }
        ]
    )
