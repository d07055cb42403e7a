//! Notifications to users and administrators: email and SMS.

pub mod email;
pub mod sms;
