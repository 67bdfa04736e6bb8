//! Integration tests of the feed against a real tansu broker (one binary, a module per topic).

mod admin;
mod consume;
mod given;
mod outage;
mod partitioner;
mod rebalance;
mod restart;
mod support;
