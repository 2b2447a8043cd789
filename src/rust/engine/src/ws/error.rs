//! What a peer can do wrong, and the close code each fault earns (RFC 6455 §7.4.1).
use thiserror::Error;

use super::codes;

/// A violation by the peer: the connection is failed with [`ProtocolError::close_code`].
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    #[error("client frame is not masked")]
    Unmasked,
    #[error("reserved opcode {0:#x}")]
    ReservedOpcode(u8),
    #[error("reserved bits set that no negotiated extension defines")]
    ReservedBits,
    #[error("control frame payload of {0} bytes (at most 125 allowed)")]
    ControlTooLong(u64),
    #[error("fragmented control frame")]
    FragmentedControl,
    #[error("continuation frame with no message to continue")]
    UnexpectedContinuation,
    #[error("new data frame before the previous message ended")]
    ExpectedContinuation,
    #[error("payload length with the most significant bit set")]
    BadLength,
    #[error("close frame with a one-byte payload")]
    CloseTooShort,
    #[error("invalid close code {0}")]
    BadCloseCode(u16),
    #[error("invalid UTF-8 in a text message")]
    InvalidUtf8,
    #[error("invalid UTF-8 in a close reason")]
    InvalidCloseReason,
    #[error("message larger than {0} bytes")]
    TooBig(usize),
    #[error("corrupt compressed data")]
    BadDeflate,
}

impl ProtocolError {
    /// The status code the close frame failing the connection carries.
    pub fn close_code(&self) -> u16 {
        match self {
            ProtocolError::InvalidUtf8 | ProtocolError::InvalidCloseReason | ProtocolError::BadDeflate => {
                codes::INVALID_DATA
            }
            ProtocolError::TooBig(_) => codes::TOO_BIG,
            _ => codes::PROTOCOL_ERROR,
        }
    }
}
