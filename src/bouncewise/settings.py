"""Reading settings from TOML tables into dataclasses, with every key and type checked.

The gate and the ledger read their configuration files through these functions, so that an
unknown key or a value of the wrong type is an error naming the key, never a setting quietly
left at its default.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["ConfigError", "build_settings", "load_toml", "reject_unknown"]

ConfigType = TypeVar("ConfigType")

SettingsType = TypeVar("SettingsType")


class ConfigError(ValueError):
    """A configuration file is unreadable or sets a key to an invalid value."""


def load_toml(path: str | None, parse: Callable[[dict[str, Any]], ConfigType]) -> ConfigType:
    """Read the TOML file at `path` (None: no file) and return `parse` of its contents.

    Every error is a ConfigError whose message starts with the path.
    """
    if path is None:
        return parse({})
    try:
        with open(path, "rb") as stream:
            data = tomllib.load(stream)
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror or error}") from error
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: invalid TOML: {error}") from error
    try:
        return parse(data)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from error


def build_settings(cls: type[SettingsType], table: Any, where: str) -> SettingsType:
    """Build the dataclass `cls` from a TOML table, checking names and types against its
    defaults; `where` names the table in error messages, such as "[gate]"."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    names = tuple(item.name for item in dataclasses.fields(cls))  # type: ignore[arg-type]
    reject_unknown(table, names, where)
    defaults = cls()
    values = {name: _typed(value, getattr(defaults, name), f"{where} {name}")
              for name, value in table.items()}
    return cls(**values)


def reject_unknown(table: dict, known: tuple[str, ...], where: str) -> None:
    """Raise ConfigError naming the first key of `table` that is not in `known`."""
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r} in {where}; known keys: "
                          f"{', '.join(known)}")


def _typed(value: Any, default: Any, where: str) -> Any:
    """Return `value` in the type of `default`; raise ConfigError if it does not fit."""
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, not {value!r}")
        return value
    if isinstance(default, (int, float)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ConfigError(f"{where} must be a positive number, not {value!r}")
        return type(default)(value)
    if isinstance(default, tuple):
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise ConfigError(f"{where} must be a list of strings")
        return tuple(value)
    if not isinstance(value, str):
        raise ConfigError(f"{where} must be a string, not {value!r}")
    return value
