"""Checks paybridge's signed bank requests independently, with Python's `cryptography`.

Usage: python3 verify_request_signatures.py CAPTURE.json
CAPTURE.json: {"certificate": "/path/qseal.pem", "psuId": "…" or null,
               "requests": [{"headers": {lower-case name: value}, "body": ""}]}
For each request: the Digest is the hash of the body, TPP-Signature-Certificate is the
certificate, keyId names its serial number and issuer, and the signature over the listed
headers verifies with the certificate's public key (RSA PKCS#1 v1.5).
Prints "verified N" and exits 0 when every request passes; exits 1 otherwise.
"""
import base64
import hashlib
import json
import re
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

capture = json.load(open(sys.argv[1]))
certificate = x509.load_pem_x509_certificate(open(capture["certificate"], "rb").read())
der = certificate.public_bytes(serialization.Encoding.DER)
expected_key_id = "SN=%X,CA=%s" % (certificate.serial_number, certificate.issuer.rfc4514_string())


def fail(index, message):
    print(f"request {index}: {message}")
    sys.exit(1)


for index, request in enumerate(capture["requests"]):
    headers = request["headers"]
    body = request.get("body", "").encode()
    fields = dict(re.findall(r'(\w+)="([^"]*)"', headers.get("signature", "")))
    algorithm = fields.get("algorithm")
    if algorithm not in ("rsa-sha256", "rsa-sha512"):
        fail(index, f"algorithm {algorithm!r}")
    digest_name, hash_algorithm, hasher = (
        ("SHA-256", hashes.SHA256(), hashlib.sha256) if algorithm == "rsa-sha256" else ("SHA-512", hashes.SHA512(), hashlib.sha512)
    )
    expected_digest = f"{digest_name}=" + base64.b64encode(hasher(body).digest()).decode()
    if headers.get("digest") != expected_digest:
        fail(index, f"digest {headers.get('digest')!r} is not {expected_digest!r}")
    if base64.b64decode(headers.get("tpp-signature-certificate", "")) != der:
        fail(index, "TPP-Signature-Certificate is not the certificate")
    if fields.get("keyId") != expected_key_id:
        fail(index, f"keyId {fields.get('keyId')!r} is not {expected_key_id!r}")
    names = fields.get("headers", "").split(" ")
    expected_names = ["digest", "x-request-id"] + (["psu-id"] if capture.get("psuId") else [])
    if names != expected_names:
        fail(index, f"signed headers {names} are not {expected_names}")
    if capture.get("psuId") and headers.get("psu-id") != capture["psuId"]:
        fail(index, f"PSU-ID {headers.get('psu-id')!r}")
    signing_string = "\n".join(f"{name}: {headers[name]}" for name in names).encode()
    try:
        certificate.public_key().verify(base64.b64decode(fields["signature"]), signing_string, padding.PKCS1v15(), hash_algorithm)
    except Exception as error:  # noqa: BLE001 - report any failure with its request
        fail(index, f"signature does not verify: {error!r}")
print(f"verified {len(capture['requests'])}")
