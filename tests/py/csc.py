"""A signing portal on the CSC API: pyHanko's own CSCSigner (nobody at trustd wrote it) lists
trustd's credentials over HTTPS with a client certificate, gets SAD bound to the hashes it signs,
has trustd sign them, embeds a PAdES B-T signature (its signature time-stamp from trustd's TSA
through pyHanko's HTTPTimeStamper) and validates the PDF against trustd's root, with pyHanko's PDF
validation and its AdES validation (ETSI EN 319 102-1); then a B-B PDF, without time-stamp,
validated the same way. Then the API is sent what a careless or hostile portal would send, and
each answer is reported.

usage: csc.py CSC_URL CERT KEY ROOT.pem TSA_URL OUT.pdf OTHER_CERT OTHER_KEY CREDENTIAL [probe]

CSC_URL ends in /csc/v1/; OTHER_* is another client; CREDENTIAL the credentialID the PDF is
signed with (the bad requests use the `default` policy's). With `probe`, only asks
credentials/list and credentials/authorize for CREDENTIAL and reports both. Prints one JSON
object.
"""
import asyncio
import base64
import hashlib
import io
import json
import ssl
import sys

import aiohttp
from asn1crypto import pem, x509
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.pdf_utils.writer import PageObject, PdfFileWriter
from pyhanko.sign import fields, signers
from pyhanko.sign.signers.csc_signer import (
    CSCAuthorizationManager,
    CSCServiceSessionInfo,
    CSCSigner,
    fetch_certs_in_csc_credential,
)
from pyhanko.sign.timestamps import HTTPTimeStamper
from pyhanko.sign.validation import async_validate_pdf_signature
from pyhanko_certvalidator import ValidationContext

from ades_check import ades, crls_of


def a_pdf():
    """A one-page PDF, written by pyHanko."""
    w = PdfFileWriter()
    content = generic.StreamObject(stream_data=b"BT /F1 12 Tf 72 720 Td (A contract) Tj ET")
    w.insert_page(PageObject(contents=w.add_object(content), media_box=(0, 0, 595.28, 841.89)))
    out = io.BytesIO()
    w.write(out)
    return out


class Authorizer(CSCAuthorizationManager):
    """SAD for exactly the hashes about to be signed (the credential says SCAL 2)."""

    def __init__(self, session, info, credential_info):
        super().__init__(info, credential_info)
        self.session = session
        self.calls = 0

    async def authorize_signature(self, hash_b64s):
        self.calls += 1
        body = self.format_csc_auth_request(hash_b64s=hash_b64s)
        url = self.csc_session_info.endpoint_url("credentials/authorize")
        async with self.session.post(url, json=body, raise_for_status=True) as r:
            return self.parse_csc_auth_response(await r.json())


async def call(session, url, body, raw=False):
    """POSTs `body` (JSON, or bytes as they are with raw), returns (status, decoded answer)."""
    kwargs = {"data": body, "headers": {"Content-Type": "application/json"}} if raw else {"json": body}
    async with session.post(url, **kwargs) as r:
        return r.status, await r.json(content_type=None)


def b64(data):
    return base64.b64encode(data).decode()


async def main():
    base, cert, key, root_path, tsa_url, out_path, other_cert, other_key, credential_id = sys.argv[1:10]
    probe = sys.argv[10:] == ["probe"]
    ctx = ssl.create_default_context(cafile=root_path)
    ctx.load_cert_chain(cert, key)
    other_ctx = ssl.create_default_context(cafile=root_path)
    other_ctx.load_cert_chain(other_cert, other_key)
    anonymous_ctx = ssl.create_default_context(cafile=root_path)
    report = {}
    one = {"credentialID": credential_id, "numSignatures": 1, "hash": [b64(hashlib.sha256(b"one").digest())]}
    if probe:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as session:
            report["list"] = await call(session, base + "credentials/list", {})
            report["authorize"] = await call(session, base + "credentials/authorize", one)
        print(json.dumps(report))
        return
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as session:
        report["info"] = await call(session, base + "info", {})
        report["list"] = await call(session, base + "credentials/list", {})

        info = CSCServiceSessionInfo(service_url=base.removesuffix("/csc/v1/"), credential_id=credential_id)
        credential = await fetch_certs_in_csc_credential(session, info)
        report["credential"] = {
            "signer": credential.signing_cert.subject.human_friendly,
            "chain": len(credential.chain),
            "mechanisms": sorted(credential.supported_mechanisms),
            "multisign": credential.max_batch_size,
            "hash_pinning": credential.hash_pinning_required,
            "signer_der": b64(credential.signing_cert.dump()),
        }
        authorizer = Authorizer(session, info, credential)
        signer = CSCSigner(session, authorizer)
        meta = signers.PdfSignatureMetadata(
            field_name="Signature1", md_algorithm="sha256", subfilter=fields.SigSeedSubFilter.PADES
        )
        out = io.BytesIO()
        await signers.PdfSigner(meta, signer=signer, timestamper=HTTPTimeStamper(tsa_url)).async_sign_pdf(
            IncrementalPdfFileWriter(a_pdf()), output=out
        )
        signed = out.getvalue()
        with open(out_path, "wb") as f:
            f.write(signed)
        root = x509.Certificate.load(pem.unarmor(open(root_path, "rb").read())[2])
        vc = ValidationContext(trust_roots=[root], other_certs=credential.chain)
        embedded = PdfFileReader(io.BytesIO(signed)).embedded_signatures[0]
        status = await async_validate_pdf_signature(embedded, vc, ts_validation_context=vc)
        crls = await crls_of(tsa_url)
        report["ades_b_t"] = await ades(embedded, root, crls, with_time=True)
        report["pdf"] = {
            "intact": status.intact,
            "valid": status.valid,
            "trusted": status.trusted,
            "subfilter": embedded.sig_object["/SubFilter"],
            "timestamp_valid": bool(status.timestamp_validity and status.timestamp_validity.valid),
            "timestamp_trusted": bool(status.timestamp_validity and status.timestamp_validity.trusted),
            "authorizations": authorizer.calls,
        }
        # B-B: the same signer without a time-stamper.
        out_bb = io.BytesIO()
        await signers.PdfSigner(meta, signer=CSCSigner(session, authorizer)).async_sign_pdf(
            IncrementalPdfFileWriter(a_pdf()), output=out_bb
        )
        embedded_bb = PdfFileReader(io.BytesIO(out_bb.getvalue())).embedded_signatures[0]
        status_bb = await async_validate_pdf_signature(embedded_bb, vc)
        report["pdf_b_b"] = {
            "intact": status_bb.intact,
            "valid": status_bb.valid,
            "trusted": status_bb.trusted,
            "timestamped": status_bb.timestamp_validity is not None,
        }
        report["ades_b_b"] = await ades(embedded_bb, root, crls, with_time=False)

        # What a careless or hostile portal sends.
        sign_algo = "1.2.840.10045.4.3.2"
        h1, h2 = hashlib.sha256(b"one").digest(), hashlib.sha256(b"two").digest()

        async def authorize(hashes, credential_id="default", n=None):
            body = {"credentialID": credential_id, "numSignatures": n or len(hashes), "hash": [b64(h) for h in hashes]}
            return await call(session, base + "credentials/authorize", body)

        def sign_hash(sad, hashes, **extra):
            body = {"credentialID": "default", "SAD": sad, "hash": [b64(h) for h in hashes], "signAlgo": sign_algo}
            body.update(extra)
            return call(session, base + "signatures/signHash", body)

        bad = {}
        _, a = await authorize([h1, h2])
        bad["first_use"] = await sign_hash(a["SAD"], [h1, h2], hashAlgo="2.16.840.1.101.3.4.2.1")
        bad["reused_sad"] = await sign_hash(a["SAD"], [h1])
        _, a = await authorize([h1])
        bad["hash_not_authorized"] = await sign_hash(a["SAD"], [h2])
        bad["after_refusal"] = await sign_hash(a["SAD"], [h1])
        bad["forged_sad"] = await sign_hash(b64(bytes(32)), [h1])
        _, a = await authorize([h1])
        bad["wrong_sign_algo"] = await sign_hash(a["SAD"], [h1], signAlgo="1.2.840.113549.1.1.11")
        bad["wrong_hash_algo"] = await sign_hash(a["SAD"], [h1], hashAlgo="2.16.840.1.101.3.4.2.3")
        bad["short_hash"] = await authorize([h1[:31]])
        bad["not_base64"] = await call(
            session, base + "credentials/authorize", {"credentialID": "default", "numSignatures": 1, "hash": ["%%%"]}
        )
        bad["too_many_hashes"] = await authorize([hashlib.sha256(bytes([i])).digest() for i in range(33)])
        bad["count_mismatch"] = await authorize([h1], n=2)
        bad["no_hashes_at_scal2"] = await call(
            session, base + "credentials/authorize", {"credentialID": "default", "numSignatures": 1}
        )
        bad["unknown_credential"] = await authorize([h1], credential_id="no-such-policy")
        bad["not_a_credential_of_the_client"] = await authorize([h1], credential_id="pades")
        bad["malformed_json"] = await call(session, base + "credentials/authorize", b"{", raw=True)
        bad["wrong_type"] = await call(
            session, base + "credentials/authorize", {"credentialID": "default", "numSignatures": "one", "hash": []}
        )
        bad["negative_count"] = await call(
            session, base + "credentials/authorize", {"credentialID": "default", "numSignatures": -1, "hash": []}
        )
        bad["unknown_method"] = await call(session, base + "signatures/signDoc", {})
        ts_body = {"hash": b64(h1), "hashAlgo": "2.16.840.1.101.3.4.2.1", "nonce": "0a1b2c3d4e5f"}
        status, stamped = await call(session, base + "signatures/timestamp", ts_body)
        report["timestamp"] = [status, stamped]
        bad["timestamp_wrong_length"] = await call(
            session, base + "signatures/timestamp", {"hash": b64(h1[:20]), "hashAlgo": "2.16.840.1.101.3.4.2.1"}
        )
        bad["timestamp_md5"] = await call(
            session, base + "signatures/timestamp", {"hash": b64(h1[:16]), "hashAlgo": "1.2.840.113549.2.5"}
        )
        bad["timestamp_bad_nonce"] = await call(
            session, base + "signatures/timestamp", {"hash": b64(h1), "hashAlgo": "2.16.840.1.101.3.4.2.1", "nonce": "xyz"}
        )
        # The last authorization was for h1; nothing above used it: it still signs, once.
        _, a = await authorize([h1])
        bad["still_good"] = await sign_hash(a["SAD"], [h1])
        report["bad"] = bad
        first = bad["first_use"][1].get("signatures", [])
        report["signatures"] = first

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=anonymous_ctx)) as anonymous:
        report["anonymous_list"] = await call(anonymous, base + "credentials/list", {})
        report["anonymous_info"] = await call(anonymous, base + "info", {})
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=other_ctx)) as other:
        report["other_client"] = await call(other, base + "credentials/list", {})
        report["other_authorize"] = await call(other, base + "credentials/authorize", one)
    print(json.dumps(report))


asyncio.run(main())
