DROP TABLE canary_triggers;
DROP TABLE canary_tokens;
DROP TABLE canary_blobs;
