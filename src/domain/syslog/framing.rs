//! Syslog-over-TCP framing (RFC 6587 / RFC 5425): octet-counted frames
//! (`<len> SP <bytes>`, length ≤ 10 digits) and newline-terminated frames,
//! decided per frame by its first byte. Pure state machine over pushed bytes.

use thiserror::Error;

/// Why the connection must be closed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    /// More than 10 digits, a non-digit before the space, or a zero length.
    #[error("bad octet-count length prefix")]
    BadLength,
    /// A frame larger than the configured maximum.
    #[error("frame of {len} bytes exceeds the {max}-byte limit")]
    Oversize {
        /// Announced or accumulated length.
        len: usize,
        /// Limit.
        max: usize,
    },
}

/// Incremental decoder; feed bytes with [`push`](Self::push), take frames with
/// [`next_frame`](Self::next_frame).
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    max: usize,
}

impl FrameDecoder {
    /// Decoder accepting frames up to `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        Self {
            buf: Vec::new(),
            max: max_frame.max(1),
        }
    }

    /// Append received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes buffered but not yet framed.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next complete frame, `Ok(None)` when more bytes are needed, or an error after
    /// which the connection must be closed.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        // Skip stray line terminators between frames.
        let skip = self
            .buf
            .iter()
            .take_while(|b| matches!(b, b'\n' | b'\r'))
            .count();
        if skip > 0 {
            self.buf.drain(..skip);
        }
        let Some(&first) = self.buf.first() else {
            return Ok(None);
        };
        if first.is_ascii_digit() {
            let digits = self.buf.iter().take_while(|b| b.is_ascii_digit()).count();
            if digits > 10 {
                return Err(FrameError::BadLength);
            }
            let Some(&sep) = self.buf.get(digits) else {
                return Ok(None);
            };
            if sep != b' ' {
                return Err(FrameError::BadLength);
            }
            let len: usize = std::str::from_utf8(&self.buf[..digits])
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or(FrameError::BadLength)?;
            if len == 0 {
                return Err(FrameError::BadLength);
            }
            if len > self.max {
                return Err(FrameError::Oversize { len, max: self.max });
            }
            let start = digits + 1;
            if self.buf.len() < start + len {
                return Ok(None);
            }
            let frame = self.buf[start..start + len].to_vec();
            self.buf.drain(..start + len);
            return Ok(Some(trim_eol(frame)));
        }
        match self.buf.iter().position(|&b| b == b'\n') {
            Some(i) => {
                if i > self.max {
                    return Err(FrameError::Oversize {
                        len: i,
                        max: self.max,
                    });
                }
                let frame = self.buf[..i].to_vec();
                self.buf.drain(..=i);
                Ok(Some(trim_eol(frame)))
            }
            None if self.buf.len() > self.max => Err(FrameError::Oversize {
                len: self.buf.len(),
                max: self.max,
            }),
            None => Ok(None),
        }
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

    fn all(d: &mut FrameDecoder) -> Result<Vec<Vec<u8>>, FrameError> {
        let mut out = Vec::new();
        while let Some(f) = d.next_frame()? {
            out.push(f);
        }
        Ok(out)
    }

    #[test]
    fn octet_counted_and_newline_frames_mix() {
        let mut d = FrameDecoder::new(100);
        d.push(b"5 <1>1 3 abc<13>1 line two\n<14>1 par");
        assert_eq!(
            all(&mut d).unwrap(),
            vec![
                b"<1>1 ".to_vec(),
                b"abc".to_vec(),
                b"<13>1 line two".to_vec()
            ]
        );
        d.push(b"tial\r\n");
        assert_eq!(all(&mut d).unwrap(), vec![b"<14>1 partial".to_vec()]);
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn split_anywhere() {
        let wire = b"11 hello world12 second frame";
        for cut in 0..wire.len() {
            let mut d = FrameDecoder::new(64);
            d.push(&wire[..cut]);
            let mut got = all(&mut d).unwrap();
            d.push(&wire[cut..]);
            got.extend(all(&mut d).unwrap());
            assert_eq!(
                got,
                vec![b"hello world".to_vec(), b"second frame".to_vec()],
                "cut {cut}"
            );
        }
    }

    #[test]
    fn bad_prefix_and_oversize() {
        let mut d = FrameDecoder::new(10);
        d.push(b"12345678901 x");
        assert_eq!(d.next_frame(), Err(FrameError::BadLength));
        let mut d = FrameDecoder::new(10);
        d.push(b"12x");
        assert_eq!(d.next_frame(), Err(FrameError::BadLength));
        let mut d = FrameDecoder::new(10);
        d.push(b"0 ");
        assert_eq!(d.next_frame(), Err(FrameError::BadLength));
        let mut d = FrameDecoder::new(10);
        d.push(b"11 ");
        assert_eq!(
            d.next_frame(),
            Err(FrameError::Oversize { len: 11, max: 10 })
        );
        let mut d = FrameDecoder::new(10);
        d.push(b"<13>1 this is way too long without newline");
        assert!(matches!(d.next_frame(), Err(FrameError::Oversize { .. })));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8)) {
            let mut d = FrameDecoder::new(32);
            for c in chunks {
                d.push(&c);
                while let Ok(Some(f)) = d.next_frame() {
                    prop_assert!(f.len() <= 32);
                }
            }
        }
    }
}
