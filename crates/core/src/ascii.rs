//! Dropping non-ASCII bytes before parsing, as the platform's original handler does.
//!
//! The original converts every payload to US-ASCII first, dropping what does not convert
//! (`encode("US-ASCII", invalid: :replace, undef: :replace, replace: "")`): a stray emoji, a
//! UTF-8 BOM or a byte of invalid UTF-8 costs nothing else. Both readings formats are ASCII by
//! definition, so the parsers do the same: the raw parser always, the JSON decoder when a payload
//! does not parse as it is. The positions of the dropped bytes are kept so that error messages
//! can still point at a byte of the payload as it was sent.

use std::borrow::Cow;

/// A payload with its non-ASCII bytes dropped (borrowed when it had none).
#[derive(Debug)]
pub struct Ascii<'a> {
    pub bytes: Cow<'a, [u8]>,
    /// Positions, in the original payload, of the dropped bytes (ascending).
    dropped: Vec<usize>,
}

impl<'a> Ascii<'a> {
    pub fn new(payload: &'a [u8]) -> Self {
        if payload.is_ascii() {
            return Ascii {
                bytes: Cow::Borrowed(payload),
                dropped: Vec::new(),
            };
        }
        let mut bytes = Vec::with_capacity(payload.len());
        let mut dropped = Vec::new();
        for (i, &c) in payload.iter().enumerate() {
            if c.is_ascii() {
                bytes.push(c);
            } else {
                dropped.push(i);
            }
        }
        Ascii {
            bytes: Cow::Owned(bytes),
            dropped,
        }
    }

    /// How many bytes were dropped.
    pub fn dropped(&self) -> usize {
        self.dropped.len()
    }

    /// The position in the original payload of byte `at` of [`Ascii::bytes`] (`at` may be one
    /// past the end).
    pub fn original(&self, at: usize) -> usize {
        let mut shift = 0;
        for &d in &self.dropped {
            if d <= at + shift {
                shift += 1;
            } else {
                break;
            }
        }
        at + shift
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_payloads_are_borrowed_untouched() {
        let a = Ascii::new(b"{t:2017-03-24T13:35:14Z,1:21}");
        assert!(matches!(a.bytes, Cow::Borrowed(_)));
        assert_eq!((a.dropped(), a.original(5)), (0, 5));
    }

    #[test]
    fn non_ascii_bytes_are_dropped_and_positions_map_back() {
        let payload = "\u{feff}{1:2💣,3:4}\u{e9}".as_bytes();
        let a = Ascii::new(payload);
        assert_eq!(&*a.bytes, b"{1:2,3:4}");
        assert_eq!(a.dropped(), 3 + 4 + 2);
        // '{' was byte 3 (after the BOM), ',' byte 11 (after the bomb), '}' byte 15.
        assert_eq!(a.original(0), 3);
        assert_eq!(a.original(4), 11);
        assert_eq!(a.original(8), 15);
        assert_eq!(a.original(9), 18); // one past the end of the original
        let invalid = Ascii::new(b"\xff\xfe{}");
        assert_eq!((&*invalid.bytes, invalid.dropped()), (&b"{}"[..], 2));
    }
}
