//! The changes-feed cursor: opaque to clients, versioned for us.
//!
//! Wire form: base64url (no padding) of `v1:<seq>`, where `<seq>` is the last changelog sequence
//! number the reader has seen for the resource. An absent cursor means "from the beginning".

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// A position in one resource's changelog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cursor(pub i64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CursorError(pub &'static str);

/// The longest cursor accepted (a v1 cursor is at most 30 characters).
const MAX_LEN: usize = 64;

impl Cursor {
    pub const START: Cursor = Cursor(0);

    pub fn encode(self) -> String {
        URL_SAFE_NO_PAD.encode(format!("v1:{}", self.0))
    }

    pub fn decode(text: &str) -> Result<Cursor, CursorError> {
        if text.is_empty() || text.len() > MAX_LEN {
            return Err(CursorError("the cursor is empty or too long"));
        }
        let raw = URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| CursorError("the cursor is not base64url"))?;
        let raw = String::from_utf8(raw).map_err(|_| CursorError("the cursor is not text"))?;
        let seq = raw
            .strip_prefix("v1:")
            .ok_or(CursorError("unknown cursor version"))?;
        if seq.is_empty()
            || !seq.bytes().all(|b| b.is_ascii_digit())
            || (seq.len() > 1 && seq.starts_with('0'))
        {
            return Err(CursorError(
                "the cursor position is not a canonical non-negative number",
            ));
        }
        seq.parse::<i64>()
            .map(Cursor)
            .map_err(|_| CursorError("the cursor position is out of range"))
    }
}

/// A position in a resource's snapshot (`GET /sync/{resource}/snapshot`): the changelog
/// watermark the snapshot started at (the feed position to continue from after its last page)
/// and the last entity id served. Wire form: base64url (no padding) of `s1:<watermark>:<id>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotCursor {
    pub watermark: i64,
    pub after: String,
}

/// The longest snapshot cursor accepted (an id is at most 64 bytes).
const MAX_SNAPSHOT_LEN: usize = 160;

impl SnapshotCursor {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("s1:{}:{}", self.watermark, self.after))
    }

    pub fn decode(text: &str) -> Result<SnapshotCursor, CursorError> {
        if text.is_empty() || text.len() > MAX_SNAPSHOT_LEN {
            return Err(CursorError("the snapshot cursor is empty or too long"));
        }
        let raw = URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| CursorError("the snapshot cursor is not base64url"))?;
        let raw =
            String::from_utf8(raw).map_err(|_| CursorError("the snapshot cursor is not text"))?;
        let rest = raw
            .strip_prefix("s1:")
            .ok_or(CursorError("unknown snapshot cursor version"))?;
        let (watermark, after) = rest
            .split_once(':')
            .ok_or(CursorError("the snapshot cursor has no position"))?;
        let watermark = Some(watermark)
            .filter(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|w| w.parse::<i64>().ok())
            .ok_or(CursorError(
                "the snapshot cursor's watermark is not a number",
            ))?;
        if after.is_empty() || after.len() > 64 {
            return Err(CursorError("the snapshot cursor's position is not an id"));
        }
        Ok(SnapshotCursor {
            watermark,
            after: after.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_cursors_round_trip_and_refuse_garbage() {
        let c = SnapshotCursor {
            watermark: 42,
            after: "01939d2e-0000-7000-8000-00000000000a".into(),
        };
        assert_eq!(SnapshotCursor::decode(&c.encode()), Ok(c));
        for bad in [
            "",
            "!!!",
            &Cursor(3).encode(),
            &URL_SAFE_NO_PAD.encode("s1:x:id"),
            &URL_SAFE_NO_PAD.encode("s1:-1:id"),
            &URL_SAFE_NO_PAD.encode("s1:5:"),
            &URL_SAFE_NO_PAD.encode("s1:5"),
        ] {
            assert!(SnapshotCursor::decode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cursors_round_trip() {
        for seq in [0, 1, 42, i64::MAX] {
            let c = Cursor(seq);
            assert_eq!(Cursor::decode(&c.encode()), Ok(c));
        }
        assert_eq!(Cursor(7).encode(), "djE6Nw");
    }

    proptest::proptest! {
        /// Fuzz-style: any text either decodes to the cursor that re-encodes to it, or is
        /// refused — never a panic, never two spellings of one position.
        #[test]
        fn any_text_decodes_canonically_or_is_refused(text in "\\PC{0,80}") {
            if let Ok(cursor) = Cursor::decode(&text) {
                proptest::prop_assert_eq!(cursor.encode(), text);
            }
        }

        #[test]
        fn any_bytes_behind_base64_are_handled(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..40)) {
            let text = URL_SAFE_NO_PAD.encode(&bytes);
            if let Ok(cursor) = Cursor::decode(&text) {
                proptest::prop_assert_eq!(cursor.encode(), text);
                proptest::prop_assert!(cursor.0 >= 0);
            }
        }
    }

    #[test]
    fn malformed_cursors_are_refused() {
        let b64 = |s: &str| URL_SAFE_NO_PAD.encode(s);
        for bad in [
            String::new(),
            "!!!".into(),
            "djE6Nw==".into(),
            b64("v2:7"),
            b64("v1:"),
            b64("v1:-1"),
            b64("v1:+1"),
            b64("v1:007"),
            b64("v1:1e3"),
            b64("v1:99999999999999999999"),
            b64("v1: 7"),
            "x".repeat(100),
            URL_SAFE_NO_PAD.encode([0xff, 0xfe]),
        ] {
            assert!(Cursor::decode(&bad).is_err(), "{bad:?} must be refused");
        }
    }
}
