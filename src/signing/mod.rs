//! CMS/CAdES document signatures (RFC 5652, ETSI EN 319 122-1) and their validation.

pub mod report;
pub mod verify;
