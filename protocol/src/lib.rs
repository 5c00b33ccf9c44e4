//! The Electric Shape HTTP API as pure, I/O-free logic.
