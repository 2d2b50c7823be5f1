"""An independent gRPC client for trustd: Python's grpcio (gRPC core, BoringSSL's TLS), with stubs
generated here from proto/ by grpcio-tools, nobody at trustd wrote any of it.

usage: grpc_client.py TARGET CREDENTIALS_DIR PROTO_DIR CSR.pem

Over mTLS with the credential in CREDENTIALS_DIR (ca.crt, operator.crt, operator.key): issues a
tls-server certificate from CSR.pem, asks for a time-stamp of a SHA-256 digest, and lists the
services through server reflection v1alpha (what grpcio-reflection speaks); then tries once
without a client certificate. Prints one JSON object with what it saw.
"""
import hashlib
import importlib.resources
import json
import os
import sys
import tempfile

import grpc
from grpc_tools import protoc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc


def stubs(proto_dir):
    out = tempfile.mkdtemp()
    include = str(importlib.resources.files("grpc_tools") / "_proto")
    protos = [os.path.join(r, f) for r, _, fs in os.walk(proto_dir) for f in fs if f.endswith(".proto")]
    args = ["protoc", f"-I{proto_dir}", f"-I{include}", f"--python_out={out}", f"--grpc_python_out={out}"]
    if protoc.main(args + protos) != 0:
        sys.exit("protoc failed")
    sys.path.insert(0, out)


def main():
    target, creds, proto_dir, csr_path = sys.argv[1:5]
    stubs(proto_dir)
    from trust.v1 import ca_pb2, ca_pb2_grpc, tsa_pb2, tsa_pb2_grpc

    read = lambda name: open(os.path.join(creds, name), "rb").read()
    credentials = grpc.ssl_channel_credentials(read("ca.crt"), read("operator.key"), read("operator.crt"))
    seen = {}
    with grpc.secure_channel(target, credentials) as channel:
        ca = ca_pb2_grpc.CertificateAuthorityStub(channel)
        csr = open(csr_path, "rb").read()
        issued = ca.IssueCertificate(ca_pb2.IssueCertificateRequest(profile="tls-server", csr=csr), timeout=30)
        seen["issued_serial"] = issued.serial
        seen["issued_der_len"] = len(issued.certificate_der)

        tsa = tsa_pb2_grpc.TimeStampingStub(channel)
        digest = hashlib.sha256(b"grpcio").digest()
        req = tsa_pb2.TimestampRequest(
            digest=tsa_pb2.DigestRequest(hash_algorithm="sha256", digest=digest, cert_req=True)
        )
        stamped = tsa.Timestamp(req, timeout=30)
        seen["timestamp_status"] = tsa_pb2.TimestampStatus.Name(stamped.status)
        seen["timestamp_serial"] = stamped.serial

        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        replies = reflection.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        seen["v1alpha_services"] = sorted(s.name for r in replies for s in r.list_services_response.service)

    # Without a client certificate the handshake fails: the call never reaches the service.
    anonymous = grpc.ssl_channel_credentials(read("ca.crt"))
    with grpc.secure_channel(target, anonymous) as channel:
        try:
            ca_pb2_grpc.CertificateAuthorityStub(channel).GetCaChain(ca_pb2.GetCaChainRequest(), timeout=10)
            seen["without_certificate"] = "served"
        except grpc.RpcError as e:
            seen["without_certificate"] = e.code().name
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
