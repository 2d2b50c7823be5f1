-- RFC 3161 time-stamp tokens handed out. Written in batches (group commit) before the replies
-- leave; serials are unique across restarts by this table's constraint.
CREATE TABLE timestamps (
    id          INTEGER PRIMARY KEY,
    serial      TEXT    NOT NULL UNIQUE,   -- lower-case hex of the TSTInfo serialNumber
    gen_time    BIGINT  NOT NULL,          -- Unix seconds
    policy      TEXT    NOT NULL,          -- TSA policy OID
    hash_alg    TEXT    NOT NULL,          -- sha256 | sha384 | sha512
    imprint     BLOB    NOT NULL,          -- hashedMessage
    nonce       BLOB,
    requester   TEXT    NOT NULL,
    token_der   BLOB    NOT NULL           -- the TimeStampToken (CMS ContentInfo)
);
CREATE INDEX timestamps_gen_time ON timestamps (gen_time);
