DROP TABLE campaign_evidence;
DROP TABLE identity_evidence;
DROP TABLE attacker_identities;
DROP TABLE campaigns;
ALTER TABLE attackers DROP COLUMN c2_endpoints;
ALTER TABLE attackers DROP COLUMN payload_hashes;
