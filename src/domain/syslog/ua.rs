//! User-Agent classifier (spec §6): (category, tool, signals).

/// Result of [`classify_ua`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UaClass {
    /// empty / scanner / cli / library / bot / browser / nonstandard.
    pub category: &'static str,
    /// Tool name for scanner / cli / library.
    pub tool: Option<&'static str>,
    /// suspicious_short / suspicious_long / nonprintable / injection_like.
    pub signals: Vec<&'static str>,
}

const SCANNERS: [(&str, &str); 23] = [
    ("nmap", "nmap"),
    ("masscan", "masscan"),
    ("zgrab", "zgrab"),
    ("zmap", "zmap"),
    ("nuclei", "nuclei"),
    ("sqlmap", "sqlmap"),
    ("gobuster", "gobuster"),
    ("dirb", "dirb"),
    ("dirbuster", "dirbuster"),
    ("nikto", "nikto"),
    ("feroxbuster", "feroxbuster"),
    ("wfuzz", "wfuzz"),
    ("ffuf", "ffuf"),
    ("wpscan", "wpscan"),
    ("katana", "katana"),
    ("burp", "burp"),
    ("acunetix", "acunetix"),
    ("nessus", "nessus"),
    ("openvas", "openvas"),
    ("arachni", "arachni"),
    ("whatweb", "whatweb"),
    ("wappalyzer", "wappalyzer"),
    ("sploitscan", "sploitscan"),
];

const CLI: [(&str, &str); 5] = [
    ("curl/", "curl"),
    ("wget/", "wget"),
    ("httpie/", "httpie"),
    ("xh/", "xh"),
    ("fetch/", "fetch"),
];

/// How a library pattern matches the lowercased UA.
enum Pat {
    /// Prefix.
    Prefix(&'static str),
    /// Prefix followed by an ASCII digit.
    PrefixDigit(&'static str),
    /// Prefix followed by a non-word char or the end (`\b`).
    PrefixWord(&'static str),
    /// Substring anywhere.
    Anywhere(&'static str),
}

const LIBRARIES: [(&[Pat], &str); 24] = [
    (&[Pat::Prefix("python-requests/")], "python-requests"),
    (&[Pat::Prefix("aiohttp/")], "aiohttp"),
    (&[Pat::Prefix("httpx/")], "httpx"),
    (&[Pat::Prefix("urllib/")], "urllib"),
    (&[Pat::Prefix("python-urllib/")], "urllib"),
    (&[Pat::PrefixDigit("python/")], "python-stdlib"),
    (&[Pat::Prefix("go-http-client/")], "go-stdlib"),
    (&[Pat::Prefix("go-resty/")], "go-resty"),
    (&[Pat::PrefixDigit("java/")], "java-stdlib"),
    (&[Pat::Prefix("okhttp/")], "okhttp"),
    (&[Pat::Prefix("apache-httpclient/")], "apache-httpclient"),
    (&[Pat::Prefix("jersey/")], "jersey"),
    (&[Pat::Prefix("axios/")], "axios"),
    (&[Pat::Prefix("node-fetch/")], "node-fetch"),
    (
        &[
            Pat::Prefix("got ("),
            Pat::Prefix("got("),
            Pat::Prefix("got/"),
        ],
        "got",
    ),
    (&[Pat::Prefix("undici")], "undici"),
    (&[Pat::PrefixDigit("php/")], "php-stdlib"),
    (&[Pat::Anywhere("guzzlehttp/")], "guzzle"),
    (&[Pat::PrefixWord("ruby")], "ruby-stdlib"),
    (&[Pat::PrefixWord("faraday")], "faraday"),
    (&[Pat::Prefix("httparty")], "httparty"),
    (
        &[
            Pat::Prefix(".net/"),
            Pat::Anywhere("system.net.http"),
            Pat::Anywhere("restsharp/"),
        ],
        "dotnet",
    ),
    (&[Pat::Prefix("postmanruntime/")], "postman"),
    (&[Pat::Prefix("insomnia/")], "insomnia"),
];

const BOT_MARKERS: [&str; 5] = ["bot", "crawler", "spider", "slurp", "monitor"];

const INJECTION_MARKERS: [&str; 10] = [
    "<script",
    "';",
    "' or '",
    "' or 1",
    "1=1",
    "' --",
    "/../",
    "/etc/passwd",
    "${jndi:",
    "{{",
];

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Case-insensitive `\bword\b` search; `lower` is the ASCII-lowercased `ua`.
fn has_word(ua: &str, lower: &str, word: &str) -> bool {
    let mut from = 0;
    while let Some(off) = lower[from..].find(word) {
        let i = from + off;
        let j = i + word.len();
        let before_ok = !ua[..i].chars().next_back().is_some_and(is_word_char);
        let after_ok = !ua[j..].chars().next().is_some_and(is_word_char);
        if before_ok && after_ok {
            return true;
        }
        from = i + 1;
        while !lower.is_char_boundary(from) {
            from += 1;
        }
    }
    false
}

fn pat_matches(ua: &str, lower: &str, p: &Pat) -> bool {
    match p {
        Pat::Prefix(x) => lower.starts_with(x),
        Pat::PrefixDigit(x) => {
            lower.starts_with(x)
                && lower
                    .as_bytes()
                    .get(x.len())
                    .is_some_and(u8::is_ascii_digit)
        }
        Pat::PrefixWord(x) => {
            lower.starts_with(x) && !ua[x.len()..].chars().next().is_some_and(is_word_char)
        }
        Pat::Anywhere(x) => lower.contains(x),
    }
}

/// Classify a User-Agent string.
pub fn classify_ua(ua: &str) -> UaClass {
    let mut signals = Vec::new();
    if ua.is_empty() {
        return UaClass {
            category: "empty",
            tool: None,
            signals,
        };
    }
    let n = ua.chars().count();
    if n < 8 {
        signals.push("suspicious_short");
    }
    if n > 512 {
        signals.push("suspicious_long");
    }
    if ua.chars().any(|c| (c as u32) < 32 && c != '\t') {
        signals.push("nonprintable");
    }
    let lower = ua.to_ascii_lowercase();
    if INJECTION_MARKERS.iter().any(|m| lower.contains(m)) {
        signals.push("injection_like");
    }
    let hit = |category, tool| UaClass {
        category,
        tool,
        signals: signals.clone(),
    };
    if let Some((_, tool)) = SCANNERS.iter().find(|(w, _)| has_word(ua, &lower, w)) {
        return hit("scanner", Some(*tool));
    }
    if let Some((_, tool)) = CLI.iter().find(|(p, _)| lower.starts_with(p)) {
        return hit("cli", Some(*tool));
    }
    if let Some((_, tool)) = LIBRARIES
        .iter()
        .find(|(pats, _)| pats.iter().any(|p| pat_matches(ua, &lower, p)))
    {
        return hit("library", Some(*tool));
    }
    if BOT_MARKERS.iter().any(|m| lower.contains(m)) {
        return hit("bot", None);
    }
    if ua.starts_with("Mozilla/") && ua.as_bytes().get(8).is_some_and(u8::is_ascii_digit) {
        return hit("browser", None);
    }
    hit("nonstandard", None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ct(ua: &str) -> (&'static str, Option<&'static str>) {
        let c = classify_ua(ua);
        (c.category, c.tool)
    }

    #[test]
    fn table() {
        let cases: &[(&str, &str, Option<&str>)] = &[
            ("curl/8.4.0", "cli", Some("curl")),
            ("Wget/1.21.3", "cli", Some("wget")),
            ("HTTPie/3.2.2", "cli", Some("httpie")),
            ("python-requests/2.31.0", "library", Some("python-requests")),
            ("Python-urllib/3.11", "library", Some("urllib")),
            ("Python/3.11 aiohttp/3.9", "library", Some("python-stdlib")),
            ("aiohttp/3.9.1", "library", Some("aiohttp")),
            ("Go-http-client/1.1", "library", Some("go-stdlib")),
            ("Java/17.0.2", "library", Some("java-stdlib")),
            ("okhttp/4.12.0", "library", Some("okhttp")),
            (
                "got (https://github.com/sindresorhus/got)",
                "library",
                Some("got"),
            ),
            ("GuzzleHttp/7", "library", Some("guzzle")),
            ("Something GuzzleHttp/7 curl/7.1", "library", Some("guzzle")),
            ("Ruby", "library", Some("ruby-stdlib")),
            ("RestSharp/106.0", "library", Some("dotnet")),
            ("PostmanRuntime/7.36", "library", Some("postman")),
            (
                "Mozilla/5.0 (compatible; Nmap Scripting Engine; https://nmap.org/book/nse.html)",
                "scanner",
                Some("nmap"),
            ),
            (
                "Mozilla/5.0 (compatible; Nuclei - Open-source project)",
                "scanner",
                Some("nuclei"),
            ),
            (
                "sqlmap/1.7.2#stable (https://sqlmap.org)",
                "scanner",
                Some("sqlmap"),
            ),
            ("gobuster/3.6", "scanner", Some("gobuster")),
            (
                "Mozilla/5.00 (Nikto/2.5.0) (Evasions:None) (Test:000001)",
                "scanner",
                Some("nikto"),
            ),
            (
                "masscan/1.3 (https://github.com/robertdavidgraham/masscan)",
                "scanner",
                Some("masscan"),
            ),
            (
                "WPScan v3.8.25 (https://wpscan.com/wordpress-security-scanner)",
                "scanner",
                Some("wpscan"),
            ),
            ("Mozilla/5.0 zgrab/0.x", "scanner", Some("zgrab")),
            (
                "Mozilla/5.0 (Acunetix Web Vulnerability Scanner)",
                "scanner",
                Some("acunetix"),
            ),
            ("Fuzz Faster U Fool v2.1.0 ffuf", "scanner", Some("ffuf")),
            (
                "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
                "bot",
                None,
            ),
            (
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120 Safari/537.36",
                "browser",
                None,
            ),
            ("", "empty", None),
            ("FUCKYOU/1.0", "nonstandard", None),
            ("nmapper/1.0", "nonstandard", None),
        ];
        for (ua, cat, tool) in cases {
            assert_eq!(ct(ua), (*cat, *tool), "{ua}");
        }
    }

    #[test]
    fn signals() {
        assert_eq!(classify_ua("abc").signals, vec!["suspicious_short"]);
        assert_eq!(
            classify_ua(&"A".repeat(513)).signals,
            vec!["suspicious_long"]
        );
        assert_eq!(
            classify_ua("evil\u{1}agent/1.0").signals,
            vec!["nonprintable"]
        );
        assert!(classify_ua("tab\tagent/1.0").signals.is_empty());
        assert_eq!(
            classify_ua("Mozilla/5.0 ${jndi:ldap://x/a}").signals,
            vec!["injection_like"]
        );
        assert_eq!(
            classify_ua("x' OR '1'='1 agent").signals,
            vec!["injection_like"]
        );
        assert!(classify_ua("").signals.is_empty());
    }
}
