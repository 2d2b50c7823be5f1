"""pyHanko's AdES validation of an embedded PDF signature (ETSI EN 319 102-1), shared by the
PAdES checkers."""
import aiohttp
from asn1crypto import crl
from pyhanko.sign.validation.ades import ades_basic_validation, ades_with_time_validation
from pyhanko.sign.validation.policy_decl import (
    LocalKnowledge,
    RevinfoOnlineFetchingRule,
    RevocationInfoGatheringSpec,
    SignatureValidationSpec,
)
from pyhanko_certvalidator.context import CertValidationPolicySpec
from pyhanko_certvalidator.policy_decl import CertRevTrustPolicy, RevocationCheckingPolicy
from pyhanko_certvalidator.registry import SimpleTrustManager
from pyhanko_certvalidator.revinfo.archival import CRLContainer


async def ades(embedded, root, crls, with_time):
    """pyHanko's AdES validation (ETSI EN 319 102-1 §5.3, or §5.5 with the signature
    time-stamp) under trustd's root alone, revocation required where the certificates declare it
    (hard fail), from the CRLs trustd serves (fetched by this script: nothing else is asked, the
    certificates' URLs name the deployment's public host): the indication and subindication."""
    spec = SignatureValidationSpec(
        cert_validation_policy=CertValidationPolicySpec(
            trust_manager=SimpleTrustManager.build(trust_roots=[root]),
            revinfo_policy=CertRevTrustPolicy(RevocationCheckingPolicy.from_legacy("hard-fail")),
        ),
        revinfo_gathering_policy=RevocationInfoGatheringSpec(online_fetching_rule=RevinfoOnlineFetchingRule.LOCAL_ONLY),
        local_knowledge=LocalKnowledge(known_crls=[CRLContainer(c) for c in crls]),
    )
    validate = ades_with_time_validation if with_time else ades_basic_validation
    result = await validate(embedded.signed_data, spec, raw_digest=embedded.compute_digest())
    return [result.ades_subindic.status.name, str(result.ades_subindic), result.failure_msg]


async def crls_of(tsa_url):
    """The issuing CA's and the root's CRLs, from trustd's HTTP listener."""
    http = tsa_url.removesuffix("/tsa")
    async with aiohttp.ClientSession() as plain:
        found = []
        for name in ("issuing", "root"):
            async with plain.get(f"{http}/crl/{name}.crl", raise_for_status=True) as r:
                found.append(crl.CertificateList.load(await r.read()))
        return found
