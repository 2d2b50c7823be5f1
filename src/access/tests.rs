use super::*;
use crate::ca::csr::San;
use sha2::Digest;

const POLICY: &str = include_str!("../../policies/access.toml");

fn known() -> (Vec<String>, Vec<String>) {
    (
        ["tls-server", "internal-tls-server", "tls-client", "service-client", "document-signer"]
            .map(String::from)
            .to_vec(),
        vec!["default".to_owned()],
    )
}

fn parse(text: &str) -> Result<AccessPolicy, String> {
    let (profiles, signing_policies) = known();
    AccessPolicy::parse(text, &Known { profiles: &profiles, signing_policies: &signing_policies })
}

/// A certificate (self-signed: trust is the TLS layer's business) with these SANs and CN.
fn cert(uris: &[&str], dns: &[&str], cn: Option<&str>) -> Vec<u8> {
    let mut p = rcgen::CertificateParams::new(dns.iter().map(|d| d.to_string()).collect::<Vec<_>>()).unwrap();
    for u in uris {
        p.subject_alt_names.push(rcgen::SanType::URI(rcgen::string::Ia5String::try_from(*u).unwrap()));
    }
    p.distinguished_name = rcgen::DistinguishedName::new();
    if let Some(cn) = cn {
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
    }
    let key = rcgen::KeyPair::generate().unwrap();
    p.self_signed(&key).unwrap().der().to_vec()
}

#[test]
fn the_default_policy_decides_as_documented() {
    let p = parse(POLICY).unwrap();
    let portal = cert(&["spiffe://trustd/portal"], &[], None);
    let c = p.authorize(Some(&portal), "/trust.v1.Signing/Sign").unwrap();
    assert_eq!(c.name(), "portal");
    assert!(p.authorize(Some(&portal), "/trust.v1.TimeStamping/Timestamp").is_ok());
    assert!(c.may_sign("default").is_ok());
    assert!(c.may_sign("seal").is_err());
    let e = p.authorize(Some(&portal), "/trust.v1.CertificateAuthority/IssueCertificate").unwrap_err();
    assert_eq!(
        e,
        AccessError::Denied { client: "portal".into(), what: "call CertificateAuthority/IssueCertificate".into() }
    );
    // Public reads for any known client.
    for path in [
        "/trust.v1.CertificateAuthority/GetCaChain",
        "/trust.v1.TransparencyLog/GetEntries",
        "/grpc.health.v1.Health/Check",
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
    ] {
        assert!(p.authorize(Some(&portal), path).is_ok(), "{path}");
    }

    let web = cert(&["spiffe://trustd/web-frontend"], &[], None);
    let c = p.authorize(Some(&web), "/trust.v1.CertificateAuthority/IssueCertificate").unwrap();
    let scope = c.issue_scope("internal-tls-server").unwrap();
    assert!(scope.check(&[San::Dns("a.web.internal".into())]).is_ok());
    assert!(scope.check(&[San::Dns("a.ops.internal".into())]).is_err());
    assert!(c.issue_scope("service-client").is_err(), "no role of web-frontend lists service-client");
    assert_eq!(c.revoke_scope(), RevokeScope::Own);

    let op = cert(&["spiffe://trustd/operator"], &[], Some("operator"));
    let c = p.authorize(Some(&op), "/trust.v1.CertificateAuthority/RevokeCertificate").unwrap();
    assert_eq!(c.revoke_scope(), RevokeScope::Any);
    assert_eq!(c.issue_scope("service-client").unwrap(), NameScope::Any);
    assert!(p.authorize(Some(&op), "/trust.v1.Anything/Else").is_ok(), "rpcs = [\"*\"]");
}

#[test]
fn unknown_ambiguous_and_missing_identities_are_refused() {
    let p = parse(POLICY).unwrap();
    let path = "/trust.v1.CertificateAuthority/GetCaChain";
    assert!(matches!(p.authorize(None, path), Err(AccessError::Unauthenticated(_))));
    let stranger = cert(&["spiffe://trustd/stranger"], &["stranger.internal"], Some("stranger"));
    let e = p.authorize(Some(&stranger), path).unwrap_err().to_string();
    assert!(e.contains("spiffe://trustd/stranger") && e.contains("dns:stranger.internal"), "{e}");
    let two = cert(&["spiffe://trustd/portal", "spiffe://trustd/operator"], &[], None);
    assert!(p.authorize(Some(&two), path).unwrap_err().to_string().contains("several clients"));
    let none = cert(&[], &[], None);
    assert!(matches!(p.authorize(Some(&none), path), Err(AccessError::Unauthenticated(_))));
    assert!(matches!(p.authorize(Some(b"not DER"), path), Err(AccessError::Unauthenticated(_))));
    // A CN is an identity only where the policy says cn:.
    let by_cn = parse("[clients.legacy]\nidentities = [\"cn:legacy-app\", \"dns:Legacy.Internal\"]\nroles = [\"r\"]\n[roles.r]\nrpcs = [\"Signing/Verify\"]\n").unwrap();
    let c = cert(&[], &[], Some("legacy-app"));
    assert_eq!(by_cn.authorize(Some(&c), "/trust.v1.Signing/Verify").unwrap().name(), "legacy");
    let d = cert(&[], &["legacy.internal"], None);
    assert_eq!(by_cn.authorize(Some(&d), "/trust.v1.Signing/Verify").unwrap().name(), "legacy");
    assert!(by_cn.authorize(Some(&c), "/trust.v1.Signing/Sign").is_err());
}

#[test]
fn invalid_policies_name_the_field() {
    let cases = [
        ("[clients.a]\nroles = [\"nope\"]\n", "clients.a.roles: no role 'nope'"),
        ("[clients.a]\nroles = []\n", "clients.a.roles: at least one role"),
        ("[roles.r]\nrpcs = [\"Signing/Sine\"]\n", "roles.r.rpcs: 'Signing/Sine' is not an RPC"),
        ("[roles.r]\nrpcs = [\"Nothing/*\"]\n", "roles.r.rpcs: 'Nothing/*'"),
        ("[roles.r]\nprofiles = [\"tls-sever\"]\n", "roles.r.profiles: 'tls-sever' does not exist"),
        ("[roles.r]\nsigning_policies = [\"x\"]\n", "roles.r.signing_policies: 'x' does not exist"),
        ("[roles.r]\nnames = { ip = [\"10.0.0.0/40\"] }\n", "roles.r.names.ip"),
        ("[roles.r]\nnames = { dns = [\"\"] }\n", "roles.r.names.dns"),
        ("[roles.r]\nrevoke = \"all\"\n", "unknown variant"),
        ("[roles.r]\nrpc = []\n", "unknown field"),
        ("trust_domain = \"Trust D\"\n", "trust_domain"),
        ("[clients.\"a b\"]\nroles = []\n", "clients: 'a b'"),
        (
            "[clients.a]\nroles = [\"r\"]\nidentities = [\"portal\"]\n[roles.r]\n",
            "clients.a.identities: 'portal' is not an identity",
        ),
        (
            "[clients.a]\nroles = [\"r\"]\n[clients.b]\nroles = [\"r\"]\nidentities = [\"spiffe://trustd/a\"]\n[roles.r]\n",
            "is also client",
        ),
    ];
    for (text, want) in cases {
        let e = parse(text).err().unwrap_or_else(|| panic!("accepted: {text}"));
        assert!(e.contains(want), "{text:?}: {e}");
    }
}

#[test]
fn the_shipped_policy_loads_beside_the_shipped_profiles() {
    let dir = tempfile::tempdir().unwrap();
    crate::policy::Policies::install_defaults(dir.path()).unwrap();
    let policies = crate::policy::Policies::load(dir.path()).unwrap();
    let file = super::watch::PolicyFile {
        path: dir.path().join("access.toml"),
        profiles: policies.profile_names().map(String::from).collect(),
        signing_policies: policies.signing().map(|p| p.name.clone()).collect(),
    };
    let (p, _) = file.load().unwrap();
    assert_eq!(p.trust_domain(), "trustd");
    std::fs::write(dir.path().join("access.toml"), "[roles.r]\nprofiles = [\"nope\"]\n").unwrap();
    let e = file.load().unwrap_err();
    assert!(e.contains("access.toml") && e.contains("roles.r.profiles"), "{e}");
}

#[test]
fn bearer_tokens_name_their_client_by_hash_and_bad_hashes_are_refused() {
    let hash = |t: &str| hex::encode(sha2::Sha256::digest(t.as_bytes()));
    let with = |portal: &str, web: &str| {
        POLICY
            .replace(
                "[clients.portal]\nroles = [\"signer\", \"timestamper\"]",
                &format!("[clients.portal]\nroles = [\"signer\", \"timestamper\"]\nbearer_tokens_sha256 = [{portal}]"),
            )
            .replace(
                "[clients.web-frontend]\nroles = [\"web-certificates\"]",
                &format!("[clients.web-frontend]\nroles = [\"web-certificates\"]\nbearer_tokens_sha256 = [{web}]"),
            )
    };
    let p = parse(&with(&format!("\"{}\"", hash("portal-secret")), &format!("\"{}\"", hash("web-secret")))).unwrap();
    let ts = "/trust.v1.TimeStamping/Timestamp";
    assert_eq!(p.authorize_bearer("portal-secret", ts).unwrap().name(), "portal");
    assert!(
        matches!(p.authorize_bearer("web-secret", ts), Err(AccessError::Denied { client, .. }) if client == "web-frontend")
    );
    assert!(matches!(p.authorize_bearer("guess", ts), Err(AccessError::Unauthenticated(_))));
    // The hash itself is no token.
    assert!(p.authorize_bearer(&hash("portal-secret"), ts).is_err());

    let e = parse(&with("\"abc\"", "")).unwrap_err();
    assert!(e.contains("clients.portal.bearer_tokens_sha256") && e.contains("64 hex digits"), "{e}");
    let same = format!("\"{}\"", hash("shared"));
    let e = parse(&with(&same, &same)).unwrap_err();
    assert!(e.contains("bearer_tokens_sha256") && e.contains("also a token or secret of client"), "{e}");
}

#[test]
fn client_secrets_name_their_client_with_its_id_and_are_no_bearer_tokens() {
    let hash = |t: &str| hex::encode(sha2::Sha256::digest(t.as_bytes()));
    let with = |extra: &str| {
        POLICY.replace(
            "[clients.portal]\nroles = [\"signer\", \"timestamper\"]",
            &format!("[clients.portal]\nroles = [\"signer\", \"timestamper\"]\n{extra}"),
        )
    };
    let p = parse(&with(&format!("client_secrets_sha256 = [\"{}\"]", hash("s3cret")))).unwrap();
    let ts = "/trust.v1.TimeStamping/Timestamp";
    let (client, secret) = p.client_of_secret("portal", "s3cret").unwrap();
    assert_eq!((client.name(), secret.to_vec()), ("portal", hex::decode(hash("s3cret")).unwrap()));
    assert!(matches!(p.client_of_secret("auditor", "s3cret"), Err(AccessError::Unauthenticated(_))), "its own name");
    assert!(p.client_of_secret("portal", "guess").is_err());
    assert!(p.authorize_bearer("s3cret", ts).is_err(), "a secret is no bearer token");
    assert_eq!(p.authorize_secret_holder("portal", &secret, ts).unwrap().name(), "portal");
    let issue = "/trust.v1.CertificateAuthority/IssueCertificate";
    assert!(matches!(p.authorize_secret_holder("portal", &secret, issue), Err(AccessError::Denied { .. })));
    assert!(p.authorize_secret_holder("auditor", &secret, ts).is_err());
    let gone = parse(POLICY).unwrap();
    assert!(matches!(gone.authorize_secret_holder("portal", &secret, ts), Err(AccessError::Unauthenticated(_))));

    let both = format!("bearer_tokens_sha256 = [\"{h}\"]\nclient_secrets_sha256 = [\"{h}\"]", h = hash("x"));
    let e = parse(&with(&both)).unwrap_err();
    assert!(e.contains("clients.portal.client_secrets_sha256") && e.contains("also a token or secret"), "{e}");
    let e = parse(&with("client_secrets_sha256 = [\"abc\"]")).unwrap_err();
    assert!(e.contains("client_secrets_sha256: 'abc'") && e.contains("64 hex digits"), "{e}");
}
