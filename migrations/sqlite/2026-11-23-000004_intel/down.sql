DROP TABLE attacker_intel;
