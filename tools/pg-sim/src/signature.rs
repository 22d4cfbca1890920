//! The shared webhook signature scheme (what this simulator signs; `nivesh-payment` verifies it): one implementation in
//! `nivesh-webhook`, used by every sender and receiver.

pub use nivesh_webhook::*;
