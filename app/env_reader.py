"""Reading one environment variable at a time, each checked against its rule; a value the service
cannot start with raises SettingsError naming the variable, the value and what is allowed."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from app.proxies import parse_networks


class SettingsError(ValueError):
    """A variable has a value the service cannot start with; the message is one line naming it."""


class Reader:
    """Parses one variable at a time and raises SettingsError naming variable, value and rule."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._env = environ

    def optional(self, name: str) -> str | None:
        value = self._env.get(name, "").strip()
        return value or None

    def required(self, name: str) -> str:
        value = self.optional(name)
        if value is None:
            raise SettingsError(
                f"{name} is unset: required (allowed: a comma-separated list of model ids, or '*')"
            )
        return value

    def text(self, name: str, default: str) -> str:
        return self.optional(name) or default

    def csv(self, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
        raw = self.optional(name)
        if raw is None:
            return default
        return tuple(p.strip() for p in raw.split(",") if p.strip()) or default

    def networks(self, name: str) -> tuple:
        raw = self.optional(name)
        if raw is None:
            return ()
        try:
            return parse_networks(p for p in raw.split(",") if p.strip())
        except ValueError as error:
            raise self._fail(name, raw, f"comma-separated IP addresses or networks ({error})") from None

    def path(self, name: str) -> Path | None:
        raw = self.optional(name)
        return Path(raw).expanduser() if raw else None

    def _fail(self, name: str, raw: str, allowed: str) -> SettingsError:
        return SettingsError(f"{name}={raw!r} is invalid: allowed is {allowed}")

    def integer(self, name: str, default: int | None, low: int, high: int | None = None) -> int | None:
        raw = self.optional(name)
        if raw is None:
            return default
        allowed = f"an integer from {low} to {high}" if high is not None else f"an integer >= {low}"
        try:
            value = int(raw)
        except ValueError:
            raise self._fail(name, raw, allowed) from None
        if value < low or (high is not None and value > high):
            raise self._fail(name, raw, allowed)
        return value

    def number(self, name: str, default: float, low: float, high: float) -> float:
        raw = self.optional(name)
        if raw is None:
            return default
        allowed = f"a number from {low:g} to {high:g}"
        try:
            value = float(raw)
        except ValueError:
            raise self._fail(name, raw, allowed) from None
        if not low <= value <= high:
            raise self._fail(name, raw, allowed)
        return value

    def boolean(self, name: str, default: bool) -> bool:
        raw = self.optional(name)
        if raw is None:
            return default
        lowered = raw.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise self._fail(name, raw, "true or false")

    def choice(self, name: str, default: str, options: tuple[str, ...], *, upper: bool = False) -> str:
        raw = self.optional(name)
        if raw is None:
            return default
        value = raw.upper() if upper else raw.lower()
        if value not in options:
            raise self._fail(name, raw, "one of " + ", ".join(options))
        return value
