//! Sender/recipient pick (realism.md §6.2 steps 2–4) on the shared persona clock.

use chrono::{DateTime, Utc};
use rand::seq::SliceRandom;
use rand::Rng;

use crate::domain::realism::Persona;

/// A sender and a recipient, both in their active hours, with different addresses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MailPair<'a> {
    pub sender: &'a Persona,
    pub recipient: &'a Persona,
}

/// Why no pair could be formed (shown in the worker's heartbeat).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoPair {
    /// Fewer than two personas at all.
    TooFewPersonas,
    /// Fewer than two personas in their active hours (or sharing one address).
    OutOfHours,
}

impl NoPair {
    pub const fn as_str(self) -> &'static str {
        match self {
            NoPair::TooFewPersonas => "fewer than 2 personas",
            NoPair::OutOfHours => "fewer than 2 personas in their active hours",
        }
    }
}

/// Sender uniform among the active personas; recipient uniform among the active personas
/// whose email differs (case-insensitively) from the sender's.
pub fn pick_pair<'a, R: Rng + ?Sized>(
    personas: &'a [Persona],
    now: DateTime<Utc>,
    rng: &mut R,
) -> Result<MailPair<'a>, NoPair> {
    if personas.len() < 2 {
        return Err(NoPair::TooFewPersonas);
    }
    let active: Vec<&Persona> = personas.iter().filter(|p| p.is_active(now)).collect();
    if active.len() < 2 {
        return Err(NoPair::OutOfHours);
    }
    let sender = *active.choose(rng).ok_or(NoPair::OutOfHours)?;
    let others: Vec<&Persona> = active
        .iter()
        .copied()
        .filter(|p| !p.email.eq_ignore_ascii_case(&sender.email))
        .collect();
    let recipient = *others.choose(rng).ok_or(NoPair::OutOfHours)?;
    Ok(MailPair { sender, recipient })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use serde_json::json;

    fn p(name: &str, email: &str, hours: &str) -> Persona {
        Persona::from_value(
            &json!({"name": name, "email": email, "role": "r", "active_hours": hours}),
        )
        .unwrap()
    }

    #[test]
    fn pairs_are_distinct_and_in_hours() {
        let noon = Utc.with_ymd_and_hms(2026, 4, 28, 12, 0, 0).unwrap();
        let three = Utc.with_ymd_and_hms(2026, 4, 28, 3, 0, 0).unwrap();
        let ps = vec![
            p("A", "a@x.example", "09:00-18:00"),
            p("B", "b@x.example", "09:00-18:00"),
            p("C", "c@x.example", "22:00-06:00"),
        ];
        assert_eq!(
            pick_pair(&ps[..1], noon, &mut StdRng::seed_from_u64(0)),
            Err(NoPair::TooFewPersonas)
        );
        assert_eq!(
            pick_pair(&ps, three, &mut StdRng::seed_from_u64(0)),
            Err(NoPair::OutOfHours)
        );
        for seed in 0..50 {
            let pair = pick_pair(&ps, noon, &mut StdRng::seed_from_u64(seed)).unwrap();
            assert_ne!(pair.sender.email, pair.recipient.email);
            assert_ne!(pair.sender.name, "C");
            assert_ne!(pair.recipient.name, "C");
        }
        // same address twice never pairs with itself
        let dup = vec![
            p("A", "a@x.example", "00:00-00:00"),
            p("A2", "A@x.example", "00:00-00:00"),
        ];
        assert_eq!(
            pick_pair(&dup, noon, &mut StdRng::seed_from_u64(1)),
            Err(NoPair::OutOfHours)
        );
    }
}
