CREATE TABLE users (
    uuid TEXT NOT NULL PRIMARY KEY,
    username TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL DEFAULT 'viewer' CHECK (role IN ('admin', 'viewer')),
    must_change_password BOOLEAN NOT NULL DEFAULT FALSE,
    tokens_valid_from TIMESTAMP
);
CREATE UNIQUE INDEX ix_users_username ON users (username);

CREATE TABLE revoked_tokens (
    jti TEXT NOT NULL PRIMARY KEY,
    user_uuid TEXT NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    revoked_at TIMESTAMP NOT NULL
);
CREATE INDEX ix_revoked_tokens_user_uuid ON revoked_tokens (user_uuid);
CREATE INDEX ix_revoked_tokens_expires_at ON revoked_tokens (expires_at);

CREATE TABLE state (
    "key" TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
);
