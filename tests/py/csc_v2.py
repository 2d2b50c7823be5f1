"""A portal on the CSC API v2 with OAuth 2.0: requests-oauthlib's OAuth2Session (nobody at trustd
wrote it) runs the client credentials grant (RFC 6749 §4.4) against trustd's oauth2/token, which
info names, with the portal's client secret; with the access token it lists its credentials with
their information, authorizes two hashes and has them signed. `cryptography` verifies both
signatures with the certificate credentials/list returned. Then the token endpoint and the v2
methods are sent what a careless or hostile client would send, and each answer is reported.

usage: csc_v2.py CSC_V2_URL ROOT.pem CLIENT_ID CLIENT_SECRET

CSC_V2_URL ends in /csc/v2/. Prints one JSON object; `access_token` is a token it was granted.
"""
import base64
import hashlib
import json
import os
import secrets
import sys

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from oauthlib.oauth2 import BackendApplicationClient
from requests_oauthlib import OAuth2Session

SHA256 = "2.16.840.1.101.3.4.2.1"
ECDSA_SHA256 = "1.2.840.10045.4.3.2"


def b64(data):
    return base64.b64encode(data).decode()


def answer(r):
    """(status, decoded body, the headers a token endpoint must set)."""
    try:
        body = r.json()
    except ValueError:
        body = r.text
    kept = {k: r.headers[k] for k in ("Cache-Control", "Pragma", "WWW-Authenticate") if k in r.headers}
    return [r.status_code, body, kept]


def main():
    base, root, client_id, secret = sys.argv[1:5]
    # requests lets these override a session's own CA file: only trustd's root is to be trusted.
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        os.environ.pop(name, None)
    report = {}
    plain = requests.Session()
    plain.verify = root

    info = plain.post(base + "info", json={}).json()
    report["info"] = info
    token_url = info["oauth2"] + "oauth2/token"

    # The grant as the library makes it: client ID and secret by HTTP Basic.
    oauth = OAuth2Session(client=BackendApplicationClient(client_id=client_id))
    token = oauth.fetch_token(token_url=token_url, client_id=client_id, client_secret=secret, verify=root)
    report["token"] = {k: token.get(k) for k in ("token_type", "expires_in", "scope")}
    report["access_token"] = token["access_token"]

    def call(method, body, session=oauth):
        return answer(session.post(base + method, json=body, verify=root))

    listed = call("credentials/list", {"credentialInfo": True, "certificates": "chain", "certInfo": True})
    report["list"] = listed[:2]
    report["credential_info"] = call("credentials/info", {"credentialID": "default", "authInfo": True})[:2]
    signer = listed[1]["credentialInfos"][0]["cert"]["certificates"][0]
    certificate = x509.load_der_x509_certificate(base64.b64decode(signer))

    h1, h2 = hashlib.sha256(b"one").digest(), hashlib.sha256(b"two").digest()
    both = [b64(h1), b64(h2)]
    authorized = call(
        "credentials/authorize",
        {"credentialID": "default", "numSignatures": 2, "hashes": both, "hashAlgorithmOID": SHA256},
    )
    report["authorize"] = authorized[:2]
    sign = {"credentialID": "default", "SAD": authorized[1]["SAD"], "hashes": both, "hashAlgorithmOID": SHA256}
    sign.update({"signAlgo": ECDSA_SHA256, "operationMode": "S"})
    signed = call("signatures/signHash", sign)
    report["sign_hash"] = signed[:2]
    verified = 0
    for digest, signature in zip((h1, h2), signed[1]["signatures"]):
        certificate.public_key().verify(
            base64.b64decode(signature), digest, ec.ECDSA(utils.Prehashed(hashes.SHA256()))
        )
        verified += 1
    report["verified"] = verified

    # The token endpoint: the secret in the body works too; each mistake gets RFC 6749's error.
    grant = {"grant_type": "client_credentials"}
    post = lambda data, **kw: answer(plain.post(token_url, data=data, **kw))  # noqa: E731
    body_secret = post({**grant, "client_id": client_id, "client_secret": secret})
    report["body_secret"] = [body_secret[0], sorted(body_secret[1]), body_secret[2]]
    bad = {}
    bad["wrong_secret"] = post(grant, auth=(client_id, "not-the-secret"))
    bad["another_clients_name"] = post(grant, auth=("auditor", secret))
    bad["no_credentials"] = post(grant)
    bad["password_grant"] = post({"grant_type": "password", "username": "u", "password": "p"}, auth=(client_id, secret))
    bad["no_grant_type"] = post({}, auth=(client_id, secret))
    bad["credential_scope"] = post({**grant, "scope": "credential"}, auth=(client_id, secret))
    bad["json_body"] = answer(plain.post(token_url, json=grant, auth=(client_id, secret)))
    bad["grant_type_twice"] = post([("grant_type", "client_credentials")] * 2, auth=(client_id, secret))
    bad["basic_and_body"] = post({**grant, "client_secret": secret}, auth=(client_id, secret))
    bad["bearer_at_token_endpoint"] = post(grant, headers={"Authorization": "Bearer " + token["access_token"]})

    # The v2 methods, with the token.
    forged = requests.Session()
    forged.headers["Authorization"] = "Bearer " + secrets.token_urlsafe(32)
    bad["forged_token"] = call("credentials/list", {}, session=forged)
    bad["secret_as_bearer"] = answer(
        plain.post(base + "credentials/list", json={}, headers={"Authorization": "Bearer " + secret})
    )
    one = {"credentialID": "default", "numSignatures": 1, "hashes": [b64(h1)], "hashAlgorithmOID": SHA256}
    sad = call("credentials/authorize", one)[1]["SAD"]
    bad["asynchronous"] = call("signatures/signHash", {**sign, "SAD": sad, "hashes": [b64(h1)], "operationMode": "A"})
    bad["no_sad"] = call("signatures/signHash", {k: v for k, v in sign.items() if k != "SAD"})
    bad["auth_data"] = call("credentials/authorize", {**one, "authData": [{"id": "PIN", "value": "1234"}]})
    bad["sha384_for_a_sha256_key"] = call("credentials/authorize", {**one, "hashAlgorithmOID": "2.16.840.1.101.3.4.2.2"})
    bad["unknown_version"] = answer(plain.post(base.replace("/csc/v2/", "/csc/v3/") + "info", json={}))
    # The SAD that was refused with operationMode A was not taken: it still signs, once.
    bad["sad_still_good"] = call("signatures/signHash", {**sign, "SAD": sad, "hashes": [b64(h1)]})[:2]
    report["bad"] = bad
    print(json.dumps(report))


if __name__ == "__main__":
    main()
