// The operations API's OpenAPI 3.1 document, served at /api/v1/openapi.json. The same text is
// docs/api/openapi.json in the repository (OperationsAPITests checks they are equal); both are
// written by docs/api/generate.py: edit that and run it.

enum OpenAPIDocument {
    static let text = #"""
{
  "openapi": "3.1.0",
  "info": {
    "title": "paybridge operations API",
    "version": "1",
    "description": "What on-call asks of a running paybridge and does to it (product contract §11). Every route needs a bearer token (admin.token / admin.tokens); read tokens may not act."
  },
  "servers": [
    {
      "url": "/"
    }
  ],
  "security": [
    {
      "bearer": []
    }
  ],
  "paths": {
    "/api/v1/status": {
      "get": {
        "operationId": "status",
        "summary": "Is it polling; watches, endpoints, queue, the notifications subscription",
        "responses": {
          "401": {
            "description": "No token, or a wrong one",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "503": {
            "description": "The state storage cannot be read",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "200": {
            "description": "The status",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Status"
                }
              }
            }
          }
        }
      }
    },
    "/api/v1/payments": {
      "get": {
        "operationId": "findPayments",
        "summary": "Payments by id or by a reference their events carry",
        "parameters": [
          {
            "name": "q",
            "in": "query",
            "required": true,
            "schema": {
              "type": "string",
              "minLength": 1
            }
          }
        ],
        "responses": {
          "401": {
            "description": "No token, or a wrong one",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "503": {
            "description": "The state storage cannot be read",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "200": {
            "description": "Payments, newest first",
            "content": {
              "application/json": {
                "schema": {
                  "type": "object",
                  "required": [
                    "payments"
                  ],
                  "properties": {
                    "payments": {
                      "type": "array",
                      "items": {
                        "$ref": "#/components/schemas/Payment"
                      }
                    }
                  }
                }
              }
            }
          },
          "400": {
            "description": "No query",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        }
      }
    },
    "/api/v1/payments/{id}": {
      "get": {
        "operationId": "paymentTimeline",
        "summary": "A payment's timeline: events, deliveries, attempts",
        "parameters": [
          {
            "name": "id",
            "in": "path",
            "required": true,
            "schema": {
              "type": "string"
            }
          }
        ],
        "responses": {
          "401": {
            "description": "No token, or a wrong one",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "503": {
            "description": "The state storage cannot be read",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "200": {
            "description": "The timeline",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Timeline"
                }
              }
            }
          },
          "404": {
            "description": "paybridge has not seen it",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        }
      }
    },
    "/api/v1/events": {
      "get": {
        "operationId": "listEvents",
        "summary": "Events, newest first, a page at a time",
        "parameters": [
          {
            "name": "type",
            "in": "query",
            "description": "Any of these types: comma-separated, or the parameter repeated",
            "schema": {
              "type": "string"
            }
          },
          {
            "name": "status",
            "in": "query",
            "description": "Any of these statuses (Rejected,MissingFunding): comma-separated, or the parameter repeated",
            "schema": {
              "type": "string"
            }
          },
          {
            "name": "payment",
            "in": "query",
            "schema": {
              "type": "string"
            }
          },
          {
            "name": "since",
            "in": "query",
            "description": "A duration back from now (2h) or an ISO 8601 time",
            "schema": {
              "type": "string",
              "pattern": "^[0-9]{1,6}(ms|s|m|h|d)$|^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
            }
          },
          {
            "name": "limit",
            "in": "query",
            "schema": {
              "type": "integer",
              "minimum": 1,
              "maximum": 1000,
              "default": 50
            }
          },
          {
            "name": "cursor",
            "in": "query",
            "description": "The previous page's next: an event id (one that names no event is a 404, never an empty page)",
            "schema": {
              "type": "string"
            }
          }
        ],
        "responses": {
          "401": {
            "description": "No token, or a wrong one",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "503": {
            "description": "The state storage cannot be read",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "200": {
            "description": "A page",
            "content": {
              "application/json": {
                "schema": {
                  "type": "object",
                  "required": [
                    "events",
                    "next"
                  ],
                  "properties": {
                    "events": {
                      "type": "array",
                      "items": {
                        "$ref": "#/components/schemas/Event"
                      }
                    },
                    "next": {
                      "type": [
                        "string",
                        "null"
                      ]
                    }
                  }
                }
              }
            }
          },
          "400": {
            "description": "A bad parameter",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "404": {
            "description": "The cursor names no event",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        }
      }
    },
    "/api/v1/deliveries": {
      "get": {
        "operationId": "listDeliveries",
        "summary": "Deliveries, newest first, and counts per endpoint and state",
        "parameters": [
          {
            "name": "endpoint",
            "in": "query",
            "schema": {
              "type": "string"
            }
          },
          {
            "name": "state",
            "in": "query",
            "schema": {
              "type": "string",
              "enum": [
                "pending",
                "failing",
                "dead",
                "delivered"
              ]
            }
          },
          {
            "name": "since",
            "in": "query",
            "description": "A duration back from now (2h) or an ISO 8601 time",
            "schema": {
              "type": "string",
              "pattern": "^[0-9]{1,6}(ms|s|m|h|d)$|^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
            }
          },
          {
            "name": "limit",
            "in": "query",
            "schema": {
              "type": "integer",
              "minimum": 1,
              "maximum": 1000,
              "default": 50
            }
          },
          {
            "name": "cursor",
            "in": "query",
            "description": "The previous page's next",
            "schema": {
              "type": "string",
              "pattern": "^[0-9]{1,18}$"
            }
          }
        ],
        "responses": {
          "401": {
            "description": "No token, or a wrong one",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "503": {
            "description": "The state storage cannot be read",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "200": {
            "description": "A page",
            "content": {
              "application/json": {
                "schema": {
                  "type": "object",
                  "required": [
                    "deliveries",
                    "counts",
                    "next"
                  ],
                  "properties": {
                    "deliveries": {
                      "type": "array",
                      "items": {
                        "$ref": "#/components/schemas/Delivery"
                      }
                    },
                    "counts": {
                      "type": "object",
                      "additionalProperties": {
                        "type": "object",
                        "additionalProperties": {
                          "type": "integer"
                        }
                      }
                    },
                    "next": {
                      "type": [
                        "string",
                        "null"
                      ]
                    }
                  }
                }
              }
            }
          },
          "400": {
            "description": "A bad parameter or cursor",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "404": {
            "description": "No such endpoint",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        }
      }
    },
    "/api/v1/deliveries/{id}": {
      "get": {
        "operationId": "delivery",
        "summary": "One delivery with every attempt and the receiver's answers",
        "parameters": [
          {
            "name": "id",
            "in": "path",
            "required": true,
            "schema": {
              "type": "integer",
              "minimum": 1,
              "maximum": 9223372036854775807
            }
          }
        ],
        "responses": {
          "401": {
            "description": "No token, or a wrong one",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "503": {
            "description": "The state storage cannot be read",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "200": {
            "description": "The delivery",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/DeliveryDetail"
                }
              }
            }
          },
          "400": {
            "description": "Not a number",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "404": {
            "description": "No such delivery",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        }
      }
    },
    "/api/v1/deliveries/replay": {
      "post": {
        "operationId": "replay",
        "summary": "Queue deliveries again (same webhook-id); a dry run unless confirm is true",
        "requestBody": {
          "required": true,
          "content": {
            "application/json": {
              "schema": {
                "type": "object",
                "description": "ids (those deliveries), or endpoint (its dead letters, since a time)",
                "anyOf": [
                  {
                    "required": [
                      "ids"
                    ]
                  },
                  {
                    "required": [
                      "endpoint"
                    ]
                  }
                ],
                "properties": {
                  "ids": {
                    "type": "array",
                    "items": {
                      "type": "integer",
                      "minimum": 1,
                      "maximum": 9223372036854775807
                    }
                  },
                  "endpoint": {
                    "type": "string"
                  },
                  "state": {
                    "type": "string",
                    "enum": [
                      "dead"
                    ]
                  },
                  "since": {
                    "type": "string",
                    "pattern": "^[0-9]{1,6}(ms|s|m|h|d)$|^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
                  },
                  "confirm": {
                    "type": "boolean",
                    "default": false
                  }
                }
              }
            }
          }
        },
        "responses": {
          "401": {
            "description": "No token, or a wrong one",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "503": {
            "description": "The state storage cannot be read",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "400": {
            "description": "A malformed request",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "403": {
            "description": "A read token, or a console action without its CSRF token",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "404": {
            "description": "No such endpoint, delivery or event",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "200": {
            "description": "What the replay does (or did)",
            "content": {
              "application/json": {
                "schema": {
                  "type": "object",
                  "required": [
                    "dryRun",
                    "ids",
                    "outOfOrder",
                    "replayed"
                  ],
                  "properties": {
                    "dryRun": {
                      "type": "boolean"
                    },
                    "ids": {
                      "type": "array",
                      "items": {
                        "type": "integer"
                      }
                    },
                    "outOfOrder": {
                      "type": "array",
                      "items": {
                        "type": "integer"
                      }
                    },
                    "replayed": {
                      "type": "array",
                      "items": {
                        "type": "integer"
                      }
                    }
                  }
                }
              }
            }
          }
        }
      }
    },
    "/api/v1/events/{id}/redeliver": {
      "post": {
        "operationId": "redeliver",
        "summary": "Queue an event again for one endpoint, same webhook-id",
        "parameters": [
          {
            "name": "id",
            "in": "path",
            "required": true,
            "schema": {
              "type": "string"
            }
          }
        ],
        "requestBody": {
          "required": true,
          "content": {
            "application/json": {
              "schema": {
                "type": "object",
                "required": [
                  "endpoint"
                ],
                "properties": {
                  "endpoint": {
                    "type": "string"
                  }
                }
              }
            }
          }
        },
        "responses": {
          "401": {
            "description": "No token, or a wrong one",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "503": {
            "description": "The state storage cannot be read",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "400": {
            "description": "A malformed request",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "403": {
            "description": "A read token, or a console action without its CSRF token",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "404": {
            "description": "No such endpoint, delivery or event",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "200": {
            "description": "Queued",
            "content": {
              "application/json": {
                "schema": {
                  "type": "object",
                  "required": [
                    "delivery",
                    "outOfOrder"
                  ],
                  "properties": {
                    "delivery": {
                      "type": "integer"
                    },
                    "outOfOrder": {
                      "type": "boolean"
                    }
                  }
                }
              }
            }
          }
        }
      }
    },
    "/api/v1/endpoints/{name}/enable": {
      "post": {
        "operationId": "enableEndpoint",
        "summary": "Re-enable an endpoint",
        "parameters": [
          {
            "name": "name",
            "in": "path",
            "required": true,
            "schema": {
              "type": "string"
            }
          }
        ],
        "requestBody": {
          "required": false,
          "content": {
            "application/json": {
              "schema": {
                "type": "object"
              }
            }
          }
        },
        "responses": {
          "401": {
            "description": "No token, or a wrong one",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "503": {
            "description": "The state storage cannot be read",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "400": {
            "description": "A malformed request",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "403": {
            "description": "A read token, or a console action without its CSRF token",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "404": {
            "description": "No such endpoint, delivery or event",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "200": {
            "description": "Enabled",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/EndpointChange"
                }
              }
            }
          }
        }
      }
    },
    "/api/v1/endpoints/{name}/disable": {
      "post": {
        "operationId": "disableEndpoint",
        "summary": "Disable an endpoint: its deliveries wait",
        "parameters": [
          {
            "name": "name",
            "in": "path",
            "required": true,
            "schema": {
              "type": "string"
            }
          }
        ],
        "requestBody": {
          "required": false,
          "content": {
            "application/json": {
              "schema": {
                "type": "object",
                "properties": {
                  "reason": {
                    "type": "string"
                  }
                }
              }
            }
          }
        },
        "responses": {
          "401": {
            "description": "No token, or a wrong one",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "503": {
            "description": "The state storage cannot be read",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "400": {
            "description": "A malformed request",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "403": {
            "description": "A read token, or a console action without its CSRF token",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "404": {
            "description": "No such endpoint, delivery or event",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "200": {
            "description": "Disabled",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/EndpointChange"
                }
              }
            }
          }
        }
      }
    },
    "/api/v1/stream": {
      "get": {
        "operationId": "stream",
        "summary": "Server-sent events: event (a new event), delivery (a delivery changed), endpoint (health changed)",
        "responses": {
          "401": {
            "description": "No token, or a wrong one",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "503": {
            "description": "The state storage cannot be read",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "200": {
            "description": "A text/event-stream; ends after ten minutes (EventSource reconnects)",
            "content": {
              "text/event-stream": {
                "schema": {
                  "type": "string"
                }
              }
            }
          }
        }
      }
    },
    "/api/v1/openapi.json": {
      "get": {
        "operationId": "openapi",
        "summary": "This document",
        "security": [],
        "responses": {
          "200": {
            "description": "The OpenAPI 3.1 document",
            "content": {
              "application/json": {
                "schema": {
                  "type": "object"
                }
              }
            }
          }
        }
      }
    }
  },
  "components": {
    "securitySchemes": {
      "bearer": {
        "type": "http",
        "scheme": "bearer"
      }
    },
    "schemas": {
      "Error": {
        "type": "object",
        "required": [
          "error"
        ],
        "properties": {
          "error": {
            "type": "object",
            "required": [
              "code",
              "message"
            ],
            "properties": {
              "code": {
                "type": "string"
              },
              "message": {
                "type": "string"
              }
            }
          }
        }
      },
      "Payment": {
        "type": "object",
        "required": [
          "paymentId",
          "status",
          "changes",
          "updatedAt"
        ],
        "properties": {
          "paymentId": {
            "type": "string"
          },
          "status": {
            "type": "string"
          },
          "changes": {
            "type": "integer"
          },
          "updatedAt": {
            "type": "string",
            "format": "date-time"
          },
          "firstSeenAt": {
            "type": [
              "string",
              "null"
            ],
            "format": "date-time"
          },
          "firstStatus": {
            "type": [
              "string",
              "null"
            ]
          },
          "firstWatch": {
            "type": [
              "string",
              "null"
            ]
          }
        }
      },
      "Event": {
        "type": "object",
        "required": [
          "id",
          "type",
          "subject",
          "sequence",
          "createdAt"
        ],
        "properties": {
          "id": {
            "type": "string"
          },
          "type": {
            "type": "string"
          },
          "subject": {
            "type": "string"
          },
          "sequence": {
            "type": "integer"
          },
          "status": {
            "type": [
              "string",
              "null"
            ]
          },
          "previousStatus": {
            "type": [
              "string",
              "null"
            ]
          },
          "watch": {
            "type": [
              "string",
              "null"
            ]
          },
          "createdAt": {
            "type": "string",
            "format": "date-time"
          },
          "members": {
            "type": "array",
            "items": {
              "type": "object"
            }
          }
        }
      },
      "Delivery": {
        "type": "object",
        "required": [
          "id",
          "eventId",
          "eventType",
          "endpoint",
          "subject",
          "state",
          "attempts"
        ],
        "properties": {
          "id": {
            "type": "integer"
          },
          "eventId": {
            "type": "string"
          },
          "eventType": {
            "type": "string"
          },
          "endpoint": {
            "type": "string"
          },
          "subject": {
            "type": "string"
          },
          "sequence": {
            "type": "integer"
          },
          "state": {
            "type": "string",
            "enum": [
              "pending",
              "failing",
              "dead",
              "delivered"
            ]
          },
          "attempts": {
            "type": "integer"
          },
          "dueAt": {
            "type": [
              "string",
              "null"
            ],
            "format": "date-time"
          },
          "createdAt": {
            "type": [
              "string",
              "null"
            ],
            "format": "date-time"
          },
          "updatedAt": {
            "type": [
              "string",
              "null"
            ],
            "format": "date-time"
          },
          "deliveredAt": {
            "type": [
              "string",
              "null"
            ],
            "format": "date-time"
          },
          "lastAttemptAt": {
            "type": [
              "string",
              "null"
            ],
            "format": "date-time"
          },
          "lastStatus": {
            "type": [
              "integer",
              "null"
            ]
          },
          "lastError": {
            "type": [
              "string",
              "null"
            ]
          }
        }
      },
      "TimelineDelivery": {
        "type": "object",
        "required": [
          "id",
          "eventId",
          "endpoint",
          "state",
          "attempts"
        ],
        "description": "A delivery in a timeline: attempts is its attempt log",
        "properties": {
          "id": {
            "type": "integer"
          },
          "eventId": {
            "type": "string"
          },
          "eventType": {
            "type": "string"
          },
          "endpoint": {
            "type": "string"
          },
          "subject": {
            "type": "string"
          },
          "sequence": {
            "type": "integer"
          },
          "state": {
            "type": "string",
            "enum": [
              "pending",
              "failing",
              "dead",
              "delivered"
            ]
          },
          "attempts": {
            "type": "array",
            "items": {
              "$ref": "#/components/schemas/Attempt"
            }
          },
          "dueAt": {
            "type": [
              "string",
              "null"
            ],
            "format": "date-time"
          },
          "createdAt": {
            "type": [
              "string",
              "null"
            ],
            "format": "date-time"
          },
          "updatedAt": {
            "type": [
              "string",
              "null"
            ],
            "format": "date-time"
          },
          "deliveredAt": {
            "type": [
              "string",
              "null"
            ],
            "format": "date-time"
          },
          "lastAttemptAt": {
            "type": [
              "string",
              "null"
            ],
            "format": "date-time"
          },
          "lastStatus": {
            "type": [
              "integer",
              "null"
            ]
          },
          "lastError": {
            "type": [
              "string",
              "null"
            ]
          }
        }
      },
      "Attempt": {
        "type": "object",
        "required": [
          "number",
          "startedAt",
          "durationMs"
        ],
        "properties": {
          "number": {
            "type": "integer"
          },
          "startedAt": {
            "type": "string",
            "format": "date-time"
          },
          "durationMs": {
            "type": "number"
          },
          "httpStatus": {
            "type": [
              "integer",
              "null"
            ]
          },
          "error": {
            "type": [
              "string",
              "null"
            ]
          },
          "response": {
            "type": [
              "string",
              "null"
            ]
          }
        }
      },
      "DeliveryDetail": {
        "type": "object",
        "required": [
          "delivery",
          "attempts"
        ],
        "properties": {
          "delivery": {
            "$ref": "#/components/schemas/Delivery"
          },
          "attempts": {
            "type": "array",
            "items": {
              "$ref": "#/components/schemas/Attempt"
            }
          },
          "members": {
            "type": "array",
            "items": {
              "type": "object"
            }
          }
        }
      },
      "Timeline": {
        "type": "object",
        "required": [
          "payment",
          "events"
        ],
        "properties": {
          "payment": {
            "$ref": "#/components/schemas/Payment"
          },
          "events": {
            "type": "array",
            "items": {
              "allOf": [
                {
                  "$ref": "#/components/schemas/Event"
                },
                {
                  "type": "object",
                  "required": [
                    "deliveries"
                  ],
                  "properties": {
                    "deliveries": {
                      "type": "array",
                      "items": {
                        "$ref": "#/components/schemas/TimelineDelivery"
                      }
                    },
                    "groups": {
                      "type": "array",
                      "items": {
                        "type": "object"
                      }
                    }
                  }
                }
              ]
            }
          }
        }
      },
      "Endpoint": {
        "type": "object",
        "required": [
          "name",
          "health",
          "pending",
          "dead",
          "circuit"
        ],
        "properties": {
          "name": {
            "type": "string"
          },
          "health": {
            "type": "string",
            "enum": [
              "ok",
              "failing",
              "disabled"
            ]
          },
          "url": {
            "type": [
              "string",
              "null"
            ]
          },
          "pending": {
            "type": "integer"
          },
          "dead": {
            "type": "integer"
          },
          "oldestPendingAt": {
            "type": [
              "string",
              "null"
            ],
            "format": "date-time"
          },
          "oldestPendingSeconds": {
            "type": [
              "integer",
              "null"
            ]
          },
          "lastSuccessAt": {
            "type": [
              "string",
              "null"
            ],
            "format": "date-time"
          },
          "lastFailureAt": {
            "type": [
              "string",
              "null"
            ],
            "format": "date-time"
          },
          "failures": {
            "type": [
              "integer",
              "null"
            ]
          },
          "failingSince": {
            "type": [
              "string",
              "null"
            ],
            "format": "date-time"
          },
          "circuit": {
            "type": "string"
          },
          "disabledAt": {
            "type": [
              "string",
              "null"
            ],
            "format": "date-time"
          },
          "disabledReason": {
            "type": [
              "string",
              "null"
            ]
          }
        }
      },
      "EndpointChange": {
        "type": "object",
        "required": [
          "endpoint",
          "state",
          "changed"
        ],
        "properties": {
          "endpoint": {
            "type": "string"
          },
          "state": {
            "type": "string",
            "enum": [
              "enabled",
              "disabled"
            ]
          },
          "changed": {
            "type": "boolean"
          }
        }
      },
      "Status": {
        "type": "object",
        "required": [
          "polling",
          "ready",
          "reasons",
          "watches",
          "endpoints",
          "queue",
          "notifications"
        ],
        "properties": {
          "polling": {
            "type": "boolean"
          },
          "ready": {
            "type": "boolean"
          },
          "reasons": {
            "type": "array",
            "items": {
              "type": "string"
            }
          },
          "watches": {
            "type": "array",
            "items": {
              "type": "object",
              "required": [
                "name",
                "every"
              ],
              "properties": {
                "name": {
                  "type": "string"
                },
                "every": {
                  "type": "string"
                },
                "lastSuccessAt": {
                  "type": [
                    "string",
                    "null"
                  ],
                  "format": "date-time"
                },
                "lastFailureAt": {
                  "type": [
                    "string",
                    "null"
                  ],
                  "format": "date-time"
                },
                "lastError": {
                  "type": [
                    "string",
                    "null"
                  ]
                }
              }
            }
          },
          "endpoints": {
            "type": "array",
            "items": {
              "$ref": "#/components/schemas/Endpoint"
            }
          },
          "queue": {
            "type": "object",
            "required": [
              "pending",
              "dead"
            ],
            "properties": {
              "pending": {
                "type": "integer"
              },
              "dead": {
                "type": "integer"
              }
            }
          },
          "notifications": {
            "type": [
              "object",
              "null"
            ],
            "properties": {
              "publicURL": {
                "type": "string"
              },
              "active": {
                "type": "boolean"
              },
              "status": {
                "type": "string"
              },
              "subscriptionId": {
                "type": "string"
              },
              "statusMessage": {
                "type": [
                  "string",
                  "null"
                ]
              },
              "error": {
                "type": "string"
              },
              "pendingLookups": {
                "type": "integer"
              }
            }
          },
          "time": {
            "type": "string",
            "format": "date-time"
          }
        }
      }
    }
  }
}

"""#
}
