//! Syslog-over-TCP framing (RFC 6587 / RFC 5425), decided **per connection**: the stream is
//! octet-counted (`<len> SP <bytes>`, length ≤ 10 digits) only when its first frame is a
//! length prefix followed by a syslog `<PRI>`; otherwise it is newline-framed. Nothing is
//! dropped silently and no input closes the connection: junk, oversize frames and a frame
//! cut short at the end of the stream come out as [`Frame::Rejected`] (the caller
//! quarantines them with reason `framing`), and decoding goes on with the next frame.
//!
//! * Newline mode: every line is a frame; a line that starts with a digit (`220 mail ESMTP`,
//!   `2026-12-06 …`, or a length prefix on a newline stream) is rejected, its neighbours land.
//! * Octet mode: a prefix not followed by `<` (or malformed) starts junk that runs to the next
//!   newline or the next valid prefix; a line starting with a non-digit is read
//!   newline-terminated, as senders that mix the two framings write it.
//! * A frame over the limit is skipped as it streams (never buffered whole) and rejected once,
//!   keeping its first `max` bytes.
//!
//! Pure state machine over pushed bytes.

use memchr::memchr;
use thiserror::Error;

/// Why a frame was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    /// More than 10 digits, a non-space after the digits, or a zero length.
    #[error("bad octet-count length prefix")]
    BadLength,
    /// A length prefix not followed by a syslog `<PRI>`, or a digit-led line on a newline
    /// stream.
    #[error("digit-led data that is not an octet-counted syslog frame (no '<PRI>' after a length prefix)")]
    NotSyslog,
    /// A frame larger than the configured maximum (only its head is kept).
    #[error("frame of {len} bytes exceeds the {max}-byte limit; its first {max} bytes are kept")]
    Oversize {
        /// Announced or accumulated length.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// The stream ended inside an octet-counted frame.
    #[error("stream ended {got} bytes into a frame of {want} announced bytes")]
    Truncated {
        /// Bytes received after the prefix.
        got: usize,
        /// Announced length.
        want: usize,
    },
}

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A syslog line (terminators trimmed).
    Line(Vec<u8>),
    /// Bytes that are not a frame (at most `max` of them), and why.
    Rejected(Vec<u8>, FrameError),
}

/// The framing of a connection, decided by its first frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Not enough bytes yet.
    Undecided,
    /// RFC 6587 §3.4.1 octet counting.
    OctetCounted,
    /// RFC 6587 §3.4.2 non-transparent framing (LF).
    Newline,
}

/// A frame being skipped because it is over the limit.
#[derive(Debug, Clone)]
struct Skip {
    head: Vec<u8>,
    seen: usize,
    /// Bytes still to skip (octet-counted), or `None`: skip to the next newline.
    remaining: Option<usize>,
    announced: usize,
}

/// What a prefix at the start of a buffer is.
enum Prefix {
    /// `len SP <`: the frame starts after `start` bytes.
    Valid { len: usize, start: usize },
    /// `len SP` followed by something else than `<`: a frame only on a stream already
    /// octet-counted, and only when what follows it looks like the next frame.
    Plain { len: usize, start: usize },
    /// Not a valid prefix (or not followed by `<`).
    Invalid(FrameError),
    /// Need more bytes to tell.
    Incomplete,
}

fn prefix(buf: &[u8]) -> Prefix {
    let digits = buf.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits > 10 {
        return Prefix::Invalid(FrameError::BadLength);
    }
    let Some(&sep) = buf.get(digits) else {
        return Prefix::Incomplete;
    };
    if digits == 0 || sep != b' ' {
        return Prefix::Invalid(FrameError::BadLength);
    }
    let Some(len) = std::str::from_utf8(&buf[..digits])
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
        .filter(|&n| n > 0)
    else {
        return Prefix::Invalid(FrameError::BadLength);
    };
    match buf.get(digits + 1) {
        None => Prefix::Incomplete,
        Some(b'<') => Prefix::Valid {
            len,
            start: digits + 1,
        },
        Some(_) => Prefix::Plain {
            len,
            start: digits + 1,
        },
    }
}

/// Incremental decoder; feed bytes with [`push`](Self::push), take frames with
/// [`next_frame`](Self::next_frame), call [`finish`](Self::finish) at the end of the stream
/// and take the last frames.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    /// Received bytes; those before `pos` are consumed (dropped at the next `push`, so that
    /// taking a frame never moves the rest of the buffer).
    buf: Vec<u8>,
    pos: usize,
    max: usize,
    mode: Mode,
    skip: Option<Skip>,
    eof: bool,
}

impl FrameDecoder {
    /// Decoder accepting frames up to `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        Self {
            buf: Vec::new(),
            pos: 0,
            max: max_frame.max(1),
            mode: Mode::Undecided,
            skip: None,
            eof: false,
        }
    }

    /// Append received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The end of the stream: what is left comes out of [`next_frame`](Self::next_frame)
    /// (a partial line as a line, a partial octet-counted frame as rejected).
    pub fn finish(&mut self) {
        self.eof = true;
    }

    /// Bytes buffered but not yet framed.
    pub fn buffered(&self) -> usize {
        self.data().len()
    }

    /// The framing decided for this connection.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The bytes not consumed yet.
    fn data(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// Drop the first `n` unconsumed bytes.
    fn consume(&mut self, n: usize) {
        self.pos += n;
        if self.pos >= self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
    }

    /// Drop everything unconsumed.
    fn consume_all(&mut self) {
        self.buf.clear();
        self.pos = 0;
    }

    /// The first `n` unconsumed bytes, consumed.
    fn take(&mut self, n: usize) -> Vec<u8> {
        let f = self.data()[..n].to_vec();
        self.consume(n);
        f
    }

    /// Everything unconsumed, consumed.
    fn take_all(&mut self) -> Vec<u8> {
        let n = self.data().len();
        self.take(n)
    }

    fn head(&self, n: usize) -> Vec<u8> {
        self.data()[..n.min(self.max)].to_vec()
    }

    /// The next frame, or `None` when more bytes are needed (or, after
    /// [`finish`](Self::finish), when nothing is left).
    pub fn next_frame(&mut self) -> Option<Frame> {
        if let Some(f) = self.skipping() {
            return Some(f);
        }
        if self.skip.is_some() {
            return None;
        }
        // Stray line terminators between frames.
        let blank = self
            .data()
            .iter()
            .take_while(|b| matches!(b, b'\n' | b'\r'))
            .count();
        if blank > 0 {
            self.consume(blank);
        }
        let first = *self.data().first()?;
        if self.mode == Mode::Undecided {
            self.mode = if !first.is_ascii_digit() {
                Mode::Newline
            } else {
                match prefix(self.data()) {
                    Prefix::Valid { .. } => Mode::OctetCounted,
                    Prefix::Plain { .. } | Prefix::Invalid(_) => Mode::Newline,
                    Prefix::Incomplete if self.eof => Mode::Newline,
                    Prefix::Incomplete => return None,
                }
            };
        }
        if first.is_ascii_digit() && self.mode == Mode::OctetCounted {
            return self.octet_frame();
        }
        self.line(first.is_ascii_digit())
    }

    /// A newline-terminated line (rejected when `digit_led`).
    fn line(&mut self, digit_led: bool) -> Option<Frame> {
        let reject = |bytes: Vec<u8>| {
            if digit_led {
                Frame::Rejected(bytes, FrameError::NotSyslog)
            } else {
                Frame::Line(trim_eol(bytes))
            }
        };
        match memchr(b'\n', self.data()) {
            Some(i) if i > self.max => {
                let head = self.head(i);
                self.consume(i + 1);
                Some(Frame::Rejected(
                    head,
                    FrameError::Oversize {
                        len: i,
                        max: self.max,
                    },
                ))
            }
            Some(i) => {
                let mut f = self.take(i + 1);
                f.pop();
                Some(reject(f))
            }
            None if self.data().len() > self.max => {
                self.skip = Some(Skip {
                    head: self.head(self.data().len()),
                    seen: self.data().len(),
                    remaining: None,
                    announced: 0,
                });
                self.consume_all();
                self.skipping()
            }
            None if self.eof => {
                let f = self.take_all();
                Some(reject(f))
            }
            None => None,
        }
    }

    /// An octet-counted frame at the start of the buffer (which starts with a digit).
    fn octet_frame(&mut self) -> Option<Frame> {
        let p = prefix(self.data());
        match p {
            Prefix::Valid { len, start } | Prefix::Plain { len, start } if len > self.max => {
                let have = (self.data().len() - start).min(len);
                let head = self.data()[start..start + have.min(self.max)].to_vec();
                self.consume(start + have);
                self.skip = Some(Skip {
                    head,
                    seen: have,
                    remaining: Some(len - have),
                    announced: len,
                });
                self.skipping()
            }
            Prefix::Valid { len, start } | Prefix::Plain { len, start }
                if self.data().len() >= start + len =>
            {
                // A frame without `<PRI>` (a forwarded garbage line) counts only when the
                // next frame visibly starts right after it (or the stream ends there): until
                // that byte is read it is not decided, so that where the reads split the
                // stream does not change the frames.
                if matches!(p, Prefix::Plain { .. }) {
                    match self.data().get(start + len) {
                        None if !self.eof => return None,
                        Some(b) if !(b.is_ascii_digit() || matches!(b, b'<' | b'\n' | b'\r')) => {
                            return self.junk(FrameError::NotSyslog)
                        }
                        _ => {}
                    }
                }
                self.consume(start);
                Some(Frame::Line(trim_eol(self.take(len))))
            }
            Prefix::Valid { len, start } | Prefix::Plain { len, start } if self.eof => {
                let got = self.data().len() - start;
                let f = self.take_all();
                Some(Frame::Rejected(f, FrameError::Truncated { got, want: len }))
            }
            Prefix::Valid { .. } | Prefix::Plain { .. } => None,
            Prefix::Incomplete if !self.eof => None,
            Prefix::Incomplete => {
                let f = self.take_all();
                Some(Frame::Rejected(f, FrameError::BadLength))
            }
            Prefix::Invalid(why) => self.junk(why),
        }
    }

    /// Junk at the start of an octet-counted stream: it runs to the next newline or to the
    /// next valid length prefix, whichever comes first.
    fn junk(&mut self, why: FrameError) -> Option<Frame> {
        let nl = memchr(b'\n', self.data());
        let limit = nl.unwrap_or(self.data().len());
        let next = (1..limit).find(|&i| {
            !self.data()[i - 1].is_ascii_digit()
                && self.data()[i].is_ascii_digit()
                && matches!(prefix(&self.data()[i..]), Prefix::Valid { .. })
        });
        let end = match (next, nl) {
            (Some(i), _) => i,
            (None, Some(i)) => i + 1,
            (None, None) if self.eof => self.data().len(),
            (None, None) if self.data().len() > self.max => {
                // Keep the tail that may hold the start of the next prefix (≤ 12 bytes).
                let keep = self.data().len().min(12);
                let end = self.data().len() - keep;
                let head = self.head(end);
                self.consume(end);
                return Some(Frame::Rejected(head, why));
            }
            (None, None) => return None,
        };
        let head = self.head(end);
        self.consume(end);
        Some(Frame::Rejected(trim_eol(head), why))
    }

    /// Progress on a frame being skipped: the rejected frame once its end is seen.
    fn skipping(&mut self) -> Option<Frame> {
        let mut s = self.skip.take()?;
        let done = match s.remaining {
            Some(rem) => {
                let n = rem.min(self.data().len());
                let room = self.max.saturating_sub(s.head.len()).min(n);
                s.head.extend_from_slice(&self.data()[..room]);
                self.consume(n);
                s.seen += n;
                s.remaining = Some(rem - n);
                rem == n
            }
            None => match memchr(b'\n', self.data()) {
                Some(i) => {
                    self.consume(i + 1);
                    s.seen += i;
                    true
                }
                None => {
                    s.seen += self.data().len();
                    self.consume_all();
                    false
                }
            },
        };
        if !done && !self.eof {
            self.skip = Some(s);
            return None;
        }
        let why = match s.remaining {
            Some(rem) if rem > 0 => FrameError::Truncated {
                got: s.seen,
                want: s.announced,
            },
            Some(_) => FrameError::Oversize {
                len: s.announced,
                max: self.max,
            },
            None => FrameError::Oversize {
                len: s.seen,
                max: self.max,
            },
        };
        Some(Frame::Rejected(trim_eol(s.head), why))
    }
}

fn trim_eol(mut f: Vec<u8>) -> Vec<u8> {
    while matches!(f.last(), Some(b'\n' | b'\r')) {
        f.pop();
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn all(d: &mut FrameDecoder) -> Vec<Frame> {
        std::iter::from_fn(|| d.next_frame()).collect()
    }

    fn line(s: &[u8]) -> Frame {
        Frame::Line(s.to_vec())
    }

    /// The frames of a stream delivered in `parts` (frames taken after every read), and the
    /// bytes left buffered after its end.
    fn decode_parts(parts: &[&[u8]]) -> (Vec<Frame>, usize) {
        let mut d = FrameDecoder::new(10_000);
        let mut got = Vec::new();
        for p in parts {
            d.push(p);
            got.extend(all(&mut d));
        }
        d.finish();
        got.extend(all(&mut d));
        (got, d.buffered())
    }

    #[test]
    fn octet_counted_stream_with_mixed_newline_frames() {
        let mut d = FrameDecoder::new(100);
        d.push(b"8 <1>1 abc<13>1 line two\n<14>1 par");
        assert_eq!(
            all(&mut d),
            vec![line(b"<1>1 abc"), line(b"<13>1 line two")]
        );
        assert_eq!(d.mode(), Mode::OctetCounted);
        d.push(b"tial\r\n");
        assert_eq!(all(&mut d), vec![line(b"<14>1 partial")]);
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn split_anywhere() {
        let wire = b"10 <1>1 hello11 <2>1 second";
        for cut in 0..wire.len() {
            let mut d = FrameDecoder::new(64);
            d.push(&wire[..cut]);
            let mut got = all(&mut d);
            d.push(&wire[cut..]);
            got.extend(all(&mut d));
            d.finish();
            got.extend(all(&mut d));
            assert_eq!(
                got,
                vec![line(b"<1>1 hello"), line(b"<2>1 second")],
                "cut {cut}"
            );
        }
    }

    #[test]
    fn digit_led_junk_on_a_newline_stream_is_rejected_and_neighbours_land() {
        for first in [&b"<13>1 a\n"[..], b"220 mail ESMTP ready\n"] {
            let mut d = FrameDecoder::new(100);
            d.push(first);
            d.push(b"2026-12-06 12:00:00 plain text\n<13>1 b\n57 words follow\n<13>1 c");
            d.finish();
            let got = all(&mut d);
            assert_eq!(d.mode(), Mode::Newline);
            let lines: Vec<_> = got
                .iter()
                .filter_map(|f| match f {
                    Frame::Line(l) => Some(l.clone()),
                    Frame::Rejected(..) => None,
                })
                .collect();
            assert!(lines.ends_with(&[b"<13>1 b".to_vec(), b"<13>1 c".to_vec()]));
            let rejected = got
                .iter()
                .filter(|f| matches!(f, Frame::Rejected(_, FrameError::NotSyslog)))
                .count();
            assert_eq!(rejected, 2 + usize::from(first[0] == b'2'), "{got:?}");
        }
    }

    #[test]
    fn bad_prefix_in_an_octet_stream_resyncs_at_the_next_frame() {
        let mut d = FrameDecoder::new(100);
        d.push(b"6 <1>1 a12 xxxxxxxxxxxxx6 <2>1 b0 junk\n6 <3>1 c4 junk5 <4>xx");
        d.finish();
        assert_eq!(
            all(&mut d),
            vec![
                line(b"<1>1 a"),
                Frame::Rejected(b"12 xxxxxxxxxxxxx".to_vec(), FrameError::NotSyslog),
                line(b"<2>1 b"),
                Frame::Rejected(b"0 junk".to_vec(), FrameError::BadLength),
                line(b"<3>1 c"),
                line(b"junk"),
                line(b"<4>xx"),
            ]
        );
    }

    #[test]
    fn oversize_frames_keep_their_head_and_the_next_frame_lands() {
        // octet-counted, announced over the limit, arriving in pieces
        let mut d = FrameDecoder::new(10);
        d.push(b"4 <1>a20 <2345");
        let mut got = all(&mut d);
        d.push(b"6789012345678904 <3>b");
        got.extend(all(&mut d));
        assert_eq!(
            got,
            vec![
                line(b"<1>a"),
                Frame::Rejected(
                    b"<234567890".to_vec(),
                    FrameError::Oversize { len: 20, max: 10 }
                ),
                line(b"<3>b"),
            ]
        );
        // newline, never buffered whole
        let mut d = FrameDecoder::new(10);
        d.push(b"<13>1 this is way too long ");
        assert_eq!(
            d.next_frame(),
            None,
            "still skipping: the end is not known yet"
        );
        assert_eq!(d.buffered(), 0);
        d.push(b"and goes on\n<13>1 ok\n");
        assert_eq!(
            all(&mut d),
            vec![
                Frame::Rejected(
                    b"<13>1 this".to_vec(),
                    FrameError::Oversize { len: 38, max: 10 }
                ),
                line(b"<13>1 ok"),
            ]
        );
    }

    #[test]
    fn a_frame_cut_short_at_the_end_is_rejected_not_lost() {
        let mut d = FrameDecoder::new(100);
        d.push(b"4 <1>a20 <2>1 cut");
        assert_eq!(all(&mut d), vec![line(b"<1>a")]);
        d.finish();
        assert_eq!(
            all(&mut d),
            vec![Frame::Rejected(
                b"20 <2>1 cut".to_vec(),
                FrameError::Truncated { got: 8, want: 20 }
            )]
        );
        // a partial newline line at the end is still a line
        let mut d = FrameDecoder::new(100);
        d.push(b"<13>1 last words");
        assert_eq!(all(&mut d), vec![]);
        d.finish();
        assert_eq!(all(&mut d), vec![line(b"<13>1 last words")]);
    }

    /// A frame without `<PRI>` whose last byte ends a read is decided by the byte after it,
    /// as it is when the whole stream is read at once (a proptest counterexample).
    #[test]
    fn a_plain_frame_waits_for_the_byte_after_it() {
        let mut wire = b"\n90 ".to_vec();
        wire.extend([b'<'; 90]);
        wire.extend(b"9 1<<<<<<<< ");
        let decode = |parts: &[&[u8]]| decode_parts(parts).0;
        let whole = decode(&[&wire[..]]);
        assert_eq!(decode(&[&wire[..105], &wire[105..]]), whole);
        assert!(
            matches!(&whole[..], [Frame::Line(_), Frame::Rejected(b, FrameError::NotSyslog)] if b == b"9 1<<<<<<<< "),
            "{whole:?}"
        );
        // At the end of the stream it is a frame.
        assert_eq!(
            decode(&[b"5 <1>ab", b"4 1234"]),
            vec![line(b"<1>ab"), line(b"1234")]
        );
    }

    #[test]
    fn prefixes_that_are_not_frames() {
        for wire in [
            &b"12345678901 <x"[..],
            b"12x",
            b"0 <1>",
            b"99999999 xx",
            b"12",
        ] {
            let mut d = FrameDecoder::new(10);
            d.push(wire);
            d.finish();
            let got = all(&mut d);
            assert!(
                matches!(&got[..], [Frame::Rejected(b, _)] if wire.starts_with(b)),
                "{got:?}"
            );
        }
    }

    proptest! {
        /// No input panics, every frame respects the limit, and every received byte is
        /// accounted for: a line, a rejected frame, or a terminator between frames.
        #[test]
        fn arbitrary_bytes_never_panic_and_end_empty(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8)) {
            let mut d = FrameDecoder::new(32);
            for c in chunks {
                d.push(&c);
                while let Some(f) = d.next_frame() {
                    match f {
                        Frame::Line(l) | Frame::Rejected(l, _) => prop_assert!(l.len() <= 32 || d.mode() == Mode::OctetCounted && l.len() <= 32),
                    }
                }
            }
            d.finish();
            while d.next_frame().is_some() {}
            prop_assert_eq!(d.buffered(), 0);
        }

        /// Where the reads split a stream does not change its frames (frames are taken from
        /// the middle of the buffer, which is compacted only when more bytes arrive).
        #[test]
        fn frames_do_not_depend_on_how_reads_split_the_stream(
            wire in proptest::collection::vec(proptest::sample::select(b"<1>09 ab\n\r".to_vec()), 0..300),
            cuts in proptest::collection::vec(0usize..300, 0..12),
        ) {
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(wire.len())).collect();
            cuts.sort_unstable();
            let mut parts = Vec::new();
            let mut from = 0;
            for c in cuts {
                parts.push(&wire[from..c]);
                from = c;
            }
            parts.push(&wire[from..]);
            prop_assert_eq!(decode_parts(&parts), decode_parts(&[&wire[..]]));
        }
    }
}
