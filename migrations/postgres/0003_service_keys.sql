-- Service keys rolled over (`trustd rollover`): from its newest generation in service on, a role
-- signs with the key named here (generation 1, the key ceremony's, is the config's and has no
-- row). Every replica follows it; the certificate is in the token beside the key (the log key
-- has none). A row is inserted when a rollover begins (which makes a second concurrent one of
-- the same role fail) and put in service when its certificate is recorded and its key stated.
CREATE TABLE service_keys (
    role        TEXT    NOT NULL,          -- tsa, document-signer, ocsp, log
    generation  BIGINT  NOT NULL,          -- 2, 3, …
    key_uri     TEXT    NOT NULL,          -- RFC 7512 PKCS#11 URI
    created_at  BIGINT  NOT NULL,          -- Unix seconds: when the rollover began
    in_service_at BIGINT,                  -- Unix seconds; NULL while the rollover runs
    PRIMARY KEY (role, generation)
);
