-- Console sessions ended by sign-out before their expiry (the session cookie is stateless, so
-- a signed-out cookie is refused by listing it here until it would have expired anyway).
-- `session` is the cookie's HMAC; rows past `expires_at` are deleted on the next sign-out.
CREATE TABLE console_signouts (
    session    TEXT   NOT NULL PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
