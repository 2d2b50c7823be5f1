-- tbs_der is kept while a certificate is pending or abandoned (what the HSM was about to sign)
-- and emptied once the certificate is stored: cert_der holds the same bytes. The column stays
-- NOT NULL (an empty value), as on SQLite.
UPDATE certificates SET tbs_der = ''::bytea WHERE cert_der IS NOT NULL;
