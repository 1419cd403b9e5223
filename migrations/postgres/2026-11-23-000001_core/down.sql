DROP TABLE state;
DROP TABLE revoked_tokens;
DROP TABLE users;
