-- tbs_der is kept while a certificate is pending or abandoned (what the HSM was about to sign)
-- and emptied once the certificate is stored: cert_der holds the same bytes, and the row that
-- each issuance rewrites is the smaller for it. The column stays NOT NULL (an empty blob), since
-- SQLite changes a constraint only by rebuilding the table.
UPDATE certificates SET tbs_der = X'' WHERE cert_der IS NOT NULL;
