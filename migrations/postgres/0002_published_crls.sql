-- The CRLs published, newest few per CA: every replica serves the newest it finds (so what
-- relying parties fetch never goes back to a lower CRL number, whichever replica answers), and
-- a replica on a read-only standby serves the primary's.
CREATE TABLE published_crls (
    ca          TEXT    NOT NULL,
    number      BIGINT  NOT NULL,          -- cRLNumber (RFC 5280 §5.2.3)
    this_update BIGINT  NOT NULL,          -- Unix seconds
    next_update BIGINT  NOT NULL,          -- Unix seconds
    der         BYTEA   NOT NULL,
    PRIMARY KEY (ca, number)
);
