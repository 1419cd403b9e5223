//! MailDripper logic (realism.md §6, §7.6; no I/O): who writes to whom, new thread or reply,
//! the LLM prompt and the parsing of its output, the template generator used when no LLM
//! answers, the em-dash policy, the circuit breaker and EML rendering.
//!
//! Personas, the pool and active hours come from [`crate::domain::realism`]: one clock for the
//! Planner and the MailDripper ([`crate::domain::realism::Persona::is_active`]).

pub mod breaker;
pub mod eml;
pub mod llm;
pub mod pick;
pub mod prompt;
pub mod templates;
pub mod thread;

pub use breaker::{BreakerState, CircuitBreaker};
pub use eml::{render_eml, EmlMessage};
pub use pick::{pick_pair, MailPair};
pub use prompt::{
    apply_em_dash_policy, build_email_prompt, language_label, parse_output, strip_em_dashes,
    ParsedEmail,
};
pub use templates::template_email;
pub use thread::{
    decide_thread, eml_file_name, eml_path, new_message_id, references_for_reply, reply_subject,
    ParentMessage, ThreadPlan,
};

/// Which generator wrote a message body (recorded in every row's payload as `generator`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Generator {
    /// The configured LLM backend.
    Llm,
    /// The built-in multi-language templates.
    Template,
}

impl Generator {
    pub const fn as_str(self) -> &'static str {
        match self {
            Generator::Llm => "llm",
            Generator::Template => "template",
        }
    }
}
