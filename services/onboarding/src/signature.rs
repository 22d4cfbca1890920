//! The shared webhook signature scheme (the KRA's KYC callbacks): one implementation in
//! `nivesh-webhook`, used by every sender and receiver.

pub use nivesh_webhook::*;
