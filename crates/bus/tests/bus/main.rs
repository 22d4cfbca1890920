//! Integration tests of the bus, all over TCP against a librdkafka mock cluster started inside
//! the test process (random port, one per test), with unique topic and group names.

#![allow(dead_code, unreachable_pub)]

mod batched;
mod common;
mod devbroker;
mod failures;
mod observability;
mod offsets;
mod outbox;
mod roundtrip;
