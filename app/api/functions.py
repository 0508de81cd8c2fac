"""Function calling, shared by every API shell (OpenAI chat, Responses, Anthropic Messages).

Each shell turns its own tool and tool-choice shapes into `Function`s and a `Choice`; `plan()` makes
the one engine-side decision (offer the tools, force one call with a grammar, or none), and
`calls_of()` reads the calls back from a result the same way for all of them.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

from app.engine import Grammar, ToolCall
from app.errors import BadRequestError, UnprocessableError

# What the client lets the model do: "none", "auto", "required" (some call) or a function's name.
Choice = str


@dataclass(frozen=True)
class Function:
    name: str
    description: str | None = None
    parameters: dict | None = None  # a JSON schema of the arguments object

    def schema(self) -> dict:
        """OpenAI's function object, the form the engine's tool-call support reads."""
        function: dict[str, Any] = {"name": self.name}
        if self.description:
            function["description"] = self.description
        function["parameters"] = self.parameters or {"type": "object", "properties": {}}
        return function


@dataclass(frozen=True)
class ToolPlan:
    """What the engine is given: tools offered in the prompt, or a grammar forcing one call."""

    tools: tuple[str, ...] = ()
    grammar: Grammar | None = None

    @property
    def forced(self) -> bool:
        return self.grammar is not None


def invalid(param: str, message: str) -> UnprocessableError:
    return UnprocessableError(f"{param}: {message}", details={"fields": {param: [message]}})


def unsupported(param: str, message: str) -> BadRequestError:
    """A well-formed request for what this server cannot do (images, audio, server-side tools): 400."""
    return BadRequestError(f"{param}: {message}", details={"param": param})


def plan(functions: list[Function], choice: Choice, param: str = "tool_choice") -> ToolPlan:
    if not functions or choice == "none":
        return ToolPlan()
    if choice == "auto":
        offered = tuple(json.dumps({"type": "function", "function": f.schema()}) for f in functions)
        return ToolPlan(tools=offered)
    if choice == "required":
        chosen = functions
    else:
        chosen = [f for f in functions if f.name == choice]
        if not chosen:
            raise invalid(param, f"no tool named {choice!r} in tools")
    return ToolPlan(grammar=forced_call_grammar(chosen))


def forced_call_grammar(chosen: list[Function]) -> Grammar:
    """A grammar that makes the model emit one call of one of `chosen` (its arguments' schema too,
    when there is only one)."""
    arguments = chosen[0].parameters if len(chosen) == 1 else None
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "enum": [f.name for f in chosen]},
            "arguments": closed_objects(arguments or {"type": "object"}),
        },
        "required": ["name", "arguments"],
        "additionalProperties": False,  # the engine's JSON grammar allows extra keys unless told
    }
    return Grammar("json_schema", json.dumps(schema), param=None)


def closed_objects(schema: Any) -> Any:
    """The schema with `additionalProperties: false` on every object that says nothing about it (as
    strict function calling does): the engine's JSON grammar would otherwise let the model add keys
    until max_tokens."""
    if isinstance(schema, list):
        return [closed_objects(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    closed = {key: closed_objects(value) for key, value in schema.items()}
    if closed.get("type") == "object" and "properties" in closed:
        closed.setdefault("additionalProperties", False)
    return closed


_CALL_NAME = re.compile(r'"name"\s*:\s*"((?:[^"\\]|\\.)*)"')
_CALL_ARGUMENTS = re.compile(r'"arguments"\s*:\s*')


def new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def parse_forced_call(text: str) -> tuple[ToolCall, bool]:
    """The call a forced-call grammar made the model write, and whether it is whole. Cut short by
    max_tokens, it is still a call: its name (if written) and its arguments as far as they got, as
    OpenAI returns a call cut by `length`."""
    call_id = new_call_id()
    try:
        call = json.loads(text)
        return ToolCall(call_id, call["name"], json.dumps(call["arguments"])), True
    except (ValueError, KeyError, TypeError):
        name = _CALL_NAME.search(text)
        arguments = _CALL_ARGUMENTS.search(text)
        return ToolCall(
            call_id, name.group(1) if name else "", text[arguments.end() :] if arguments else ""
        ), False


@dataclass(frozen=True)
class Calls:
    """The calls in a finished generation and the finish they imply."""

    calls: tuple[ToolCall, ...]
    finish_reason: str  # the engine's (stop, length, timeout), or "tool_calls" when the calls are whole


def calls_of(text: str, calls: tuple[ToolCall, ...], finish_reason: str, forced: bool) -> Calls:
    """A forced call is always a call, never the grammar's JSON as content; a call cut by the length
    or the deadline keeps that finish, a whole one finishes as `tool_calls`."""
    if forced and not calls:
        call, whole = parse_forced_call(text)
        calls = (call,)
        if not whole and finish_reason != "timeout":
            finish_reason = "length"
    if calls and finish_reason not in ("length", "timeout"):
        finish_reason = "tool_calls"
    return Calls(calls, finish_reason)


def call_message(calls: list[tuple[str, Any]]) -> str:
    """An assistant turn that made calls, as the text the chat template sees: the calls as JSON."""
    return json.dumps([{"name": name, "arguments": arguments} for name, arguments in calls])


def arguments_object(arguments: str) -> Any:
    """A call's JSON arguments as an object (Anthropic's `input`); partial JSON stays a string."""
    try:
        return json.loads(arguments) if arguments else {}
    except ValueError:
        return {"_partial": arguments}
