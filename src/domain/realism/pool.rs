//! Where the global persona pool lives (realism.md §3.5) and which persona source a decky
//! uses. The caller gathers the facts (env, file existence, writability, home); this decides.

use std::path::{Path, PathBuf};

/// Env var naming the pool file explicitly.
pub const POOL_ENV: &str = "DECNET_REALISM_PERSONAS";
/// Seed-era name of [`POOL_ENV`], honoured as a fallback.
pub const POOL_ENV_LEGACY: &str = "DECNET_EMAILGEN_PERSONAS";
/// System-wide pool directory.
pub const ETC_DIR: &str = "/etc/decnet";
/// Pool file name.
pub const POOL_FILE_NAME: &str = "email_personas.json";

/// The facts the resolution depends on.
#[derive(Debug, Clone, Copy, Default)]
pub struct PoolFacts<'a> {
    pub env: Option<&'a str>,
    pub legacy_env: Option<&'a str>,
    /// `/etc/decnet/email_personas.json` exists.
    pub etc_file_exists: bool,
    /// `/etc/decnet` exists and is writable.
    pub etc_dir_writable: bool,
    pub home: Option<&'a Path>,
}

/// First match of: env (trimmed, non-empty), legacy env, existing `/etc` file, writable `/etc`
/// directory, `~/.decnet/email_personas.json` (the `/etc` path when there is no home).
pub fn resolve_pool_path(facts: &PoolFacts<'_>) -> PathBuf {
    let explicit = [facts.env, facts.legacy_env]
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|s| !s.is_empty());
    if let Some(p) = explicit {
        return PathBuf::from(p);
    }
    let etc = Path::new(ETC_DIR).join(POOL_FILE_NAME);
    if facts.etc_file_exists || facts.etc_dir_writable {
        return etc;
    }
    match facts.home {
        Some(home) => home.join(".decnet").join(POOL_FILE_NAME),
        None => etc,
    }
}

/// Which persona list a decky draws from (§3.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PersonaSource<'a> {
    /// The topology's own `email_personas` (never mixed with the pool).
    Topology(&'a str),
    /// The global pool file.
    GlobalPool,
}

/// `topology` deckies with a topology id use that topology's personas; everything else
/// (`fleet`, `shard`, unknown) uses the global pool.
pub fn persona_source<'a>(source: &str, topology_id: Option<&'a str>) -> PersonaSource<'a> {
    match (source, topology_id) {
        ("topology", Some(id)) if !id.is_empty() => PersonaSource::Topology(id),
        _ => PersonaSource::GlobalPool,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolution_order() {
        let home = Path::new("/home/op");
        let mut f = PoolFacts {
            env: Some("  /srv/p.json "),
            legacy_env: Some("/legacy.json"),
            etc_file_exists: true,
            etc_dir_writable: true,
            home: Some(home),
        };
        assert_eq!(resolve_pool_path(&f), PathBuf::from("/srv/p.json"));
        f.env = Some("   ");
        assert_eq!(resolve_pool_path(&f), PathBuf::from("/legacy.json"));
        f.legacy_env = None;
        assert_eq!(
            resolve_pool_path(&f),
            PathBuf::from("/etc/decnet/email_personas.json")
        );
        f.etc_file_exists = false;
        assert_eq!(
            resolve_pool_path(&f),
            PathBuf::from("/etc/decnet/email_personas.json")
        );
        f.etc_dir_writable = false;
        assert_eq!(
            resolve_pool_path(&f),
            PathBuf::from("/home/op/.decnet/email_personas.json")
        );
        f.home = None;
        assert!(resolve_pool_path(&f).ends_with(POOL_FILE_NAME));
    }

    #[test]
    fn sources() {
        assert_eq!(
            persona_source("topology", Some("t1")),
            PersonaSource::Topology("t1")
        );
        assert_eq!(persona_source("topology", None), PersonaSource::GlobalPool);
        assert_eq!(
            persona_source("topology", Some("")),
            PersonaSource::GlobalPool
        );
        assert_eq!(
            persona_source("fleet", Some("t1")),
            PersonaSource::GlobalPool
        );
        assert_eq!(persona_source("shard", None), PersonaSource::GlobalPool);
    }
}
