"""Sends notifications to paybridge as Banking Circle does, with an implementation of its own
(PyPI `cryptography`, not paybridge's code): AES-256-GCM with the subscription's 32-character
key taken as bytes, a random 12-byte nonce, no associated data; Nonce, AuthenticationTag and
Checksum (base64 SHA-256 of the plaintext) headers.

usage: bank_notification.py URL KEY ENCODING NOTIFICATIONS_JSON
  ENCODING: utf-8 | utf-16le | utf-16le-bom
  NOTIFICATIONS_JSON: a JSON array (sent as it is: an array, or one object)
Prints the HTTP status of the answer.
"""
import base64
import hashlib
import json
import os
import sys
import urllib.error
import urllib.request

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

url, key, encoding, document = sys.argv[1:5]
text = json.dumps(json.loads(document))
plaintext = {"utf-8": lambda t: t.encode("utf-8"),
             "utf-16le": lambda t: t.encode("utf-16-le"),
             "utf-16le-bom": lambda t: b"\xff\xfe" + t.encode("utf-16-le")}[encoding](text)
nonce = os.urandom(12)
sealed = AESGCM(key.encode("utf-8")).encrypt(nonce, plaintext, None)
ciphertext, tag = sealed[:-16], sealed[-16:]
request = urllib.request.Request(url, data=ciphertext, method="POST", headers={
    "Content-Type": "application/octet-stream",
    "Nonce": base64.b64encode(nonce).decode(),
    "AuthenticationTag": base64.b64encode(tag).decode(),
    "Checksum": base64.b64encode(hashlib.sha256(plaintext).digest()).decode(),
    "SubscriptionVersion": "1",
})
try:
    with urllib.request.urlopen(request, timeout=20) as answer:
        print(answer.status)
except urllib.error.HTTPError as error:
    print(error.code)
