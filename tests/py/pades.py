"""A signing portal that embeds trustd's signatures in PDFs: pyHanko (nobody at trustd wrote it)
prepares the signature and computes the byte-range digest, Python's grpcio asks trustd's
Signing.Sign for the CMS over that digest under a PAdES signing policy, pyHanko embeds the CMS
(its interrupted-signing API) and validates the signed PDF against trustd's root.

usage: pades.py TARGET CREDENTIALS_DIR PROTO_DIR ROOT.pem ISSUING.pem POLICY LEVEL OUT.pdf TSA_URL

LEVEL is B-B or B-T. Then pyHanko adds a document time-stamp from trustd's RFC 3161 TSA over
HTTP (its HTTPTimeStamper against POST /tsa at TSA_URL). Prints one JSON object: what pyHanko's
validation says (intact, valid, trusted, the subfilter, whether a signature time-stamp
validated, the document time-stamp's status), what its AdES validation says (EN 319 102-1 §5.3
for B-B, §5.5 for B-T), which signed attributes the CMS carries, and
trustd's own Verify indication for the CMS over the byte-range digest.
"""
import asyncio
import io
import json
import sys

import grpc
from asn1crypto import cms, pem, x509
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.pdf_utils.writer import PageObject, PdfFileWriter
from pyhanko.sign import fields, signers
from pyhanko.sign.signers.pdf_signer import PdfTBSDocument
from pyhanko.sign.timestamps import HTTPTimeStamper
from pyhanko.sign.validation import async_validate_pdf_signature, async_validate_pdf_timestamp
from pyhanko_certvalidator import ValidationContext

from ades_check import ades, crls_of
from grpc_client import stubs


def a_pdf():
    """A one-page PDF, written by pyHanko."""
    w = PdfFileWriter()
    content = generic.StreamObject(stream_data=b"BT /F1 12 Tf 72 720 Td (A contract) Tj ET")
    font = generic.DictionaryObject(
        {
            generic.pdf_name("/Type"): generic.pdf_name("/Font"),
            generic.pdf_name("/Subtype"): generic.pdf_name("/Type1"),
            generic.pdf_name("/BaseFont"): generic.pdf_name("/Helvetica"),
        }
    )
    resources = generic.DictionaryObject(
        {generic.pdf_name("/Font"): generic.DictionaryObject({generic.pdf_name("/F1"): w.add_object(font)})}
    )
    w.insert_page(PageObject(contents=w.add_object(content), media_box=(0, 0, 595.28, 841.89), resources=resources))
    out = io.BytesIO()
    w.write(out)
    return out


async def main():
    target, creds, proto_dir, root_path, issuing_path, policy, level, out_path, tsa_url = sys.argv[1:10]
    stubs(proto_dir)
    from trust.v1 import signing_pb2, signing_pb2_grpc

    read = lambda name: open(f"{creds}/{name}", "rb").read()
    credentials = grpc.ssl_channel_credentials(read("ca.crt"), read("operator.key"), read("operator.crt"))
    levels = {"B-B": signing_pb2.SIGNATURE_LEVEL_B_B, "B-T": signing_pb2.SIGNATURE_LEVEL_B_T}
    channel = grpc.secure_channel(target, credentials)
    signing = signing_pb2_grpc.SigningStub(channel)

    def sign(digest):
        req = signing_pb2.SignRequest(
            options=signing_pb2.SignOptions(policy=policy, level=levels[level], detached=True),
            digest=signing_pb2.Digest(hash_algorithm="sha256", value=digest),
        )
        return signing.Sign(req, timeout=30).signature_der

    # The portal knows the signer's certificate from an earlier signature (or from the CA).
    probe = cms.ContentInfo.load(sign(bytes(32)))["content"]
    signer_cert = probe["certificates"][0].chosen

    # pyHanko prepares the PDF: the signature field, the dictionary, room for the CMS, and the
    # digest of the byte range; the signer it is given signs nothing (an external CMS follows).
    external = signers.ExternalSigner(signing_cert=signer_cert, cert_registry=None, signature_value=bytes(256))
    meta = signers.PdfSignatureMetadata(
        field_name="Signature1", md_algorithm="sha256", subfilter=fields.SigSeedSubFilter.PADES
    )
    writer = IncrementalPdfFileWriter(a_pdf())
    prepared, _tbs, output = await signers.PdfSigner(meta, signer=external).async_digest_doc_for_signing(
        writer, bytes_reserved=16384
    )
    signature_der = sign(prepared.document_digest)
    await PdfTBSDocument.async_finish_signing(output, prepared, signature_cms=cms.ContentInfo.load(signature_der))
    output.seek(0)
    signed = output.read()

    # pyHanko validates what it embedded, trusting trustd's root only; the issuing CA is known
    # as a relying party's intermediate (the time-stamp token carries the TSA's certificate
    # alone, RFC 3161 §2.4.1 certReq).
    load = lambda path: x509.Certificate.load(pem.unarmor(open(path, "rb").read())[2])
    vc = ValidationContext(trust_roots=[load(root_path)], other_certs=[load(issuing_path)])
    # A document time-stamp (PAdES B-LTA's kind) from trustd's TSA, fetched by pyHanko itself.
    stamped = io.BytesIO()
    await signers.PdfTimeStamper(timestamper=HTTPTimeStamper(tsa_url)).async_timestamp_pdf(
        IncrementalPdfFileWriter(io.BytesIO(signed)), "sha256", validation_context=vc, output=stamped
    )
    signed = stamped.getvalue()
    with open(out_path, "wb") as f:
        f.write(signed)
    reader = PdfFileReader(io.BytesIO(signed))
    embedded = reader.embedded_signatures[0]
    status = await async_validate_pdf_signature(embedded, vc, ts_validation_context=vc)
    doc_ts = await async_validate_pdf_timestamp(reader.embedded_signatures[1], validation_context=vc)
    ades_status = await ades(embedded, load(root_path), await crls_of(tsa_url), with_time=level == "B-T")
    signer_info = embedded.signer_info
    attrs = [a["type"].native for a in signer_info["signed_attrs"]]
    unsigned = [a["type"].native for a in (signer_info["unsigned_attrs"] or [])]

    verified = signing.Verify(
        signing_pb2.VerifyRequest(
            signature=signature_der,
            digest=signing_pb2.Digest(hash_algorithm="sha256", value=prepared.document_digest),
        ),
        timeout=30,
    )
    channel.close()
    print(
        json.dumps(
            {
                "intact": status.intact,
                "valid": status.valid,
                "trusted": status.trusted,
                "bottom_line": status.bottom_line,
                "coverage": status.coverage.name,
                "modification_level": status.modification_level.name if status.modification_level else None,
                "subfilter": embedded.sig_object["/SubFilter"],
                "timestamp_valid": bool(status.timestamp_validity and status.timestamp_validity.valid),
                "timestamp_trusted": bool(status.timestamp_validity and status.timestamp_validity.trusted),
                "signed_attrs": attrs,
                "unsigned_attrs": unsigned,
                "document_timestamp": {"intact": doc_ts.intact, "valid": doc_ts.valid, "trusted": doc_ts.trusted},
                "ades": ades_status,
                "trustd_verify": signing_pb2.Indication.Name(verified.indication),
                "trustd_reasons": list(verified.reasons),
            }
        )
    )


asyncio.run(main())
