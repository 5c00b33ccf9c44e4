//! Integration tests of the pgoutput decoder: golden fixtures captured from Postgres, a live
//! drift check, and property tests (round trip, robustness against arbitrary input).

mod fixtures;
mod golden;
mod live;
mod model;
mod render;
mod robustness;
mod roundtrip;
