//! Close status codes (RFC 6455 §7.4.1): a leaf, so the fault list (`error`) and the
//! close-frame codec (`close`) can both name them without importing each other.
pub const NORMAL: u16 = 1000;
pub const GOING_AWAY: u16 = 1001;
pub const PROTOCOL_ERROR: u16 = 1002;
/// Reported to the host when the peer's close frame carried no code (never sent).
pub const NO_STATUS: u16 = 1005;
/// Reported to the host when the connection ended without a close frame (never sent).
pub const ABNORMAL: u16 = 1006;
pub const INVALID_DATA: u16 = 1007;
pub const POLICY: u16 = 1008;
pub const TOO_BIG: u16 = 1009;
