"""Validation of request bodies: readable 4xx messages instead of stack traces.

Every check names the field, what was received and what is allowed.  Bodies are parsed by hand (not by
pydantic models) so the status codes and wording stay under our control: 400 for a body that is not a
JSON object, 422 for a JSON object whose content is wrong.
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import InputError
from ..validation import check_text, short
from .errors import ServeHTTPError, bad_input


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "array",
            dict: "object"}.get(type(value), type(value).__name__)


def parse_json_object(body: bytes) -> dict[str, Any]:
    """Decode a request body that must be a JSON object; 400 otherwise."""
    if not body.strip():
        raise ServeHTTPError(400, "request body is empty; send a JSON object such as {\"inputs\": \"...\"}")
    try:
        data = json.loads(body)
    except UnicodeDecodeError as exc:
        raise ServeHTTPError(400, f"request body is not UTF-8 text: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise ServeHTTPError(400, f"request body is not valid JSON: {exc.msg} at line {exc.lineno} "
                                  f"column {exc.colno}") from exc
    except RecursionError:
        raise ServeHTTPError(400, "request body nests arrays or objects too deeply to parse; send a flat "
                                  '{"inputs": ...} object') from None
    except ValueError as exc:  # e.g. an integer literal with thousands of digits
        raise ServeHTTPError(400, f"request body is not acceptable JSON: {str(exc)[:120]}") from None
    if not isinstance(data, dict):
        raise ServeHTTPError(400, f"request body must be a JSON object, got {_type_name(data)}")
    return data


def require(data: dict[str, Any], key: str, where: str = "body") -> Any:
    if key not in data:
        raise bad_input(f"{where} is missing the field {key!r}", param=key)
    return data[key]


def text(value: Any, field: str) -> str:
    """A non-empty, non-blank string."""
    if not isinstance(value, str):
        raise bad_input(f"{field} must be a string, got {_type_name(value)}", param=field)
    if not value.strip():
        raise bad_input(f"{field} is an empty or whitespace-only string; send some text", param=field)
    try:
        return check_text(value, field)
    except InputError as exc:
        raise bad_input(str(exc), param=field) from None


def text_or_list(value: Any, field: str, *, max_items: int) -> tuple[list[str], bool]:
    """A string or a non-empty array of strings; returns ``(texts, was_single)``."""
    if isinstance(value, str):
        return [text(value, field)], True
    if isinstance(value, list):
        if not value:
            raise bad_input(f"{field} is an empty array; send at least one string", param=field)
        limit_items(len(value), field, max_items)
        return [text(v, f"{field}[{i}]") for i, v in enumerate(value)], False
    raise bad_input(f"{field} must be a string or an array of strings, got {_type_name(value)}", param=field)


def limit_items(count: int, field: str, max_items: int) -> None:
    if count > max_items:
        raise bad_input(f"{field} has {count} items; this server accepts at most {max_items} inputs per request "
                        "(--max-inputs-per-request); split the request", param=field)


def parameters(data: dict[str, Any], allowed: dict[str, str]) -> dict[str, Any]:
    """The ``parameters`` object, checked against ``allowed`` (name -> description); null values dropped."""
    params = data.get("parameters")
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise bad_input(f"parameters must be an object, got {_type_name(params)}", param="parameters")
    unknown = sorted(k for k, v in params.items() if k not in allowed and v is not None)
    if unknown:
        known = ", ".join(f"{k} ({d})" for k, d in allowed.items())
        raise bad_input(f"unsupported parameters {short(unknown)}; this model accepts: {known}",
                        param=short(unknown[0]))
    return {k: v for k, v in params.items() if v is not None}


def integer(value: Any, field: str, *, minimum: int, maximum: int | None = None, limit_name: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_input(f"{field} must be an integer, got {_type_name(value)}", param=field)
    if value < minimum:
        raise bad_input(f"{field} must be >= {minimum}, got {value}", param=field)
    if maximum is not None and value > maximum:
        why = f" ({limit_name})" if limit_name else ""
        raise bad_input(f"{field} must be <= {maximum}{why}, got {value}", param=field)
    return value


def boolean(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise bad_input(f"{field} must be true or false, got {_type_name(value)}", param=field)
    return value


def choice(value: Any, field: str, options: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in options:
        raise bad_input(f"{field} must be one of {', '.join(options)}; got {short(value)}", param=field)
    return value


def string_list(value: Any, field: str, *, max_items: int) -> list[str]:
    """A string or an array of non-empty strings (fill-mask ``targets``)."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise bad_input(f"{field} must be a string or a non-empty array of strings, got {_type_name(value)}",
                        param=field)
    limit_items(len(items), field, max_items)
    return [text(v, f"{field}[{i}]") for i, v in enumerate(items)]


def hashable(params: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    """A grouping key: jobs with equal keys share one model call."""
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in params.items()))
