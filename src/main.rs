//! `decnetd` command line.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use decnetd::app::{App, StartOptions};
use decnetd::config::{EnvSource, Settings};
use decnetd::db::Db;

/// mimalloc instead of the system allocator: intake allocates and frees millions of small
/// strings across threads, where glibc malloc spent about a fifth of the CPU of an ingest.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "decnetd",
    version,
    about = "Mothership daemon of the DECNET honeypot deception network"
)]
struct Cli {
    /// TOML settings file (defaults < file < DECNET_* environment)
    #[arg(long, global = true, env = "DECNETD_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: HTTP API, registry and every actor (the default).
    Serve,
    /// Create or upgrade the database schema and exit.
    Migrate,
    /// Inspect settings.
    Config {
        #[command(subcommand)]
        action: ConfigCmd,
    },
    /// Manage dashboard users.
    User {
        #[command(subcommand)]
        action: UserCmd,
    },
    /// Print the OpenAPI document.
    Openapi,
    /// Run one fleet reconciliation pass (state file + Docker → fleet_deckies) and print its
    /// counts as JSON.
    Reconcile,
    /// Score a clustering fixture at identity and campaign level; prints one JSON object and
    /// exits 0 only when every floor of the fixture holds.
    ///
    /// With `--scale N` it instead builds scale sets of N rows (copies of the fixture campaigns
    /// on a small shared fleet plus noise scanners, truth carried along; templates: the given
    /// fixture, else the embedded shared fixtures) and prints one JSON report per seed.
    ClusterEval {
        /// Fixture file (the format of shared/fixtures/clustering/*.json).
        #[arg(required_unless_present = "scale")]
        fixture: Option<PathBuf>,
        /// Build and score scale sets of this many rows.
        #[arg(long)]
        scale: Option<usize>,
        /// Seeds of the scale sets (repeat or comma-separate).
        #[arg(long, value_delimiter = ',', default_value = "1")]
        seed: Vec<u64>,
        /// Deckies in the shared fleet of a scale set.
        #[arg(long, default_value_t = 16)]
        fleet: u32,
        /// Template rounds (one copy of every template) started per day.
        #[arg(long, default_value_t = 0.1)]
        density: f64,
        /// Share of a scale set's rows that are extra noise scanners.
        #[arg(long, default_value_t = 0.3)]
        noise: f64,
    },
    /// Manage the global persona pool (mail senders and file authors).
    Personas {
        #[command(subcommand)]
        action: PersonasCmd,
    },
    /// Seed-era name of `personas` (`emailgen import-personas FILE`).
    Emailgen {
        #[command(subcommand)]
        action: EmailgenCmd,
    },
    /// Replay RFC 5424 (or reference `.json`) log files into the database through the
    /// ingest pipeline; idempotent (already stored lines are skipped). Prints a JSON summary.
    Ingest {
        /// Files to read, in order.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
enum PersonasCmd {
    /// Validate a JSON list of personas and write the valid ones to the pool file.
    Import {
        file: PathBuf,
        /// Write here instead of the resolved pool path.
        #[arg(long, short = 'o')]
        output: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum EmailgenCmd {
    /// Same as `personas import`.
    ImportPersonas {
        file: PathBuf,
        #[arg(long, short = 'o')]
        output: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ConfigCmd {
    /// Print the effective settings as TOML (secrets redacted).
    Show,
}

#[derive(Subcommand)]
enum UserCmd {
    /// Add a user; the password is read from stdin (one line) or generated and printed.
    Add {
        username: String,
        #[arg(long, default_value = "viewer", value_parser = ["admin", "viewer"])]
        role: String,
    },
    /// Set a user's password (read from stdin, one line); revokes the user's tokens.
    Passwd {
        username: String,
        /// Force a password change at next login.
        #[arg(long)]
        must_change: bool,
    },
    /// List users.
    List,
}

fn init_tracing(settings: &Settings) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&settings.log_level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

fn main() -> ExitCode {
    decnetd::memory::tune_allocators();
    let cli = Cli::parse();
    if let Some(Command::ClusterEval {
        fixture,
        scale,
        seed,
        fleet,
        density,
        noise,
    }) = &cli.command
    {
        return match (scale, fixture) {
            (Some(rows), _) => cluster_eval_scale(
                fixture.as_deref(),
                seed,
                decnetd::domain::clustering::scale::ScaleParams {
                    rows: *rows,
                    seed: 0,
                    fleet: *fleet,
                    rounds_per_day: *density,
                    noise_share: *noise,
                },
            ),
            (None, Some(path)) => cluster_eval(path),
            (None, None) => ExitCode::from(2),
        };
    }
    let settings = match Settings::load(cli.config.as_deref(), &EnvSource::from_process()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("decnetd: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    init_tracing(&settings);
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => actix_rt::System::new().block_on(serve(settings)),
        Command::Migrate => actix_rt::System::new().block_on(migrate(settings)),
        Command::Config {
            action: ConfigCmd::Show,
        } => toml::to_string_pretty(&settings)
            .map(|s| print!("{s}"))
            .map_err(|e| e.to_string()),
        Command::User { action } => actix_rt::System::new().block_on(user(settings, action)),
        Command::Reconcile => actix_rt::System::new().block_on(reconcile(settings)),
        Command::Openapi => {
            println!("{}", decnetd::http::openapi::document_json());
            Ok(())
        }
        // Handled before the settings are loaded (it needs neither settings nor a database).
        Command::ClusterEval { .. } => Ok(()),
        Command::Personas {
            action: PersonasCmd::Import { file, output },
        }
        | Command::Emailgen {
            action: EmailgenCmd::ImportPersonas { file, output },
        } => import_personas(&settings, &file, output.as_deref()),
        Command::Ingest { files } => actix_rt::System::new().block_on(ingest(settings, files)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("decnetd: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `decnetd personas import FILE [-o PATH]`.
fn import_personas(
    settings: &Settings,
    file: &std::path::Path,
    output: Option<&std::path::Path>,
) -> Result<(), String> {
    let report = decnetd::actors::mail_dripper::import_personas(
        file,
        output,
        settings.realism.personas_path.as_deref(),
    )?;
    for w in &report.warnings {
        eprintln!("{w}");
    }
    println!(
        "imported {} persona(s) into {}",
        report.imported,
        report.path.display()
    );
    Ok(())
}

/// `decnetd cluster-eval FIXTURE.json` (needs no settings or database).
fn cluster_eval(path: &std::path::Path) -> ExitCode {
    let report = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))
        .and_then(|text| {
            decnetd::domain::clustering::eval::cluster_eval(&text).map_err(|e| e.to_string())
        });
    match report {
        Ok(report) => match serde_json::to_string(&report) {
            Ok(json) => {
                println!("{json}");
                if report.passed {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            }
            Err(e) => {
                eprintln!("decnetd: {e}");
                ExitCode::from(2)
            }
        },
        Err(e) => {
            eprintln!("decnetd: cluster-eval: {e}");
            ExitCode::from(2)
        }
    }
}

/// `decnetd cluster-eval --scale N --seed S,… [FIXTURE.json]`: one JSON report per seed (the
/// per-row detail is left out); exit 0 when every report could be produced.
fn cluster_eval_scale(
    template: Option<&std::path::Path>,
    seeds: &[u64],
    params: decnetd::domain::clustering::scale::ScaleParams,
) -> ExitCode {
    use decnetd::domain::clustering::{eval, fixture::Fixture, scale};
    let templates = match template {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))
            .and_then(|t| Fixture::from_json(&t).map_err(|e| e.to_string()))
            .map(|f| vec![f]),
        None => scale::shared_templates().map_err(|e| e.to_string()),
    };
    let templates = match templates {
        Ok(t) => t,
        Err(e) => {
            eprintln!("decnetd: cluster-eval: {e}");
            return ExitCode::from(2);
        }
    };
    for &seed in seeds {
        let p = scale::ScaleParams {
            seed,
            ..params.clone()
        };
        let started = std::time::Instant::now();
        let report = scale::build(&templates, &p)
            .map_err(|e| e.to_string())
            .and_then(|fx| eval::evaluate(&fx).map_err(|e| e.to_string()));
        match report {
            Ok(mut report) => {
                report.floors.clear();
                let line = serde_json::json!({
                    "seed": seed,
                    "fleet": p.fleet,
                    "density": p.rounds_per_day,
                    "noise": p.noise_share,
                    "total_ms": started.elapsed().as_secs_f64() * 1_000.0,
                    "report": report,
                });
                println!("{line}");
            }
            Err(e) => {
                eprintln!("decnetd: cluster-eval: {e}");
                return ExitCode::from(2);
            }
        }
    }
    ExitCode::SUCCESS
}

async fn serve(settings: Settings) -> Result<(), String> {
    let app = App::start(settings, StartOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    eprintln!("decnetd: listening on {}", app.base_url());
    decnetd::systemd::ready_when_answering(&app.base_url(), std::time::Duration::from_secs(60))
        .await;
    app.wait().await.map_err(|e| e.to_string())
}

async fn open_db(settings: &Settings) -> Result<Db, String> {
    if settings.db.url.is_none() {
        decnetd::private_fs::create_dir_all(&settings.data_dir)
            .map_err(|e| format!("data directory {}: {e}", settings.data_dir.display()))?;
    }
    let db = Db::connect_with(&settings.database_url(), settings.db.options())
        .await
        .map_err(|e| format!("database: {e}"))?;
    db.migrate().await.map_err(|e| format!("migrations: {e}"))?;
    Ok(db)
}

async fn ingest(settings: Settings, files: Vec<PathBuf>) -> Result<(), String> {
    // A long replay can be watched like the daemon (and its metrics overhead measured).
    let _metrics = decnetd::metrics::serve(&settings.metrics, None).map_err(|e| e.to_string())?;
    let db = open_db(&settings).await?;
    let started = std::time::Instant::now();
    let summary =
        decnetd::actors::ingester::ingest_files(&db, None, &settings.ingest, &files, true)
            .await
            .map_err(|e| e.to_string())?;
    let secs = started.elapsed().as_secs_f64();
    let mut v = serde_json::to_value(&summary).map_err(|e| e.to_string())?;
    v["seconds"] = serde_json::json!(secs);
    v["lines_per_s"] = serde_json::json!((summary.lines as f64 / secs.max(1e-9)).round());
    println!("{v}");
    Ok(())
}

async fn migrate(settings: Settings) -> Result<(), String> {
    let db = Db::connect_with(&settings.database_url(), settings.db.options())
        .await
        .map_err(|e| format!("database: {e}"))?;
    let applied = db.migrate().await.map_err(|e| format!("migrations: {e}"))?;
    println!(
        "decnetd: {applied} migration(s) applied ({:?})",
        db.backend()
    );
    Ok(())
}

async fn reconcile(settings: Settings) -> Result<(), String> {
    let db = open_db(&settings).await?;
    let report = decnetd::actors::reconciler::run_once(&settings, db)
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "{}",
        serde_json::to_string(&report).map_err(|e| e.to_string())?
    );
    Ok(())
}

fn read_password_line() -> Result<Option<String>, String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("password (12-72 characters): ");
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("reading password: {e}"))?;
    let pw = line.trim_end_matches(['\r', '\n']).to_string();
    Ok(if pw.is_empty() { None } else { Some(pw) })
}

fn check_password(pw: &str) -> Result<(), String> {
    use decnetd::http::auth::{check_new_password, PasswordProblem};
    match check_new_password(pw) {
        Ok(()) => Ok(()),
        Err(PasswordProblem::TooShort) => Err("password must be at least 12 characters".into()),
        Err(PasswordProblem::TooLong) => Err("password must be at most 72 characters".into()),
    }
}

async fn hash(pw: String) -> Result<String, String> {
    tokio::task::spawn_blocking(move || decnetd::http::auth::hash_password_blocking(&pw))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}

async fn user(settings: Settings, action: UserCmd) -> Result<(), String> {
    use decnetd::db::models::core::NewUser;
    use decnetd::db::repo::users;
    let db = open_db(&settings).await?;
    match action {
        UserCmd::List => {
            for u in users::list(&db).await.map_err(|e| e.to_string())? {
                println!(
                    "{}\t{}\t{}{}",
                    u.uuid,
                    u.username,
                    u.role,
                    if u.must_change_password {
                        "\tmust-change-password"
                    } else {
                        ""
                    }
                );
            }
        }
        UserCmd::Add { username, role } => {
            if username.is_empty() || username.chars().count() > 64 {
                return Err("username must be 1-64 characters".into());
            }
            let (pw, generated) = match read_password_line()? {
                Some(pw) => (pw, false),
                None => (decnetd::app::generate_password(), true),
            };
            check_password(&pw)?;
            let user = users::create(
                &db,
                NewUser {
                    uuid: uuid::Uuid::new_v4().to_string(),
                    username: username.clone(),
                    password_hash: hash(pw.clone()).await?,
                    role,
                    must_change_password: true,
                },
            )
            .await
            .map_err(|e| {
                if e.is_unique_violation() {
                    format!("user '{username}' already exists")
                } else {
                    e.to_string()
                }
            })?;
            println!(
                "created {} ({}, must change password at first login)",
                user.username, user.uuid
            );
            if generated {
                println!("password: {pw}");
            }
        }
        UserCmd::Passwd {
            username,
            must_change,
        } => {
            let user = users::get_by_username(&db, &username)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("no user '{username}'"))?;
            let pw = read_password_line()?.ok_or("empty password")?;
            check_password(&pw)?;
            users::update_password(&db, &user.uuid, &hash(pw).await?, must_change)
                .await
                .map_err(|e| e.to_string())?;
            users::set_tokens_valid_from(&db, &user.uuid, decnetd::db::now_utc())
                .await
                .map_err(|e| e.to_string())?;
            decnetd::app::forget_initial_password(&settings, &username);
            println!("password updated for {username}; existing tokens revoked");
        }
    }
    Ok(())
}
