"""The extensions of the TSTInfo in a time-stamp response, read by asn1crypto.

usage: tst_extensions.py RESPONSE.tsr

Prints one line per extension: its OID (asn1crypto has no name for the extensions of a
TSTInfo), whether critical, and for qcStatements
(RFC 3739 §3.2.6) the dotted OID of each statement.
"""
import sys

from asn1crypto import core, tsp


class QcStatement(core.Sequence):
    """RFC 3739 §3.2.6 (asn1crypto reads TSTInfo extension values as plain octets)."""

    _fields = [("statement_id", core.ObjectIdentifier), ("statement_info", core.Any, {"optional": True})]


class QcStatements(core.SequenceOf):
    _child_spec = QcStatement


def main():
    resp = tsp.TimeStampResp.load(open(sys.argv[1], "rb").read())
    tst = resp["time_stamp_token"]["content"]["encap_content_info"]["content"].parsed
    for ext in tst["extensions"] or []:
        line = f"{ext['extn_id'].native} critical={ext['critical'].native}"
        if ext["extn_id"].dotted == "1.3.6.1.5.5.7.1.3":
            statements = QcStatements.load(ext["extn_value"].native)
            ids = [s["statement_id"].dotted for s in statements]
            line += " statements=" + ",".join(ids)
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
