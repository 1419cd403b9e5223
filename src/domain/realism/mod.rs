//! Realism (pure logic, realism.md §3–§4): personas, active hours, content classes, naming
//! and body templates, backdated mtimes, planner weights and `pick`.
//!
//! No I/O here: the Planner actor (and later the MailDripper and the canary planter) feed
//! plain data in and execute the returned plans. `traffic` and `events` hold the probe argv,
//! verdicts and the payload shapes the actor records and publishes. Every random choice takes a caller-supplied
//! RNG, so a seeded `StdRng` makes everything reproducible.

pub mod bodies;
pub mod classes;
pub mod config;
pub mod events;
pub mod hours;
pub mod mtime;
pub mod naming;
pub mod persona;
pub mod planner;
pub mod pool;
pub mod traffic;

pub use bodies::{make_body, next_iteration, BodyContext, NotEditable};
pub use classes::{ClassFamily, ContentClass, UnknownContentClass};
pub use config::{
    validate_payload, weighted_pick, ClassWeight, ConfigError, ConfigField, FieldError,
    PayloadValidation, RealismWeights,
};
pub use hours::{in_work_hours, ActiveWindow};
pub use mtime::{sample_mtime, MtimeBounds};
pub use naming::{make_path, TemplateError};
pub use persona::{
    home_dir_for, login_for, parse_personas, parse_personas_str, ParsedPersonas, Persona,
    PersonaError, PersonaWarning, ReplyLatency, Tone,
};
pub use planner::{
    action_order, edit_plan, is_traffic_eligible, pick, pick_pair, ActionKind, EditCandidate, Plan,
    PlanAction, PlanDetail, PlannerDecky,
};
