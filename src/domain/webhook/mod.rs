//! Webhook egress, pure parts (spec platform.md §5): pattern expansion of simple-mode kinds,
//! the signed body and headers of §5.4 and of Standard Webhooks, the SSRF address classes of
//! §5.5, the retry schedule and circuit breaker of §5.4/§5.6, and the Slack / Microsoft Teams
//! / Discord renderings. No I/O: the dispatcher actor resolves names and sends requests.

pub mod format;
pub mod patterns;
pub mod retry;
pub mod sign;
pub mod ssrf;

pub use format::{render, Format, Rendered};
pub use patterns::{merge_patterns, SimpleEvent};
pub use retry::{classify, Breaker, Class, RetryPolicy};
pub use sign::{canonical_body, iso_ts, signature_header, EventBody};
pub use ssrf::{check_addr, check_url, Forbidden, Target};
