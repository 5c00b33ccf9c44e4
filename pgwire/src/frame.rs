//! Bounded framing of backend messages.
