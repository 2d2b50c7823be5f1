"""The qualified-certificate statements of a certificate, read by asn1crypto.

usage: qc_statements.py CERT.pem

asn1crypto parses the certificate; the qcStatements extension (RFC 3739 §3.2.6), which it
does not declare, is read with the ASN.1 of RFC 3739 and ETSI EN 319 412-5 Annex B declared
here. Prints one JSON object: whether the extension is critical, each statement (its OID and,
for QcType, QcPDS and pkixQCSyntax-v2, its information), the certificate policies and the
subject's attributes.
"""
import json
import sys

from asn1crypto import core, pem, x509


class QcStatement(core.Sequence):
    _fields = [("statement_id", core.ObjectIdentifier), ("statement_info", core.Any, {"optional": True})]


class QcStatements(core.SequenceOf):
    _child_spec = QcStatement


class QcType(core.SequenceOf):
    _child_spec = core.ObjectIdentifier


class PdsLocation(core.Sequence):
    _fields = [("url", core.IA5String), ("language", core.PrintableString)]


class PdsLocations(core.SequenceOf):
    _child_spec = PdsLocation


class SemanticsInformation(core.Sequence):
    _fields = [
        ("semantics_identifier", core.ObjectIdentifier, {"optional": True}),
        ("name_registration_authorities", x509.GeneralNames, {"optional": True}),
    ]


INFO = {
    "0.4.0.1862.1.6": lambda a: {"types": [t.dotted for t in QcType.load(a.dump())]},
    "0.4.0.1862.1.5": lambda a: {"pds": [[p["url"].native, p["language"].native] for p in PdsLocations.load(a.dump())]},
    "1.3.6.1.5.5.7.11.2": lambda a: {"semantics": SemanticsInformation.load(a.dump())["semantics_identifier"].dotted},
}


def main():
    der = open(sys.argv[1], "rb").read()
    if pem.detect(der):
        _, _, der = pem.unarmor(der)
    cert = x509.Certificate.load(der)
    out = {"statements": [], "policies": [], "subject": {}}
    for ext in cert["tbs_certificate"]["extensions"]:
        if ext["extn_id"].dotted == "1.3.6.1.5.5.7.1.3":
            out["critical"] = ext["critical"].native
            for s in QcStatements.load(ext["extn_value"].native):
                oid = s["statement_id"].dotted
                entry = {"id": oid}
                info = s["statement_info"]
                if oid in INFO:
                    entry.update(INFO[oid](info))
                elif info.native is not None:
                    entry["unexpected_info"] = True
                out["statements"].append(entry)
    if cert.certificate_policies_value:
        out["policies"] = [p["policy_identifier"].dotted for p in cert.certificate_policies_value]
    for rdn in cert.subject.chosen:
        for atv in rdn:
            out["subject"][atv["type"].dotted] = atv["value"].native
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
