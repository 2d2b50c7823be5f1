"""Independent check of a trustd time-stamp response, with code nobody at trustd wrote.

usage: verify_tsr.py RESPONSE.tsr DOCUMENT ROOT.pem ISSUING.pem TSA.pem [NONCE_HEX]

rfc3161-client verifies the token (signature, chain to ROOT, imprint over DOCUMENT, nonce);
asn1crypto checks RFC 5816: exactly one ESSCertIDv2, whose hash is the TSA certificate's.
Prints "OK" and exits 0, or prints the reason and exits 1.
"""
import hashlib
import sys

import cryptography.x509
from cryptography.hazmat.primitives.serialization import Encoding
from asn1crypto import cms, tsp
from rfc3161_client import VerifierBuilder, decode_timestamp_response


def load(path):
    return cryptography.x509.load_pem_x509_certificate(open(path, "rb").read())


def main():
    resp_path, doc_path, root, issuing, tsa = sys.argv[1:6]
    nonce = int(sys.argv[6], 16) if len(sys.argv) > 6 else None
    raw = open(resp_path, "rb").read()
    doc = open(doc_path, "rb").read()
    tsa_cert = load(tsa)

    builder = (
        VerifierBuilder()
        .tsa_certificate(tsa_cert)
        .add_intermediate_certificate(load(issuing))
        .add_root_certificate(load(root))
    )
    if nonce is not None:
        builder = builder.nonce(nonce)
    if not builder.build().verify_message(decode_timestamp_response(raw), doc):
        print("rfc3161-client: verification returned false")
        return 1

    resp = tsp.TimeStampResp.load(raw)
    signed_data = resp["time_stamp_token"]["content"]
    signer = signed_data["signer_infos"][0]
    attrs = {a["type"].native: a["values"] for a in signer["signed_attrs"]}
    for needed in ("content_type", "message_digest", "signing_certificate_v2"):
        if needed not in attrs:
            print(f"asn1crypto: signed attribute {needed} missing: {sorted(attrs)}")
            return 1
    certs = attrs["signing_certificate_v2"][0]["certs"]
    if len(certs) != 1:
        print(f"asn1crypto: {len(certs)} ESSCertIDv2 entries, RFC 5816 / OpenSSL want exactly one")
        return 1
    want = hashlib.sha256(tsa_cert.public_bytes(Encoding.DER)).digest()
    if certs[0]["cert_hash"].native != want:
        print("asn1crypto: ESSCertIDv2 hash is not the TSA certificate's")
        return 1
    if signed_data["encap_content_info"]["content_type"].native != "tst_info":
        print("asn1crypto: eContentType is not id-ct-TSTInfo")
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
