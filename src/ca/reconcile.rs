//! Reconciliation: the key ceremony's certificates recorded like every other (at start), and
//! whatever the store has but the issued-certificate log lacks appended to it (at start, then
//! periodically while serving).

use super::*;

/// How old a revocation event missing from the log must be before reconciliation logs it: a
/// revocation is logged right after it is stored, by whichever replica made it, within far
/// less than this.
pub const REVOCATION_SETTLED: Duration = Duration::from_secs(10);

impl CertificateAuthority {
    /// Records the service certificates the key ceremony or a rollover issued from this CA
    /// (TSA, document signer, OCSP responder) in the store, once, so that revocation, CRLs, OCSP and signature
    /// validation treat them like every other certificate of this CA. Returns how many were new.
    pub async fn record_ceremony_certificates(&self, certs: Vec<ServiceCertificate>) -> Result<usize, CaError> {
        let mut added = 0;
        for ServiceCertificate { role, cert, der } in certs {
            let tbs = &cert.tbs_certificate;
            let ca = match self.certificates.issuer_of(&cert) {
                Some(issuer) if issuer.ca != CaId::Root => issuer.ca,
                _ => continue,
            };
            let serial = Serial::from_bytes(tbs.serial_number.as_bytes())
                .ok_or_else(|| CaError::Ceremony(format!("{role} certificate has an invalid serial")))?;
            if self.store.certificate(&serial).await?.is_some() {
                continue;
            }
            let record = NewCertificate {
                serial: serial.clone(),
                ca,
                origin: Origin::Ceremony(role.into()),
                subject: tbs.subject.to_string(),
                sans: Vec::new(),
                not_before: tbs.validity.not_before.to_unix_duration().as_secs() as i64,
                not_after: tbs.validity.not_after.to_unix_duration().as_secs() as i64,
                requester: "key-ceremony".into(),
                tbs_der: tbs.to_der().map_err(|e| CaError::Internal(e.to_string()))?,
            };
            match self.store.record_issued(&record, &der).await {
                Ok(()) => {}
                // Another replica starting at the same moment recorded it first.
                Err(StoreError::DuplicateSerial(_)) => continue,
                Err(e) => return Err(e.into()),
            }
            tracing::info!(%serial, role, audit = true, "key-ceremony certificate recorded");
            added += 1;
        }
        Ok(added)
    }

    /// Appends to the log what the store has but the log lacks, in order: certificates recorded
    /// by the key ceremony or issued while the log was disabled (an issuance with the log on
    /// stores its certificate in its log batch, so is logged or not issued), then revocation
    /// events that a crash between store and log or a failed sequencing (a full queue, a
    /// database error) left out, a page at a time. Run at start-up, before the daemon says it is
    /// ready, and by [`CertificateAuthority::run_reconciliation`]. Returns how many certificates
    /// and revocations were appended.
    ///
    /// Revocation events younger than `settled` are left for a later run: the process that
    /// made one (another replica) may still be logging it.
    pub async fn log_unsequenced(&self, settled: Duration) -> Result<(usize, usize), CaError> {
        let Some(log) = &self.log else {
            return Ok((0, 0));
        };
        // Issuances and revocations between store and log finish first; new ones wait.
        let _exclusive = self.logging.write().await;
        let (mut certificates, mut ceremony, mut last) = (0, 0, None);
        loop {
            let certs = self.store.unlogged_certificates(Sequencer::MISSING_PAGE).await?;
            if certs.is_empty() {
                break;
            }
            let mut entries = Vec::with_capacity(certs.len());
            for c in &certs {
                let entry = LogEntry::CertificateIssued(CertificateIssued {
                    certificate_der: c.cert_der.clone(),
                    issued_at: u64::try_from(c.issued_at).unwrap_or(0),
                    profile: c.origin.name().into_owned(),
                    requester: c.requester.clone(),
                    issuer: c.ca.name(),
                })
                .encode()?;
                entries.push(NewEntry { entry, record: Some(LoggedRecord::Certificate(c.serial.to_string())) });
            }
            log.append_missing(entries, &mut last).await?;
            certificates += certs.len();
            ceremony += certs.iter().filter(|c| matches!(c.origin, Origin::Ceremony(_))).count();
        }
        let (mut revocations, mut last) = (0, None);
        loop {
            let events = self.store.unlogged_revocations(settled, Sequencer::MISSING_PAGE).await?;
            if events.is_empty() {
                break;
            }
            let mut entries = Vec::with_capacity(events.len());
            for r in &events {
                let entry = revocation_entry(&r.serial, r.ca, r.at, r.reason)?;
                entries.push(NewEntry { entry, record: Some(LoggedRecord::RevocationEvent(r.event_id)) });
            }
            log.append_missing(entries, &mut last).await?;
            revocations += events.len();
        }
        // The key ceremony's certificates reach the log this way by design (recorded at start,
        // logged here); anything else was missing after a crash or while the log was off.
        if ceremony > 0 {
            tracing::info!(certificates = ceremony, audit = true, "key-ceremony certificates appended to the log");
        }
        if certificates > ceremony || revocations > 0 {
            tracing::warn!(
                certificates = certificates - ceremony,
                revocations,
                audit = true,
                "records missing from the issued-certificate log appended"
            );
        }
        Ok((certificates, revocations))
    }

    /// Runs [`CertificateAuthority::log_unsequenced`] every `every`, forever: a certificate
    /// withheld from its requester because its entry could not be sequenced (which
    /// GetCertificate and OCSP serve from the store all the same) reaches the log within one
    /// period, not at the next start.
    pub async fn run_reconciliation(self: Arc<Self>, every: Duration, settled: Duration) {
        loop {
            tokio::time::sleep(every).await;
            if let Err(e) = self.log_unsequenced(settled).await {
                tracing::error!(error = %e, "log reconciliation failed; retrying next period");
            }
        }
    }
}
