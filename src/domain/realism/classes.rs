//! Content classes (realism.md §4.1): the stable wire values of every kind of planted file.
//!
//! The wire values are persisted in `synthetic_files.content_class`; they are append-only and
//! must never be renamed.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Which family a content class belongs to; decides who owns its path and body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClassFamily {
    /// Persona-authored, LLM-eligible, editable in place.
    User,
    /// Formulaic system files (templates only).
    System,
    /// Mail spool files, owned by the MailDripper.
    Email,
    /// Canary artefacts, bytes and path owned by the canary planter.
    Canary,
}

/// One kind of synthetic file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ContentClass {
    Note,
    Todo,
    Draft,
    Script,
    LogCron,
    LogDaemon,
    CacheTmp,
    Email,
    CanaryAwsCreds,
    CanaryEnvFile,
    CanaryGitConfig,
    CanarySshKey,
    CanaryHoneydoc,
    CanaryHoneydocDocx,
    CanaryHoneydocPdf,
    CanaryMysqlDump,
    CanaryFingerprintHtml,
    CanaryFingerprintSvg,
}

/// A string that is not one of the known content-class wire values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown content_class: {0:?}")]
pub struct UnknownContentClass(pub String);

impl ContentClass {
    /// Every class, in declaration order.
    pub const ALL: [ContentClass; 18] = [
        ContentClass::Note,
        ContentClass::Todo,
        ContentClass::Draft,
        ContentClass::Script,
        ContentClass::LogCron,
        ContentClass::LogDaemon,
        ContentClass::CacheTmp,
        ContentClass::Email,
        ContentClass::CanaryAwsCreds,
        ContentClass::CanaryEnvFile,
        ContentClass::CanaryGitConfig,
        ContentClass::CanarySshKey,
        ContentClass::CanaryHoneydoc,
        ContentClass::CanaryHoneydocDocx,
        ContentClass::CanaryHoneydocPdf,
        ContentClass::CanaryMysqlDump,
        ContentClass::CanaryFingerprintHtml,
        ContentClass::CanaryFingerprintSvg,
    ];

    /// The user classes, in default-weight order.
    pub const USER: [ContentClass; 4] = [
        ContentClass::Note,
        ContentClass::Todo,
        ContentClass::Draft,
        ContentClass::Script,
    ];

    /// The system classes, in default-weight order.
    pub const SYSTEM: [ContentClass; 3] = [
        ContentClass::LogCron,
        ContentClass::LogDaemon,
        ContentClass::CacheTmp,
    ];

    /// The canary classes, in default-weight order.
    pub const CANARY: [ContentClass; 10] = [
        ContentClass::CanaryAwsCreds,
        ContentClass::CanaryEnvFile,
        ContentClass::CanaryGitConfig,
        ContentClass::CanarySshKey,
        ContentClass::CanaryHoneydoc,
        ContentClass::CanaryHoneydocDocx,
        ContentClass::CanaryHoneydocPdf,
        ContentClass::CanaryMysqlDump,
        ContentClass::CanaryFingerprintHtml,
        ContentClass::CanaryFingerprintSvg,
    ];

    /// The persisted wire value.
    pub const fn as_str(self) -> &'static str {
        match self {
            ContentClass::Note => "note",
            ContentClass::Todo => "todo",
            ContentClass::Draft => "draft",
            ContentClass::Script => "script",
            ContentClass::LogCron => "log_cron",
            ContentClass::LogDaemon => "log_daemon",
            ContentClass::CacheTmp => "cache_tmp",
            ContentClass::Email => "email",
            ContentClass::CanaryAwsCreds => "canary_aws_creds",
            ContentClass::CanaryEnvFile => "canary_env_file",
            ContentClass::CanaryGitConfig => "canary_git_config",
            ContentClass::CanarySshKey => "canary_ssh_key",
            ContentClass::CanaryHoneydoc => "canary_honeydoc",
            ContentClass::CanaryHoneydocDocx => "canary_honeydoc_docx",
            ContentClass::CanaryHoneydocPdf => "canary_honeydoc_pdf",
            ContentClass::CanaryMysqlDump => "canary_mysql_dump",
            ContentClass::CanaryFingerprintHtml => "canary_fingerprint_html",
            ContentClass::CanaryFingerprintSvg => "canary_fingerprint_svg",
        }
    }

    /// The family this class belongs to.
    pub const fn family(self) -> ClassFamily {
        match self {
            ContentClass::Note
            | ContentClass::Todo
            | ContentClass::Draft
            | ContentClass::Script => ClassFamily::User,
            ContentClass::LogCron | ContentClass::LogDaemon | ContentClass::CacheTmp => {
                ClassFamily::System
            }
            ContentClass::Email => ClassFamily::Email,
            ContentClass::CanaryAwsCreds
            | ContentClass::CanaryEnvFile
            | ContentClass::CanaryGitConfig
            | ContentClass::CanarySshKey
            | ContentClass::CanaryHoneydoc
            | ContentClass::CanaryHoneydocDocx
            | ContentClass::CanaryHoneydocPdf
            | ContentClass::CanaryMysqlDump
            | ContentClass::CanaryFingerprintHtml
            | ContentClass::CanaryFingerprintSvg => ClassFamily::Canary,
        }
    }

    pub const fn is_user_class(self) -> bool {
        matches!(self.family(), ClassFamily::User)
    }

    pub const fn is_system_class(self) -> bool {
        matches!(self.family(), ClassFamily::System)
    }

    pub const fn is_canary(self) -> bool {
        matches!(self.family(), ClassFamily::Canary)
    }

    /// Classes whose planted files may later be edited in place (§1.6
    /// `pick_random_synthetic_file_for_edit`, §4.8).
    pub const fn is_editable(self) -> bool {
        matches!(
            self,
            ContentClass::Note
                | ContentClass::Todo
                | ContentClass::Draft
                | ContentClass::Script
                | ContentClass::LogCron
                | ContentClass::LogDaemon
        )
    }

    /// Wire values of the editable classes (for the repository's edit-candidate query).
    pub fn editable_wire_values() -> Vec<&'static str> {
        Self::ALL
            .iter()
            .filter(|c| c.is_editable())
            .map(|c| c.as_str())
            .collect()
    }
}

impl fmt::Display for ContentClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ContentClass {
    type Err = UnknownContentClass;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .iter()
            .copied()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownContentClass(s.to_owned()))
    }
}

impl Serialize for ContentClass {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ContentClass {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_values_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for class in ContentClass::ALL {
            assert!(seen.insert(class.as_str()), "duplicate {class}");
            assert_eq!(class.as_str().parse::<ContentClass>(), Ok(class));
            let json = serde_json::to_string(&class).unwrap();
            assert_eq!(serde_json::from_str::<ContentClass>(&json).unwrap(), class);
        }
    }

    #[test]
    fn unknown_value_is_a_typed_error() {
        let err = "Note".parse::<ContentClass>().unwrap_err();
        assert_eq!(err, UnknownContentClass("Note".into()));
        assert!(err.to_string().contains("unknown content_class"));
        assert!(serde_json::from_str::<ContentClass>("\"nope\"").is_err());
    }

    #[test]
    fn predicates_partition_the_classes() {
        for class in ContentClass::ALL {
            let flags = [
                class.is_user_class(),
                class.is_system_class(),
                class.is_canary(),
                class == ContentClass::Email,
            ];
            assert_eq!(flags.iter().filter(|f| **f).count(), 1, "{class}");
            assert_eq!(class.is_canary(), class.as_str().starts_with("canary_"));
        }
        assert_eq!(
            ContentClass::USER.iter().all(|c| c.is_user_class()),
            ContentClass::SYSTEM.iter().all(|c| c.is_system_class())
        );
        assert!(ContentClass::CANARY.iter().all(|c| c.is_canary()));
        assert_eq!(
            ContentClass::editable_wire_values(),
            vec!["note", "todo", "draft", "script", "log_cron", "log_daemon"]
        );
    }
}
