//! Deterministic simulation of the agent: the real `Agent` with an in-memory lars-dns, an
//! in-memory lars-reporter and API callers, over in-memory links on a virtual clock (in the
//! manner of quinn-proto's test `Pair`). Every frame crosses the real codecs.
//!
//! The harness is `sim.rs`; the tests are grouped by what they are about.

mod health;
mod input;
mod links;
mod reports;
mod routes;
mod sim;
