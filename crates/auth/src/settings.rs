//! The `[auth]` section of every service's configuration. The type is defined in
//! `nivesh_runtime::config` (so that the runtime's `Settings` carries the section without
//! depending on this crate) and re-exported here under the contract's name.

pub use nivesh_runtime::config::{AuthSettings, DEFAULT_AUDIENCE, DEV_IDP_URL};
