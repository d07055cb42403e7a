//! Second factors: one file per factor, and the operations the pages use.

pub mod otp;
pub mod recovery;
pub mod resets;
pub mod service;
pub mod totp;
