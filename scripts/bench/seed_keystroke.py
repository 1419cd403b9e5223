#!/usr/bin/env python3
"""Campaign-level signal for the API benchmark's data set: seed_keystroke.py sqlite PATH | postgres URL.

Production writes no keystroke-dynamics SimHash yet, and identities that share a C2 endpoint
are one identity, so a synthetic corpus forms no campaigns by itself. This gives every identity
whose uuid starts with the same three hex digits (4,096 buckets) the same random 64-bit
`kd_digraph_simhash`; with the identities' overlapping activity windows that is enough for the
campaign clusterer to link a bucket into one campaign. Random codes are ~32 bits apart, far
beyond the kernel's Hamming limit, so buckets do not link to each other.
"""
import random, subprocess, sys

backend, target = sys.argv[1], sys.argv[2]
rnd = random.Random(18)
codes = {f"{i:03x}": rnd.getrandbits(64).to_bytes(8, "big") for i in range(4096)}
if backend == "sqlite":
    import sqlite3
    db = sqlite3.connect(target)
    db.executemany("UPDATE attacker_identities SET kd_digraph_simhash = ? WHERE substr(uuid, 1, 3) = ?",
                   [(code, bucket) for bucket, code in codes.items()])
    db.commit()
else:
    sql = "".join(f"UPDATE attacker_identities SET kd_digraph_simhash = '\\x{code.hex()}'::bytea "
                  f"WHERE substr(uuid, 1, 3) = '{bucket}';\n" for bucket, code in codes.items())
    subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", target], input=sql, text=True, check=True)
