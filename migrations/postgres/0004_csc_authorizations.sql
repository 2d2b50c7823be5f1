-- Signature activation data of the CSC API (credentials/authorize, Cloud Signature Consortium
-- API 1.0.4.0 §11.6): the SHA-256 of each SAD handed to a client (the SAD itself is never
-- stored), the client and credential it is bound to, the hashes it authorizes (SCAL 2), and
-- until when. signatures/signHash uses it once, on whichever replica it lands.
CREATE TABLE csc_authorizations (
    sad_sha256  TEXT    NOT NULL PRIMARY KEY,  -- hex
    client      TEXT    NOT NULL,              -- the access policy's client name
    credential  TEXT    NOT NULL,              -- the credentialID (a signing policy's name)
    hashes      TEXT    NOT NULL,              -- the authorized hashes, base64, sorted, joined by ','
    expires_at  BIGINT  NOT NULL,              -- Unix seconds
    used_at     BIGINT                         -- Unix seconds; NULL until signHash used it
);
CREATE INDEX csc_authorizations_expiry ON csc_authorizations (expires_at);
