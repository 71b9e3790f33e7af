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
    ///
    /// The shift is the number of dropped bytes at or before the result: the `k` with
    /// `dropped[k] <= at + k`. `dropped[k] - k` never decreases (positions strictly increase),
    /// so a binary search finds it: a payload with many bad pairs and many dropped bytes costs
    /// O(problems × log dropped), not the O(problems × dropped) of a scan (found by `fuzz/`:
    /// 1.2 s for a 328 KB raw payload).
    pub fn original(&self, at: usize) -> usize {
        let (mut lo, mut hi) = (0, self.dropped.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.dropped[mid] - mid <= at {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        at + lo
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scan `original` replaced, as the oracle of its binary search.
    fn original_by_scan(dropped: &[usize], at: usize) -> usize {
        let mut shift = 0;
        for &d in dropped {
            if d <= at + shift {
                shift += 1;
            } else {
                break;
            }
        }
        at + shift
    }

    #[test]
    fn positions_map_back_as_the_scan_did_for_any_dropped_bytes() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        for _ in 0..2_000 {
            let len = next(64) as usize;
            let payload: Vec<u8> = (0..len)
                .map(|_| if next(3) == 0 { 0xff } else { b'a' })
                .collect();
            let a = Ascii::new(&payload);
            for at in 0..=a.bytes.len() {
                assert_eq!(
                    a.original(at),
                    original_by_scan(&a.dropped, at),
                    "{payload:?} at {at}"
                );
                // The byte it maps to is the same ASCII byte.
                if at < a.bytes.len() {
                    assert_eq!(payload[a.original(at)], a.bytes[at]);
                }
            }
        }
    }

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
