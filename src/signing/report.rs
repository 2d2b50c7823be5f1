//! The answer of signature validation, shaped as ETSI EN 319 102-1 §5.1.3 validation reports:
//! one main indication, a sub-indication explaining a failure, and what the validator found.

use crate::digest::HashAlg;
use crate::policy::Level;
use std::fmt;

/// The main status of a validation (ETSI EN 319 102-1 §5.1.3, Table 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Indication {
    /// Every check passed against the validation constraints.
    TotalPassed,
    /// The signature is proven invalid: a cryptographic check failed or a certificate was
    /// revoked, expired or not yet valid at a proven time.
    TotalFailed,
    /// The available information does not allow a decision (missing certificate, chain, POE,
    /// revocation information, unsupported algorithm, …).
    Indeterminate,
}

impl Indication {
    /// The ETSI spelling (`TOTAL-PASSED` in the standard's prose, `TOTAL_PASSED` in its XML
    /// reports, ETSI TS 119 102-2; the latter is used here).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TotalPassed => "TOTAL_PASSED",
            Self::TotalFailed => "TOTAL_FAILED",
            Self::Indeterminate => "INDETERMINATE",
        }
    }
}

impl fmt::Display for Indication {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a validation did not pass (ETSI EN 319 102-1 §5.1.3, Table 5). Each sub-indication
/// belongs to exactly one main indication ([`SubIndication::indication`]), so a report can
/// never pair them inconsistently.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SubIndication {
    // TOTAL-FAILED
    /// The signature is not a well-formed CMS/CAdES structure.
    FormatFailure,
    /// A hash of signed data does not match (message-digest, time-stamp imprint).
    HashFailure,
    /// The signature value does not verify with the signer's public key.
    SigCryptoFailure,
    /// The signing certificate was revoked before a proven time of existence of the signature.
    Revoked,
    /// There is proof the signature was created after the signing certificate expired.
    Expired,
    /// There is proof the signature was created before the signing certificate's notBefore.
    NotYetValid,
    // INDETERMINATE
    /// The signature does not meet the validation constraints (e.g. the signer's key usage).
    SigConstraintsFailure,
    /// The certificate chain does not meet the constraints (basicConstraints, pathLen, …).
    ChainConstraintsFailure,
    /// The certificates available gave an error for another reason (e.g. a bad certificate
    /// signature in the only candidate chain).
    CertificateChainGeneralFailure,
    /// An algorithm or key size is not supported or below the required security level.
    CryptoConstraintsFailure,
    /// The signing certificate cannot be identified.
    NoSigningCertificateFound,
    /// No chain leads from the signing certificate to a trust anchor.
    NoCertificateChainFound,
    /// The signing certificate is revoked and nothing proves the signature existed before.
    RevokedNoPoe,
    /// An intermediate CA certificate is revoked and nothing proves the signature existed before.
    RevokedCaNoPoe,
    /// A certificate is outside its validity period at the validation time and nothing proves
    /// the signature existed within it.
    OutOfBoundsNoPoe,
    /// Revocation status could not be determined now; it may be later.
    TryLater,
    /// The signed data (the detached document) was not provided or cannot be used.
    SignedDataNotFound,
}

impl SubIndication {
    /// The ETSI spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FormatFailure => "FORMAT_FAILURE",
            Self::HashFailure => "HASH_FAILURE",
            Self::SigCryptoFailure => "SIG_CRYPTO_FAILURE",
            Self::Revoked => "REVOKED",
            Self::Expired => "EXPIRED",
            Self::NotYetValid => "NOT_YET_VALID",
            Self::SigConstraintsFailure => "SIG_CONSTRAINTS_FAILURE",
            Self::ChainConstraintsFailure => "CHAIN_CONSTRAINTS_FAILURE",
            Self::CertificateChainGeneralFailure => "CERTIFICATE_CHAIN_GENERAL_FAILURE",
            Self::CryptoConstraintsFailure => "CRYPTO_CONSTRAINTS_FAILURE",
            Self::NoSigningCertificateFound => "NO_SIGNING_CERTIFICATE_FOUND",
            Self::NoCertificateChainFound => "NO_CERTIFICATE_CHAIN_FOUND",
            Self::RevokedNoPoe => "REVOKED_NO_POE",
            Self::RevokedCaNoPoe => "REVOKED_CA_NO_POE",
            Self::OutOfBoundsNoPoe => "OUT_OF_BOUNDS_NO_POE",
            Self::TryLater => "TRY_LATER",
            Self::SignedDataNotFound => "SIGNED_DATA_NOT_FOUND",
        }
    }

    /// The main indication this sub-indication is defined under in EN 319 102-1 Table 5.
    pub fn indication(self) -> Indication {
        match self {
            Self::FormatFailure
            | Self::HashFailure
            | Self::SigCryptoFailure
            | Self::Revoked
            | Self::Expired
            | Self::NotYetValid => Indication::TotalFailed,
            _ => Indication::Indeterminate,
        }
    }
}

impl fmt::Display for SubIndication {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The result of validating one signature (ETSI EN 319 102-1 §5.1.3 and §5.3.5 outputs).
/// Fields describing the signature are filled as far as validation got before it stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidationReport {
    pub indication: Indication,
    /// `None` exactly when `indication` is [`Indication::TotalPassed`].
    pub sub_indication: Option<SubIndication>,
    /// Human-readable explanations; for a passed signature, notes such as a revocation after
    /// the time-stamp.
    pub reasons: Vec<String>,
    /// The signer certificate's subject (RFC 4514 string).
    pub signer_subject: Option<String>,
    /// The signer certificate, DER.
    pub signer_certificate: Option<Vec<u8>>,
    /// The certificate chain used, DER, signer first and trust anchor last (EN 319 102-1
    /// §5.2.6.4 asks the chain to be part of the output).
    pub certificate_chain: Vec<Vec<u8>>,
    /// The claimed signing time (signing-time attribute, RFC 5652 §11.3), Unix seconds.
    pub signing_time: Option<u64>,
    /// genTime of the signature time-stamp (the earliest one if several), Unix seconds.
    pub timestamp_time: Option<u64>,
    pub level: Option<Level>,
    /// The SignerInfo's digestAlgorithm.
    pub digest_algorithm: Option<HashAlg>,
    /// The time certificates were validated at: the time-stamp's genTime for a valid B-T
    /// signature, otherwise the current time (Unix seconds).
    pub validation_time: u64,
}

impl ValidationReport {
    /// An empty report, to be filled by the validator.
    pub(crate) fn new(now: u64) -> Self {
        ValidationReport {
            indication: Indication::Indeterminate,
            sub_indication: None,
            reasons: Vec::new(),
            signer_subject: None,
            signer_certificate: None,
            certificate_chain: Vec::new(),
            signing_time: None,
            timestamp_time: None,
            level: None,
            digest_algorithm: None,
            validation_time: now,
        }
    }

    /// Whether the signature passed every check.
    pub fn passed(&self) -> bool {
        self.indication == Indication::TotalPassed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_indications_belong_to_their_table_5_indication() {
        assert_eq!(SubIndication::HashFailure.indication(), Indication::TotalFailed);
        assert_eq!(SubIndication::NotYetValid.indication(), Indication::TotalFailed);
        assert_eq!(SubIndication::SigConstraintsFailure.indication(), Indication::Indeterminate);
        assert_eq!(SubIndication::OutOfBoundsNoPoe.indication(), Indication::Indeterminate);
        assert_eq!(SubIndication::RevokedNoPoe.as_str(), "REVOKED_NO_POE");
        assert_eq!(Indication::TotalPassed.to_string(), "TOTAL_PASSED");
    }
}
