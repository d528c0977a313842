//! The integration tests, one binary so the host is compiled and linked once: the real
//! component in the real host, against the simulator (and a test CA, a CONNECT proxy, the
//! probe component where the attacker is the guest).

mod budgets;
mod cache;
mod cli;
mod clocks;
mod concurrency;
mod fleet;
mod hostile_probe;
mod isolation;
mod lifecycle;
mod limits;
mod listings;
mod outbound_policy;
mod properties;
mod routes;
mod serve;
mod sign_in;
mod simulator;
mod stop_and_quarantine;
mod tenants;
