//! Issuance (RFC 5280 §4.1): a CSR checked against its profile, recorded before the key signs,
//! stored before it is returned, and logged.

use super::*;

/// Where the key being certified is: with a client, who sent its CSR, or in trustd's own HSM,
/// whose key signed the CSR (a signing policy's key). Only the latter may be certified under a
/// QcSSCD profile: only for it does trustd know the key is in its device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyCustody {
    Client,
    Hsm,
}

impl CertificateAuthority {
    /// Issues a certificate for a client's key. The to-be-signed certificate is recorded before
    /// the HSM signs, and the certificate is stored before it is returned: nothing signed goes
    /// unrecorded.
    pub async fn issue(&self, req: IssueRequest) -> Result<Issued, CaError> {
        self.issue_for(req, KeyCustody::Client).await
    }

    /// Issues a certificate, as [`CertificateAuthority::issue`] does, for a key the HSM holds;
    /// the caller vouches that the CSR was signed by that key (never a request's CSR).
    pub async fn issue_for_hsm_key(&self, req: IssueRequest) -> Result<Issued, CaError> {
        self.issue_for(req, KeyCustody::Hsm).await
    }

    async fn issue_for(&self, req: IssueRequest, custody: KeyCustody) -> Result<Issued, CaError> {
        let profile = self.policies.profile(&req.profile).ok_or_else(|| CaError::UnknownProfile {
            name: req.profile.clone(),
            known: self.policies.profile_names().collect::<Vec<_>>().join(", "),
        })?;
        // The generation that issues; one rolled over meanwhile issues the next request.
        let g = self.newest();
        let ca = g.cert.ca;
        if profile.qc.is_some() && !has_country(&g.cert.cert.tbs_certificate.subject) {
            return Err(CaError::ProfileUnusable {
                profile: profile.name.clone(),
                reason: "a certificate with qualified-certificate statements names its issuer's country (EN 319 \
                         412-2 §4.2.3.1, 412-3 §4.2.2), and this CA's name has none: give [ceremony] country (trustd \
                         dev --country) when the CA is made"
                    .into(),
            });
        }
        let csr = csr::parse(&req.csr)?;
        let valid = request::validate(&csr, profile, req.validity, custody)?;
        req.scope.check(&valid.sans).map_err(CaError::NotPermitted)?;
        let subject = cert::build_name(&valid.subject)?;
        // RFC 4514 text for the record and the audit line, made once: x509-cert looks each
        // attribute's name up in const-oid's whole database.
        let subject_text = subject.to_string();
        let extensions = cert::end_entity_extensions(
            profile,
            &valid.sans,
            valid.subject.is_empty(),
            &csr.public_key,
            &g.cert.key_id,
            &g.urls,
        )?;
        let now = self.clock.unix_secs();
        let not_before = now.saturating_sub(profile.backdate.as_secs());
        let not_after = not_before + profile.backdate.as_secs() + valid.validity.as_secs();
        // RFC 5280 §6.1.3 (a)(2): a certificate outliving its issuer fails path validation later.
        let issuer_end = g.cert.cert.tbs_certificate.validity.not_after.to_unix_duration().as_secs();
        if not_after > issuer_end {
            return Err(CaError::ValidityTooLong {
                requested: valid.validity,
                max: Duration::from_secs(issuer_end.saturating_sub(now)),
                profile: profile.name.clone(),
            });
        }
        let issuer =
            Issuer { name: &g.cert.cert.tbs_certificate.subject, key_id: &g.cert.key_id, scheme: g.key.scheme() };

        // A clash of 128-bit random serials is practically impossible; the store's unique
        // constraint makes it impossible outright, and we draw again if it ever happens.
        let mut attempt = 0;
        let (serial, tbs_der) = loop {
            let serial = Serial::random();
            let spec = CertSpec {
                serial: serial.clone(),
                subject: subject.clone(),
                public_key: csr.public_key.clone(),
                not_before,
                not_after,
                extensions: extensions.clone(),
            };
            let tbs = cert::tbs(spec, &issuer)?;
            let tbs_der = tbs.to_der().map_err(|e| CaError::Internal(e.to_string()))?;
            // The certificate must fit a log entry (uint16-length bundles, C2SP tlog-tiles):
            // refuse it now, before it is recorded and signed, not after. The signature and
            // its algorithm add at most ~600 bytes (RSA-4096); the entry's fields ~300 more.
            let entry_len = tbs_der.len() + 1024 + profile.name.len() + req.requester.len() + ca.name().len();
            if entry_len > crate::log::entry::MAX_ENTRY_LEN {
                return Err(CaError::BadCsr(format!(
                    "the certificate would be about {entry_len} bytes, more than the log's {} byte entries hold",
                    crate::log::entry::MAX_ENTRY_LEN
                )));
            }
            let record = NewCertificate {
                serial: serial.clone(),
                ca,
                origin: Origin::Profile(profile.name.clone()),
                subject: subject_text.clone(),
                sans: valid.sans.iter().map(ToString::to_string).collect(),
                not_before: not_before as i64,
                not_after: not_after as i64,
                requester: req.requester.clone(),
                tbs_der: tbs_der.clone(),
            };
            match self.pending.record(record).await {
                Ok(true) => break (serial, tbs_der),
                Ok(false) if attempt < 3 => attempt += 1,
                Ok(false) => return Err(StoreError::DuplicateSerial(serial).into()),
                Err(e) => return Err(e.into()),
            }
        };

        let signed = match g.key.sign(&tbs_der).await {
            Ok(signature) => cert::signed_der(&tbs_der, g.key.scheme(), &signature),
            Err(e) => Err(e.into()),
        };
        let cert_der = match signed {
            Ok(c) => c,
            Err(e) => {
                self.abandon(&serial, &e).await;
                return Err(e);
            }
        };
        match &self.log {
            // Nothing is handed out that the log does not show (issue #6): the certificate is
            // stored in its log batch's transaction, so it is stored and logged, or neither
            // (withheld, its record abandoned).
            Some(log) => {
                let entry = LogEntry::CertificateIssued(CertificateIssued {
                    certificate_der: cert_der.clone(),
                    issued_at: self.clock.unix_secs(),
                    profile: profile.name.clone(),
                    requester: req.requester.clone(),
                    issuer: ca.name(),
                });
                let record = LoggedRecord::IssuedCertificate { serial: serial.clone(), cert_der: cert_der.clone() };
                let logged = match entry.encode() {
                    Ok(entry) => append_detached(log, NewEntry { entry, record: Some(record) }).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = logged {
                    tracing::error!(%serial, error = %e, audit = true, "signed certificate could not be stored and logged; withheld");
                    self.abandon(&serial, &e).await;
                    return Err(e.into());
                }
            }
            None => {
                if let Err(e) = self.store.complete_issued(&serial, &cert_der).await {
                    // The TBS is recorded as pending, so the signature is known to the store; the
                    // next start marks it abandoned. The certificate itself is never handed out.
                    tracing::error!(%serial, error = %e, audit = true, "signed certificate could not be stored; withheld");
                    return Err(e.into());
                }
            }
        }
        tracing::info!(%serial, profile = %profile.name, subject = %subject_text, requester = %req.requester, audit = true, "certificate issued");
        Ok(Issued { serial, cert_der, ca })
    }

    /// Marks the pending record of a certificate that will not be handed out abandoned, with why.
    async fn abandon(&self, serial: &Serial, why: &(dyn std::fmt::Display + Sync)) {
        let why = why.to_string();
        if let Err(e) = self.store.abandon(serial, &why).await {
            tracing::error!(%serial, error = %e, "could not mark failed issuance abandoned");
        }
    }
}

/// Whether `name` holds a countryName attribute.
fn has_country(name: &x509_cert::name::Name) -> bool {
    let country = crate::policy::AttrKind::Country.oid();
    name.0.iter().flat_map(|rdn| rdn.0.iter()).any(|atv| atv.oid == country)
}
