"""Writes docs/api/openapi.json and Sources/PayBridge/Admin/OpenAPIDocument.swift (the served
copy) from one description: run it after changing the API, from the repository's root."""
import json
import os
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
def ref(name): return {"$ref": f"#/components/schemas/{name}"}
def resp(desc, schema): return {"description": desc, "content": {"application/json": {"schema": schema}}}
errors = {
    "401": resp("No token, or a wrong one", ref("Error")),
    "503": resp("The state storage cannot be read", ref("Error")),
}
action_errors = dict(errors, **{
    "400": resp("A malformed request", ref("Error")),
    "403": resp("A read token, or a console action without its CSRF token", ref("Error")),
    "404": resp("No such endpoint, delivery or event", ref("Error")),
})
nullable_str = {"type": ["string", "null"]}
SINCE = {"type": "string", "pattern": "^[0-9]{1,6}(ms|s|m|h|d)$|^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"}
nullable_time = {"type": ["string", "null"], "format": "date-time"}
nullable_int = {"type": ["integer", "null"]}
doc = {
  "openapi": "3.1.0",
  "info": {"title": "paybridge operations API", "version": "1",
           "description": "What on-call asks of a running paybridge and does to it (product contract §11). Every route needs a bearer token (admin.token / admin.tokens); read tokens may not act."},
  "servers": [{"url": "/"}],
  "security": [{"bearer": []}],
  "paths": {
    "/api/v1/status": {"get": {"operationId": "status", "summary": "Is it polling; watches, endpoints, queue, the notifications subscription",
        "responses": dict(errors, **{"200": resp("The status", ref("Status"))})}},
    "/api/v1/payments": {"get": {"operationId": "findPayments", "summary": "Payments by id or by a reference their events carry",
        "parameters": [{"name": "q", "in": "query", "required": True, "schema": {"type": "string", "minLength": 1}}],
        "responses": dict(errors, **{"200": resp("Payments, newest first", {"type": "object", "required": ["payments"], "properties": {"payments": {"type": "array", "items": ref("Payment")}}}),
                                     "400": resp("No query", ref("Error"))})}},
    "/api/v1/payments/{id}": {"get": {"operationId": "paymentTimeline", "summary": "A payment's timeline: events, deliveries, attempts",
        "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
        "responses": dict(errors, **{"200": resp("The timeline", ref("Timeline")), "404": resp("paybridge has not seen it", ref("Error"))})}},
    "/api/v1/events": {"get": {"operationId": "listEvents", "summary": "Events, newest first, a page at a time",
        "parameters": [
            {"name": "type", "in": "query", "description": "Any of these types: comma-separated, or the parameter repeated", "schema": {"type": "string"}},
            {"name": "status", "in": "query", "description": "Any of these statuses (Rejected,MissingFunding): comma-separated, or the parameter repeated", "schema": {"type": "string"}},
            {"name": "payment", "in": "query", "schema": {"type": "string"}},
            {"name": "since", "in": "query", "description": "A duration back from now (2h) or an ISO 8601 time", "schema": SINCE},
            {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50}},
            {"name": "cursor", "in": "query", "description": "The previous page's next: an event id (one that names no event is a 404, never an empty page)", "schema": {"type": "string"}}],
        "responses": dict(errors, **{"200": resp("A page", {"type": "object", "required": ["events", "next"], "properties": {
            "events": {"type": "array", "items": ref("Event")}, "next": nullable_str}}), "400": resp("A bad parameter", ref("Error")),
            "404": resp("The cursor names no event", ref("Error"))})}},
    "/api/v1/deliveries": {"get": {"operationId": "listDeliveries", "summary": "Deliveries, newest first, and counts per endpoint and state",
        "parameters": [
            {"name": "endpoint", "in": "query", "schema": {"type": "string"}},
            {"name": "state", "in": "query", "schema": {"type": "string", "enum": ["pending", "failing", "dead", "delivered"]}},
            {"name": "since", "in": "query", "description": "A duration back from now (2h) or an ISO 8601 time", "schema": SINCE},
            {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50}},
            {"name": "cursor", "in": "query", "description": "The previous page's next", "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"}}],
        "responses": dict(errors, **{"200": resp("A page", {"type": "object", "required": ["deliveries", "counts", "next"], "properties": {
            "deliveries": {"type": "array", "items": ref("Delivery")}, "counts": {"type": "object", "additionalProperties": {"type": "object", "additionalProperties": {"type": "integer"}}},
            "next": nullable_str}}), "400": resp("A bad parameter or cursor", ref("Error")), "404": resp("No such endpoint", ref("Error"))})}},
    "/api/v1/deliveries/{id}": {"get": {"operationId": "delivery", "summary": "One delivery with every attempt and the receiver's answers",
        "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1, "maximum": 9223372036854775807}}],
        "responses": dict(errors, **{"200": resp("The delivery", ref("DeliveryDetail")), "400": resp("Not a number", ref("Error")), "404": resp("No such delivery", ref("Error"))})}},
    "/api/v1/deliveries/replay": {"post": {"operationId": "replay", "summary": "Queue deliveries again (same webhook-id); a dry run unless confirm is true",
        "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object",
            "description": "ids (those deliveries), or endpoint (its dead letters, since a time)",
            "anyOf": [{"required": ["ids"]}, {"required": ["endpoint"]}], "properties": {
            "ids": {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 9223372036854775807}}, "endpoint": {"type": "string"}, "state": {"type": "string", "enum": ["dead"]},
            "since": SINCE, "confirm": {"type": "boolean", "default": False}}}}}},
        "responses": dict(action_errors, **{"200": resp("What the replay does (or did)", {"type": "object", "required": ["dryRun", "ids", "outOfOrder", "replayed"], "properties": {
            "dryRun": {"type": "boolean"}, "ids": {"type": "array", "items": {"type": "integer"}}, "outOfOrder": {"type": "array", "items": {"type": "integer"}},
            "replayed": {"type": "array", "items": {"type": "integer"}}}})})}},
    "/api/v1/events/{id}/redeliver": {"post": {"operationId": "redeliver", "summary": "Queue an event again for one endpoint, same webhook-id",
        "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object", "required": ["endpoint"], "properties": {"endpoint": {"type": "string"}}}}}},
        "responses": dict(action_errors, **{"200": resp("Queued", {"type": "object", "required": ["delivery", "outOfOrder"], "properties": {
            "delivery": {"type": "integer"}, "outOfOrder": {"type": "boolean"}}})})}},
    "/api/v1/endpoints/{name}/enable": {"post": {"operationId": "enableEndpoint", "summary": "Re-enable an endpoint",
        "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
        "requestBody": {"required": False, "content": {"application/json": {"schema": {"type": "object"}}}},
        "responses": dict(action_errors, **{"200": resp("Enabled", ref("EndpointChange"))})}},
    "/api/v1/endpoints/{name}/disable": {"post": {"operationId": "disableEndpoint", "summary": "Disable an endpoint: its deliveries wait",
        "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
        "requestBody": {"required": False, "content": {"application/json": {"schema": {"type": "object", "properties": {"reason": {"type": "string"}}}}}},
        "responses": dict(action_errors, **{"200": resp("Disabled", ref("EndpointChange"))})}},
    "/api/v1/stream": {"get": {"operationId": "stream", "summary": "Server-sent events: event (a new event), delivery (a delivery changed), endpoint (health changed)",
        "responses": dict(errors, **{"200": {"description": "A text/event-stream; ends after ten minutes (EventSource reconnects)", "content": {"text/event-stream": {"schema": {"type": "string"}}}}})}},
    "/api/v1/openapi.json": {"get": {"operationId": "openapi", "summary": "This document", "security": [],
        "responses": {"200": resp("The OpenAPI 3.1 document", {"type": "object"})}}},
  },
  "components": {
    "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
    "schemas": {
      "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
          "code": {"type": "string"}, "message": {"type": "string"}}}}},
      "Payment": {"type": "object", "required": ["paymentId", "status", "changes", "updatedAt"], "properties": {
          "paymentId": {"type": "string"}, "status": {"type": "string"}, "changes": {"type": "integer"}, "updatedAt": {"type": "string", "format": "date-time"},
          "firstSeenAt": nullable_time, "firstStatus": nullable_str, "firstWatch": nullable_str}},
      "Event": {"type": "object", "required": ["id", "type", "subject", "sequence", "createdAt"], "properties": {
          "id": {"type": "string"}, "type": {"type": "string"}, "subject": {"type": "string"}, "sequence": {"type": "integer"},
          "status": nullable_str, "previousStatus": nullable_str, "watch": nullable_str, "createdAt": {"type": "string", "format": "date-time"},
          "members": {"type": "array", "items": {"type": "object"}}}},
      "Delivery": {"type": "object", "required": ["id", "eventId", "eventType", "endpoint", "subject", "state", "attempts"], "properties": {
          "id": {"type": "integer"}, "eventId": {"type": "string"}, "eventType": {"type": "string"}, "endpoint": {"type": "string"},
          "subject": {"type": "string"}, "sequence": {"type": "integer"}, "state": {"type": "string", "enum": ["pending", "failing", "dead", "delivered"]},
          "attempts": {"type": "integer"}, "dueAt": nullable_time, "createdAt": nullable_time, "updatedAt": nullable_time, "deliveredAt": nullable_time,
          "lastAttemptAt": nullable_time, "lastStatus": nullable_int, "lastError": nullable_str}},
      "TimelineDelivery": {"type": "object", "required": ["id", "eventId", "endpoint", "state", "attempts"], "description": "A delivery in a timeline: attempts is its attempt log", "properties": {
          "id": {"type": "integer"}, "eventId": {"type": "string"}, "eventType": {"type": "string"}, "endpoint": {"type": "string"},
          "subject": {"type": "string"}, "sequence": {"type": "integer"}, "state": {"type": "string", "enum": ["pending", "failing", "dead", "delivered"]},
          "attempts": {"type": "array", "items": ref("Attempt")}, "dueAt": nullable_time, "createdAt": nullable_time, "updatedAt": nullable_time,
          "deliveredAt": nullable_time, "lastAttemptAt": nullable_time, "lastStatus": nullable_int, "lastError": nullable_str}},
      "Attempt": {"type": "object", "required": ["number", "startedAt", "durationMs"], "properties": {
          "number": {"type": "integer"}, "startedAt": {"type": "string", "format": "date-time"}, "durationMs": {"type": "number"},
          "httpStatus": nullable_int, "error": nullable_str, "response": nullable_str}},
      "DeliveryDetail": {"type": "object", "required": ["delivery", "attempts"], "properties": {
          "delivery": ref("Delivery"), "attempts": {"type": "array", "items": ref("Attempt")}, "members": {"type": "array", "items": {"type": "object"}}}},
      "Timeline": {"type": "object", "required": ["payment", "events"], "properties": {
          "payment": ref("Payment"), "events": {"type": "array", "items": {"allOf": [ref("Event"), {"type": "object", "required": ["deliveries"], "properties": {
              "deliveries": {"type": "array", "items": ref("TimelineDelivery")},
              "groups": {"type": "array", "items": {"type": "object"}}}}]}}}},
      "Endpoint": {"type": "object", "required": ["name", "health", "pending", "dead", "circuit"], "properties": {
          "name": {"type": "string"}, "health": {"type": "string", "enum": ["ok", "failing", "disabled"]}, "url": nullable_str,
          "pending": {"type": "integer"}, "dead": {"type": "integer"}, "oldestPendingAt": nullable_time, "oldestPendingSeconds": nullable_int,
          "lastSuccessAt": nullable_time, "lastFailureAt": nullable_time, "failures": nullable_int, "failingSince": nullable_time,
          "circuit": {"type": "string"}, "disabledAt": nullable_time, "disabledReason": nullable_str}},
      "EndpointChange": {"type": "object", "required": ["endpoint", "state", "changed"], "properties": {
          "endpoint": {"type": "string"}, "state": {"type": "string", "enum": ["enabled", "disabled"]}, "changed": {"type": "boolean"}}},
      "Status": {"type": "object", "required": ["polling", "ready", "reasons", "watches", "endpoints", "queue", "notifications"], "properties": {
          "polling": {"type": "boolean"}, "ready": {"type": "boolean"}, "reasons": {"type": "array", "items": {"type": "string"}},
          "watches": {"type": "array", "items": {"type": "object", "required": ["name", "every"], "properties": {
              "name": {"type": "string"}, "every": {"type": "string"}, "lastSuccessAt": nullable_time, "lastFailureAt": nullable_time, "lastError": nullable_str}}},
          "endpoints": {"type": "array", "items": ref("Endpoint")},
          "queue": {"type": "object", "required": ["pending", "dead"], "properties": {"pending": {"type": "integer"}, "dead": {"type": "integer"}}},
          "notifications": {"type": ["object", "null"], "properties": {"publicURL": {"type": "string"}, "active": {"type": "boolean"}, "status": {"type": "string"},
              "subscriptionId": {"type": "string"}, "statusMessage": nullable_str, "error": {"type": "string"}, "pendingLookups": {"type": "integer"}}},
          "time": {"type": "string", "format": "date-time"}}},
    }
  }
}
text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
open(os.path.join(ROOT, "docs/api/openapi.json"), "w").write(text)
swift = ('''// The operations API's OpenAPI 3.1 document, served at /api/v1/openapi.json. The same text is
// docs/api/openapi.json in the repository (OperationsAPITests checks they are equal); both are
// written by docs/api/generate.py: edit that and run it.

enum OpenAPIDocument {
    static let text = #"""
''' + text + '''
"""#
}
''')
open(os.path.join(ROOT, "Sources/PayBridge/Admin/OpenAPIDocument.swift"), "w").write(swift)
