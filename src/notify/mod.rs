//! Notifications to users and administrators.

pub mod email;
