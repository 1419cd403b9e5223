//! Browser-fingerprint generators (canary.md §8.9–§8.10): an "Internal Asset Directory" HTML
//! page and a "Network Topology" SVG that carry a JavaScript beacon. The beacon reports
//! `?o=1&k=<nonce>` on open, then the collected object as unpadded base64url in
//! `?d=…&k=<nonce>` (≤ 6000 chars) or in chunks `?s=&i=&n=&d=&k=`.
//!
//! Per-mint obfuscation without a Node toolchain (decision, §16.5): the beacon URL, the mint
//! and the nonce are XOR-masked with a key stream derived from the seed (first 4 bytes of
//! SHA-256(slug), 31 bits) and emitted as number arrays, and the payload's identifiers are
//! renamed from the same seed, so the slug never appears literally and two mints never share
//! a script text. Everything is deterministic in the context; HTML and SVG of one slug share
//! mint and nonce.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{Artifact, CanaryError, Context, DAY};

/// Namespace of the mint UUIDv5 (§8.9).
pub const MINT_NAMESPACE: Uuid = Uuid::from_u128(0xa3f7c821_9d1e_4b6a_8c2d_1e4f9a7b3c5d);
/// Largest `d` value sent in one beacon; longer payloads are chunked.
pub const CHUNK: usize = 6000;

/// `UUIDv5(MINT_NAMESPACE, slug)`.
pub fn mint(slug: &str) -> Uuid {
    Uuid::new_v5(&MINT_NAMESPACE, slug.as_bytes())
}

/// First 16 hex chars of HMAC-SHA256(secret, `<slug>|<mint>`).
pub fn nonce(secret: &str, slug: &str) -> Result<String, CanaryError> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .map_err(|e| CanaryError::Rejected(format!("fingerprint secret: {e}")))?;
    mac.update(format!("{slug}|{}", mint(slug)).as_bytes());
    let full = hex::encode(mac.finalize().into_bytes());
    Ok(full[..16].to_owned())
}

/// The obfuscation seed: first 4 bytes of SHA-256(slug), big-endian, masked to 31 bits.
pub fn seed(slug: &str) -> u32 {
    let d = Sha256::digest(slug.as_bytes());
    u32::from_be_bytes([d[0], d[1], d[2], d[3]]) & 0x7fff_ffff
}

/// Key byte `i` of the mask (mirrors the decoder in the script).
fn key_byte(seed: u32, i: usize) -> u8 {
    let x = seed
        .wrapping_mul(2_654_435_761)
        .wrapping_add((i as u32).wrapping_mul(40_503));
    ((x >> 13) & 0xff) as u8
}

fn masked(seed: u32, s: &str) -> String {
    let nums: Vec<String> = s
        .bytes()
        .enumerate()
        .map(|(i, b)| (b ^ key_byte(seed, i)).to_string())
        .collect();
    format!("[{}]", nums.join(","))
}

/// An identifier for role `n` of the script, derived from the seed.
fn ident(seed: u32, n: u32) -> String {
    let h = Sha256::digest(format!("{seed}:{n}").as_bytes());
    format!("_0x{}", hex::encode(&h[..3]))
}

/// The collector + beacon script. Placeholders `@NAME@` are filled per mint.
const PAYLOAD: &str = r#"(function(){var @S@=@SEED@;function @D@(a){var s='';for(var i=0;i<a.length;i++){var x=((Math.imul(@S@,2654435761)+Math.imul(i,40503))>>>13)&255;s+=String.fromCharCode(a[i]^x);}return s;}
var @U@=@D@(@URL@),@M@=@D@(@MINT@),@N@=@D@(@NONCE@),@F@={mint:@M@};
function @B@(q){try{var i=new Image(1,1);i.src=@U@+'?'+q+'&k='+@N@;}catch(e){}}
function @H@(s){var x=0;for(var i=0;i<s.length;i++){x=((x<<5)-x+s.charCodeAt(i))|0;}return (x>>>0).toString(16);}
@B@('o=1');
try{var n=navigator;@F@.nav={ua:n.userAgent,pl:n.platform,lang:n.language,langs:(n.languages||[]).join(','),hc:n.hardwareConcurrency||0,dm:n.deviceMemory||0,tp:n.maxTouchPoints||0,ck:!!n.cookieEnabled,dnt:n.doNotTrack||'',wd:!!n.webdriver};}catch(e){}
try{var s=screen;@F@.scr={w:s.width,h:s.height,aw:s.availWidth,ah:s.availHeight,cd:s.colorDepth,dpr:window.devicePixelRatio||1};}catch(e){}
try{@F@.tz={tz:Intl.DateTimeFormat().resolvedOptions().timeZone,off:new Date().getTimezoneOffset(),loc:Intl.DateTimeFormat().resolvedOptions().locale};}catch(e){}
try{var c=navigator.connection;if(c){@F@.cn={t:c.effectiveType,d:c.downlink,r:c.rtt,sd:!!c.saveData};}}catch(e){}
try{var v=document.createElement('canvas');v.width=220;v.height=40;var x=v.getContext('2d');x.textBaseline='top';x.font='14px Arial';x.fillStyle='#f60';x.fillRect(110,1,62,20);x.fillStyle='#069';x.fillText('Cwm fjordbank glyphs vext quiz',2,15);@F@.cv={h:@H@(v.toDataURL())};}catch(e){}
try{var g=document.createElement('canvas').getContext('webgl');if(g){var r=g.getExtension('WEBGL_debug_renderer_info');@F@.gl={v:String(g.getParameter(r?r.UNMASKED_VENDOR_WEBGL:g.VENDOR)),r:String(g.getParameter(r?r.UNMASKED_RENDERER_WEBGL:g.RENDERER))};}}catch(e){}
try{var A=window.OfflineAudioContext||window.webkitOfflineAudioContext;if(A){var ac=new A(1,44100,44100);@F@.au={sr:ac.sampleRate,ch:ac.destination.maxChannelCount};}}catch(e){}
try{var fl=['Arial','Calibri','Consolas','Courier New','Georgia','Helvetica','Menlo','Segoe UI','Tahoma','Times New Roman','Ubuntu','Verdana'],ok=[];if(document.fonts&&document.fonts.check){for(var i=0;i<fl.length;i++){if(document.fonts.check('12px "'+fl[i]+'"')){ok.push(fl[i]);}}}@F@.ft={l:ok};}catch(e){}
try{@F@.pf={pdf:!!navigator.pdfViewerEnabled,pl:(navigator.plugins||[]).length};@F@.id={h:location.href,r:document.referrer};}catch(e){}
function @X@(){try{var j=JSON.stringify(@F@);var d=btoa(unescape(encodeURIComponent(j))).replace(/\+/g,'-').replace(/\//g,'_').replace(/=+$/,'');if(d.length<=@CHUNK@){@B@('d='+d);}else{var sid=@H@(d+Date.now()),t=Math.ceil(d.length/@CHUNK@);for(var i=0;i<t;i++){@B@('s='+sid+'&i='+i+'&n='+t+'&d='+d.substr(i*@CHUNK@,@CHUNK@));}}}catch(e){}}
try{var R=window.RTCPeerConnection||window.webkitRTCPeerConnection;if(R){var pc=new R({iceServers:[]}),ips=[];pc.createDataChannel('');pc.onicecandidate=function(ev){if(ev&&ev.candidate){var m=/([0-9]{1,3}(\.[0-9]{1,3}){3})/.exec(ev.candidate.candidate);if(m&&ips.indexOf(m[1])<0){ips.push(m[1]);}}};pc.createOffer().then(function(o){return pc.setLocalDescription(o);})['catch'](function(){});setTimeout(function(){@F@.rtc={ips:ips};try{pc.close();}catch(e){}@X@();},800);return;}}catch(e){}
@F@.rtc={};@X@();})();"#;

/// The per-mint script, and the nonce it reports.
pub fn payload(ctx: &Context) -> Result<(String, String), CanaryError> {
    let secret = ctx.fingerprint_secret().ok_or_else(|| {
        CanaryError::Rejected(
            "fingerprint generators need a fingerprint secret (DECNET_CANARY_FINGERPRINT_SECRET)"
                .into(),
        )
    })?;
    let nonce = nonce(secret, &ctx.slug)?;
    let s = seed(&ctx.slug);
    let mut js = PAYLOAD
        .replace("@SEED@", &s.to_string())
        .replace("@URL@", &masked(s, &ctx.url()))
        .replace("@MINT@", &masked(s, &mint(&ctx.slug).to_string()))
        .replace("@NONCE@", &masked(s, &nonce))
        .replace("@CHUNK@", &CHUNK.to_string());
    for (n, role) in [
        "@S@", "@D@", "@U@", "@M@", "@N@", "@F@", "@B@", "@H@", "@X@",
    ]
    .iter()
    .enumerate()
    {
        js = js.replace(role, &ident(s, n as u32));
    }
    Ok((js, nonce))
}

fn artifact(name: &str, content: String, days: i64, nonce: String, ctx: &Context) -> Artifact {
    Artifact {
        path: String::new(),
        content: content.into_bytes(),
        mode: 0o644,
        mtime_offset: -days * DAY,
        generator: Some(name.to_owned()),
        instrumenter: None,
        notes: vec![
            format!(
                "JavaScript beacon to {} (?o=1 on open, ?d= fingerprint)",
                ctx.url()
            ),
            format!("mint {}", mint(&ctx.slug)),
        ],
        fingerprint_nonce: Some(nonce),
    }
}

/// Rows the asset directory picks from.
const ASSETS: [(&str, &str, &str, &str); 14] = [
    ("web-prod-01", "10.20.1.11", "Ubuntu 22.04", "Platform"),
    ("web-prod-02", "10.20.1.12", "Ubuntu 22.04", "Platform"),
    ("db-primary", "10.20.2.5", "Debian 12", "Data"),
    ("db-replica", "10.20.2.6", "Debian 12", "Data"),
    ("vpn-gw", "10.20.0.2", "pfSense 2.7", "Network"),
    ("jump-01", "10.20.0.10", "Rocky 9", "Security"),
    ("ci-runner-3", "10.20.4.23", "Ubuntu 20.04", "Engineering"),
    ("backup-nas", "10.20.3.40", "TrueNAS 13", "IT"),
    ("dc01", "10.20.0.5", "Windows Server 2019", "IT"),
    ("exchange", "10.20.0.7", "Windows Server 2016", "IT"),
    ("grafana", "10.20.5.8", "Debian 11", "Platform"),
    ("k8s-master", "10.20.6.1", "Ubuntu 22.04", "Platform"),
    ("hr-files", "10.20.3.12", "Windows Server 2022", "HR"),
    ("payroll-app", "10.20.7.3", "RHEL 8", "Finance"),
];

fn esc(s: &str) -> String {
    quick_xml::escape::escape(s).into_owned()
}

/// Indices of the 5–8 asset rows of a slug (distinct, in pool order).
fn picked_rows(slug: &str) -> Vec<usize> {
    let d = Sha256::digest(format!("assets:{slug}").as_bytes());
    let want = 5 + usize::from(d[0] % 4);
    let mut order: Vec<(u8, usize)> = (0..ASSETS.len()).map(|i| (d[1 + i], i)).collect();
    order.sort();
    let mut rows: Vec<usize> = order.iter().take(want).map(|(_, i)| *i).collect();
    rows.sort_unstable();
    rows
}

/// §8.10 `fingerprint_html`.
pub fn fingerprint_html(ctx: &Context) -> Result<Artifact, CanaryError> {
    let (js, nonce) = payload(ctx)?;
    let mut html = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>Internal Asset Directory</title>\n<style>body{font-family:Arial,sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 10px}</style>\n</head>\n<body>\n<h1>Internal Asset Directory</h1>\n<p>Maintained by IT operations. Do not share outside the company.</p>\n<table>\n<tr><th>Host</th><th>Address</th><th>OS</th><th>Owner</th></tr>\n",
    );
    for i in picked_rows(&ctx.slug) {
        let (h, ip, os, owner) = ASSETS[i];
        html.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            esc(h),
            esc(ip),
            esc(os),
            esc(owner)
        ));
    }
    html.push_str("</table>\n<script>\n");
    html.push_str(&js);
    html.push_str("\n</script>\n</body>\n</html>\n");
    Ok(artifact("fingerprint_html", html, 14, nonce, ctx))
}

/// §8.10 `fingerprint_svg`.
pub fn fingerprint_svg(ctx: &Context) -> Result<Artifact, CanaryError> {
    let (js, nonce) = payload(ctx)?;
    let mut svg = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"600\" height=\"360\" viewBox=\"0 0 600 360\">\n<title>Network Topology</title>\n<rect width=\"600\" height=\"360\" fill=\"#ffffff\"/>\n<text x=\"20\" y=\"30\" font-family=\"Arial\" font-size=\"18\">Network Topology</text>\n",
    );
    let rows = picked_rows(&ctx.slug);
    for (n, i) in rows.iter().enumerate() {
        let (h, ip, _, _) = ASSETS[*i];
        let x = 40 + (n % 4) * 140;
        let y = 80 + (n / 4) * 140;
        svg.push_str(&format!(
            "<g><rect x=\"{x}\" y=\"{y}\" width=\"120\" height=\"50\" rx=\"6\" fill=\"#e8f0fe\" stroke=\"#36c\"/><text x=\"{tx}\" y=\"{ty}\" font-family=\"Arial\" font-size=\"12\">{h}</text><text x=\"{tx}\" y=\"{ty2}\" font-family=\"Arial\" font-size=\"10\">{ip}</text><line x1=\"{lx}\" y1=\"{y}\" x2=\"300\" y2=\"60\" stroke=\"#999\"/></g>\n",
            tx = x + 8,
            ty = y + 20,
            ty2 = y + 38,
            lx = x + 60,
            h = esc(h),
            ip = esc(ip),
        ));
    }
    svg.push_str("<script type=\"application/ecmascript\"><![CDATA[\n");
    svg.push_str(&js);
    svg.push_str("\n]]></script>\n</svg>\n");
    Ok(artifact("fingerprint_svg", svg, 30, nonce, ctx))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(slug: &str) -> Context {
        Context::new(slug, "https://cb.example.org", "", "linux").with_fingerprint_secret("k3y")
    }

    /// Undo the mask the way the script does.
    fn unmask(seed: u32, nums: &str) -> String {
        nums.trim_matches(|c| c == '[' || c == ']')
            .split(',')
            .enumerate()
            .map(|(i, n)| char::from(n.parse::<u8>().unwrap() ^ key_byte(seed, i)))
            .collect()
    }

    #[test]
    fn mint_and_nonce() {
        let slug = "abcdefghijklmnopqrstuvwxyz";
        let m = mint(slug);
        assert_eq!(m.get_version_num(), 5);
        assert_eq!(m, Uuid::new_v5(&MINT_NAMESPACE, slug.as_bytes()));
        let n = nonce("k3y", slug).unwrap();
        assert_eq!(n.len(), 16);
        assert!(n.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(n, nonce("other", slug).unwrap());
        let no_secret = Context::new(slug, "https://x", "", "linux");
        let e = fingerprint_html(&no_secret).unwrap_err();
        assert!(e.to_string().contains("DECNET_CANARY_FINGERPRINT_SECRET"));
        assert!(fingerprint_svg(&no_secret).is_err());
    }

    #[test]
    fn html_and_svg_share_mint_and_nonce_and_hide_the_slug() {
        let slug = "abcdefghijklmnopqrstuvwxyz";
        let h = fingerprint_html(&ctx(slug)).unwrap();
        let s = fingerprint_svg(&ctx(slug)).unwrap();
        assert_eq!(h.fingerprint_nonce, s.fingerprint_nonce);
        assert_eq!((h.mode, s.mode), (0o644, 0o644));
        assert_eq!((h.mtime_offset, s.mtime_offset), (-14 * DAY, -30 * DAY));
        let ht = String::from_utf8(h.content).unwrap();
        let st = String::from_utf8(s.content).unwrap();
        assert!(ht.starts_with("<!DOCTYPE html>") && ht.contains("Internal Asset Directory"));
        assert!(st.starts_with("<?xml version=\"1.0\"") && st.contains("width=\"600\""));
        assert!(st.contains("<script type=\"application/ecmascript\"><![CDATA["));
        let rows = ht.matches("<tr><td>").count();
        assert!((5..=8).contains(&rows), "{rows}");
        for t in [&ht, &st] {
            assert!(!t.contains(slug) && !t.contains("cb.example.org"));
            assert!(!t.to_ascii_lowercase().contains("decnet"));
        }
        // the masked arrays decode back to the URL, the mint and the nonce
        let sd = seed(slug);
        let call = format!("{}([", ident(sd, 1)); // the decoder's calls
        let arrays: Vec<String> = ht
            .split(&call)
            .skip(1)
            .map(|p| p[..p.find(']').unwrap()].to_owned())
            .collect();
        assert_eq!(arrays.len(), 3);
        let decoded: Vec<String> = arrays.iter().map(|a| unmask(sd, a)).collect();
        assert!(decoded.contains(&format!("https://cb.example.org/c/{slug}")));
        assert!(decoded.contains(&mint(slug).to_string()));
        assert!(decoded.contains(h.fingerprint_nonce.as_ref().unwrap()));
    }

    #[test]
    fn per_mint_variation() {
        let a = fingerprint_html(&ctx("aaaaaaaaaaaaaaaaaaaaaaaaaa")).unwrap();
        let b = fingerprint_html(&ctx("bbbbbbbbbbbbbbbbbbbbbbbbbb")).unwrap();
        let ja = String::from_utf8(a.content).unwrap();
        let jb = String::from_utf8(b.content).unwrap();
        let ident_a = ident(seed("aaaaaaaaaaaaaaaaaaaaaaaaaa"), 1);
        assert!(ja.contains(&ident_a) && !jb.contains(&ident_a));
        assert_ne!(a.fingerprint_nonce, b.fingerprint_nonce);
    }
}
