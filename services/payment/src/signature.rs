//! The shared webhook signature scheme (the payment gateway's webhooks): one implementation in
//! `nivesh-webhook`, used by every sender and receiver.

pub use nivesh_webhook::*;
