//! Mutation testing of the code under test: small faults made in send and receive, each built
//! and run against the suite, to measure what share of faults the suite would catch.

pub mod mutant;
pub mod operators;
pub mod patched;
pub mod reach;
pub mod run;
pub mod suite;
pub mod targets;
