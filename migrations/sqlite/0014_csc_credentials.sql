-- Remote-signing credentials of the CSC API made for one client each (`trustctl credential
-- create`): a key generated in the HSM under a signing policy, and its certificate from the CA.
-- Disabled ones sign nothing more, on every replica (each call reads its row).
CREATE TABLE csc_credentials (
    id           TEXT    NOT NULL PRIMARY KEY, -- the credentialID
    client       TEXT    NOT NULL,             -- the access policy's client that alone may use it
    policy       TEXT    NOT NULL,             -- the signing policy it signs under
    key_uri      TEXT    NOT NULL,             -- RFC 7512 PKCS#11 URI
    certificate  TEXT    NOT NULL,             -- DER, base64
    created_at   BIGINT  NOT NULL,             -- Unix seconds
    disabled_at  BIGINT                        -- Unix seconds; NULL while enabled
);
CREATE INDEX csc_credentials_client ON csc_credentials (client);
