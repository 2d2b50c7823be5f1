-- OAuth 2.0 access tokens (RFC 6749 §4.4, the client credentials grant; CSC API oauth2/token):
-- the SHA-256 of each token handed to a client (the token itself is never stored), the client,
-- the SHA-256 of the client secret it was granted for (a token dies with its secret's removal
-- from the access policy), and until when. Any replica honours a token another issued.
CREATE TABLE oauth2_tokens (
    token_sha256   TEXT    NOT NULL PRIMARY KEY,  -- hex
    client         TEXT    NOT NULL,              -- the access policy's client name (client_id)
    secret_sha256  TEXT    NOT NULL,              -- hex
    expires_at     BIGINT  NOT NULL               -- Unix seconds
);
CREATE INDEX oauth2_tokens_expiry ON oauth2_tokens (expires_at);
