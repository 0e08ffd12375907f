"""Verifies captured deliveries with the reference Standard Webhooks library.

Usage: python3 verify_standard_webhooks.py CAPTURE.json
CAPTURE.json: {"secret": "whsec_…", "deliveries": [{"headers": {…}, "body": "…"}]}
Prints "verified N" and exits 0 when every signature verifies; exits 1 otherwise.
"""
import json
import sys

from standardwebhooks.webhooks import Webhook

capture = json.load(open(sys.argv[1]))
webhook = Webhook(capture["secret"])
for index, delivery in enumerate(capture["deliveries"]):
    try:
        webhook.verify(delivery["body"], delivery["headers"])
    except Exception as error:  # noqa: BLE001 - report any failure with its delivery
        print(f"delivery {index} failed verification: {error}")
        sys.exit(1)
print(f"verified {len(capture['deliveries'])}")
