-- Issue 4 §5: a relying party chooses the algorithm of its ID tokens
-- (`id_token_signed_response_alg`, OpenID Connect Dynamic Client Registration §2): ES256 (the
-- default, as before) or RS256. Each tenant then keeps one active signing key per algorithm;
-- access tokens stay ES256.
ALTER TABLE oidc_clients ADD COLUMN id_token_alg TEXT NOT NULL DEFAULT 'ES256';
