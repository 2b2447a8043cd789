//! Incremental UTF-8 validation of a message that grows frame by frame (or read by read),
//! so invalid text fails the connection as soon as the offending byte arrives (RFC 6455
//! §8.1 asks to fail fast) without re-checking what was already checked.

/// Remembers how much of a growing buffer is known to be valid. A truncated but valid
/// prefix of a character at the end is fine until the message ends.
#[derive(Debug, Default)]
pub struct Utf8Validator {
    checked: usize,
}

#[derive(Debug, PartialEq, Eq)]
pub struct InvalidUtf8;

impl Utf8Validator {
    /// Check `buf` past the validated prefix. `buf` must be the same buffer as before,
    /// possibly longer.
    pub fn feed(&mut self, buf: &[u8]) -> Result<(), InvalidUtf8> {
        let rest = buf.get(self.checked..).unwrap_or(&[]);
        match std::str::from_utf8(rest) {
            Ok(_) => {
                self.checked = buf.len();
                Ok(())
            }
            // error_len() is None only when the tail is an incomplete but possible character.
            Err(e) if e.error_len().is_none() => {
                self.checked += e.valid_up_to();
                Ok(())
            }
            Err(_) => Err(InvalidUtf8),
        }
    }

    /// At the end of the message: is all of `buf` valid (no dangling partial character)?
    pub fn is_complete(&self, buf: &[u8]) -> bool {
        self.checked == buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_in_pieces(bytes: &[u8], piece: usize) -> Result<bool, InvalidUtf8> {
        let mut v = Utf8Validator::default();
        let mut buf = Vec::new();
        for chunk in bytes.chunks(piece.max(1)) {
            buf.extend_from_slice(chunk);
            v.feed(&buf)?;
        }
        Ok(v.is_complete(&buf))
    }

    #[test]
    fn valid_text_split_anywhere() {
        let s = "κόσμε — hello 𝄞 ünïcödé".as_bytes();
        for piece in 1..=s.len() {
            assert_eq!(feed_in_pieces(s, piece), Ok(true), "piece {piece}");
        }
    }

    #[test]
    fn truncated_character_is_incomplete_not_invalid() {
        assert_eq!(feed_in_pieces(&[0xce, 0xba, 0xe1], 1), Ok(false));
    }

    #[test]
    fn invalid_bytes_fail_fast() {
        // 0xF4 0x90 would encode a code point above U+10FFFF: invalid at the second byte.
        let mut v = Utf8Validator::default();
        assert_eq!(v.feed(&[0xf4]), Ok(()));
        assert_eq!(v.feed(&[0xf4, 0x90]), Err(InvalidUtf8));
        // Surrogates and overlong forms.
        assert!(feed_in_pieces(&[0xed, 0xa0, 0x80], 1).is_err());
        assert!(feed_in_pieces(&[0xc0, 0xaf], 1).is_err());
        assert!(feed_in_pieces(b"ok\xff", 2).is_err());
    }
}
