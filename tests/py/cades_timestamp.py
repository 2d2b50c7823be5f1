"""Pulls the signature time-stamp out of a CAdES B-T signature, with code nobody at trustd wrote.

usage: cades_timestamp.py SIGNATURE.p7s TOKEN_OUT.der

Writes the id-aa-signatureTimeStampToken attribute's token (a CMS ContentInfo) to TOKEN_OUT.der
and prints "<hash> <hex>": the token's hash algorithm and that hash of the SignerInfo's signature
value, which is what ETSI EN 319 122-1 §5.3 says the time-stamp covers. The caller checks the
token against it with `openssl ts -verify -digest`.
"""
import hashlib
import sys

from asn1crypto import cms, tsp


def main():
    sig_path, out_path = sys.argv[1:3]
    info = cms.ContentInfo.load(open(sig_path, "rb").read())
    signer = info["content"]["signer_infos"][0]
    tokens = [
        a["values"][0]
        for a in (signer["unsigned_attrs"] or [])
        if a["type"].dotted == "1.2.840.113549.1.9.16.2.14"
    ]
    if len(tokens) != 1:
        print(f"expected one signature time-stamp, found {len(tokens)}")
        sys.exit(1)
    token = tokens[0]
    open(out_path, "wb").write(token.dump())
    tst = token["content"]["encap_content_info"]["content"].parsed
    alg = tst["message_imprint"]["hash_algorithm"]["algorithm"].native
    digest = hashlib.new(alg, signer["signature"].native).hexdigest()
    print(alg, digest)


if __name__ == "__main__":
    main()
