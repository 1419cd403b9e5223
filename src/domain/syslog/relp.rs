//! RELP, the Reliable Event Logging Protocol of rsyslog's `omrelp`/`imrelp` (librelp), server
//! side: a pure frame decoder and the responses. No crate implements RELP (crates.io's `relp`
//! is a linear-programming solver), so this is a small hand-written parser of the one frame
//! grammar of the protocol:
//!
//! ```text
//! FRAME   = TXNR SP COMMAND SP DATALEN [SP DATA] TRAILER
//! TXNR    = 1*9DIGIT          ; 0 only in server-initiated frames (serverclose)
//! COMMAND = 1*32ALPHA         ; open, syslog, close (rsp and serverclose go to the client)
//! DATALEN = 1*9DIGIT          ; bytes of DATA; 0 = no DATA (and no SP before the trailer)
//! TRAILER = LF
//! ```
//!
//! The client numbers its frames; the server answers each with `TXNR rsp DATALEN 200 OK`
//! (for `syslog`: once the message is durably stored). A client that loses its connection
//! resends every frame not answered. A header that breaks the grammar cannot be resynchronised
//! (the protocol has no frame delimiter to search for): the decoder reports it once and stops;
//! the caller sends `serverclose` and closes, and the client resends on a new connection.
//! DATA larger than the limit is not buffered whole: its first `max_data` bytes are kept and
//! the frame is marked oversize (the caller quarantines it, and acknowledges it, so a sender
//! does not resend it forever).

use thiserror::Error;

/// Longest TXNR and DATALEN (digits).
const MAX_DIGITS: usize = 9;
/// Longest COMMAND.
const MAX_COMMAND: usize = 32;

/// Why a RELP stream cannot be decoded further.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RelpError {
    /// TXNR or DATALEN missing, too long, or not digits.
    #[error("bad RELP {0} field")]
    BadNumber(&'static str),
    /// COMMAND missing, too long, or not letters.
    #[error("bad RELP command")]
    BadCommand,
    /// The byte after a frame's DATA is not LF.
    #[error("RELP frame {txnr} is not followed by its LF trailer")]
    MissingTrailer {
        /// Frame number.
        txnr: u64,
    },
    /// The stream ended inside a frame.
    #[error("stream ended inside a RELP frame ({0} bytes buffered)")]
    Truncated(usize),
}

/// A command a client sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Session start with the client's offers.
    Open,
    /// One syslog message.
    Syslog,
    /// Orderly session end.
    Close,
    /// Anything else (answered `500`).
    Other(String),
}

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelpFrame {
    /// Transaction number (echoed in the response).
    pub txnr: u64,
    /// Command.
    pub command: Command,
    /// DATA (at most `max_data` bytes of it).
    pub data: Vec<u8>,
    /// The announced DATALEN when it exceeded `max_data` (only the head is in `data`).
    pub oversize: Option<usize>,
}

impl RelpFrame {
    /// The DATA of a `syslog` frame as a syslog line: one trailing LF (and CR) removed, as
    /// rsyslog's own receiver drops it.
    pub fn message(&self) -> &[u8] {
        let mut d = &self.data[..];
        if let Some(x) = d.strip_suffix(b"\n") {
            d = x;
        }
        if let Some(x) = d.strip_suffix(b"\r") {
            d = x;
        }
        d
    }
}

/// Header fields of the frame being read.
#[derive(Debug, Clone)]
struct Header {
    txnr: u64,
    command: Command,
    len: usize,
}

/// Decoder state.
#[derive(Debug, Clone)]
enum State {
    /// Waiting for (the rest of) a header.
    Header,
    /// Reading DATA: the header, bytes still to read, bytes kept so far.
    Data(Header, usize, Vec<u8>),
    /// DATA read: expecting the trailer.
    Trailer(Header, Vec<u8>),
    /// A grammar error was reported; nothing more is decoded.
    Failed,
}

/// Incremental RELP frame decoder over pushed bytes.
#[derive(Debug, Clone)]
pub struct RelpDecoder {
    buf: Vec<u8>,
    state: State,
    max_data: usize,
    eof: bool,
}

/// What parsing the buffered header found.
enum HeaderParse {
    More,
    Done(Header, usize),
    Bad(RelpError),
}

fn number(field: &[u8], what: &'static str) -> Result<u64, RelpError> {
    if field.is_empty() || field.len() > MAX_DIGITS || !field.iter().all(u8::is_ascii_digit) {
        return Err(RelpError::BadNumber(what));
    }
    std::str::from_utf8(field)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(RelpError::BadNumber(what))
}

/// Parse `TXNR SP COMMAND SP DATALEN (SP | LF)` at the start of `b`; the returned offset is
/// where DATA starts (after the SP), or where the LF trailer is when DATALEN is 0 and LF
/// follows directly.
fn parse_header(b: &[u8]) -> HeaderParse {
    // TXNR
    let Some(sp1) = b.iter().take(MAX_DIGITS + 1).position(|&c| c == b' ') else {
        return if b.len() > MAX_DIGITS || !b.iter().all(u8::is_ascii_digit) {
            HeaderParse::Bad(RelpError::BadNumber("TXNR"))
        } else {
            HeaderParse::More
        };
    };
    let txnr = match number(&b[..sp1], "TXNR") {
        Ok(n) => n,
        Err(e) => return HeaderParse::Bad(e),
    };
    // COMMAND
    let rest = &b[sp1 + 1..];
    let Some(sp2) = rest.iter().take(MAX_COMMAND + 1).position(|&c| c == b' ') else {
        return if rest.len() > MAX_COMMAND || !rest.iter().all(u8::is_ascii_alphabetic) {
            HeaderParse::Bad(RelpError::BadCommand)
        } else {
            HeaderParse::More
        };
    };
    let cmd = &rest[..sp2];
    if cmd.is_empty() || !cmd.iter().all(u8::is_ascii_alphabetic) {
        return HeaderParse::Bad(RelpError::BadCommand);
    }
    let command = match cmd {
        b"open" => Command::Open,
        b"syslog" => Command::Syslog,
        b"close" => Command::Close,
        other => Command::Other(String::from_utf8_lossy(other).into_owned()),
    };
    // DATALEN, then SP (DATA follows) or LF (no DATA)
    let rest = &rest[sp2 + 1..];
    let Some(end) = rest
        .iter()
        .take(MAX_DIGITS + 1)
        .position(|&c| c == b' ' || c == b'\n')
    else {
        return if rest.len() > MAX_DIGITS || !rest.iter().all(u8::is_ascii_digit) {
            HeaderParse::Bad(RelpError::BadNumber("DATALEN"))
        } else {
            HeaderParse::More
        };
    };
    let len = match number(&rest[..end], "DATALEN") {
        Ok(n) => n as usize,
        Err(e) => return HeaderParse::Bad(e),
    };
    let consumed = sp1 + 1 + sp2 + 1 + end;
    let header = Header { txnr, command, len };
    if rest[end] == b'\n' {
        if len != 0 {
            return HeaderParse::Bad(RelpError::BadNumber("DATALEN"));
        }
        // the LF is the trailer: leave it for the trailer state
        HeaderParse::Done(header, consumed)
    } else {
        HeaderParse::Done(header, consumed + 1)
    }
}

impl RelpDecoder {
    /// A decoder keeping at most `max_data` bytes of a frame's DATA.
    pub fn new(max_data: usize) -> Self {
        RelpDecoder {
            buf: Vec::new(),
            state: State::Header,
            max_data: max_data.max(1),
            eof: false,
        }
    }

    /// Append received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The stream ended: a frame cut short is reported by [`RelpDecoder::next_frame`].
    pub fn finish(&mut self) {
        self.eof = true;
    }

    /// Whether a grammar error ended decoding.
    pub fn failed(&self) -> bool {
        matches!(self.state, State::Failed)
    }

    /// The next complete frame, `None` when more bytes are needed (or the stream ended
    /// cleanly between frames), or the error that ends the stream (reported once).
    pub fn next_frame(&mut self) -> Option<Result<RelpFrame, RelpError>> {
        loop {
            match std::mem::replace(&mut self.state, State::Failed) {
                State::Failed => return None,
                State::Header => match parse_header(&self.buf) {
                    HeaderParse::More => {
                        self.state = State::Header;
                        if self.eof && !self.buf.is_empty() {
                            self.state = State::Failed;
                            return Some(Err(RelpError::Truncated(self.buf.len())));
                        }
                        return None;
                    }
                    HeaderParse::Bad(e) => return Some(Err(e)),
                    HeaderParse::Done(h, used) => {
                        self.buf.drain(..used);
                        let keep = Vec::with_capacity(h.len.min(self.max_data));
                        let len = h.len;
                        self.state = State::Data(h, len, keep);
                    }
                },
                State::Data(h, left, mut kept) => {
                    let take = left.min(self.buf.len());
                    let room = self.max_data.saturating_sub(kept.len()).min(take);
                    kept.extend_from_slice(&self.buf[..room]);
                    self.buf.drain(..take);
                    let left = left - take;
                    if left > 0 {
                        let got = h.len - left;
                        self.state = State::Data(h, left, kept);
                        if self.eof {
                            self.state = State::Failed;
                            return Some(Err(RelpError::Truncated(got)));
                        }
                        return None;
                    }
                    self.state = State::Trailer(h, kept);
                }
                State::Trailer(h, kept) => match self.buf.first() {
                    None => {
                        let eof = self.eof;
                        let got = h.len;
                        self.state = State::Trailer(h, kept);
                        if eof {
                            self.state = State::Failed;
                            return Some(Err(RelpError::Truncated(got)));
                        }
                        return None;
                    }
                    Some(b'\n') => {
                        self.buf.drain(..1);
                        self.state = State::Header;
                        let oversize = (h.len > self.max_data).then_some(h.len);
                        return Some(Ok(RelpFrame {
                            txnr: h.txnr,
                            command: h.command,
                            data: kept,
                            oversize,
                        }));
                    }
                    Some(_) => return Some(Err(RelpError::MissingTrailer { txnr: h.txnr })),
                },
            }
        }
    }
}

/// Software name announced in the `open` response.
pub const SOFTWARE: &str = "decnetd";

/// A response frame: `TXNR rsp DATALEN [SP DATA] LF`.
pub fn rsp(txnr: u64, data: &[u8]) -> Vec<u8> {
    let mut out = format!("{txnr} rsp {}", data.len()).into_bytes();
    if !data.is_empty() {
        out.push(b' ');
        out.extend_from_slice(data);
    }
    out.push(b'\n');
    out
}

/// The acknowledgement of a stored message (`200 OK`).
pub fn ok(txnr: u64) -> Vec<u8> {
    rsp(txnr, b"200 OK")
}

/// A refusal (`500 <reason>`).
pub fn error(txnr: u64, reason: &str) -> Vec<u8> {
    rsp(txnr, format!("500 {reason}").as_bytes())
}

/// The response to `open`: `200 OK` and the server's offers (protocol version 0, the `syslog`
/// command).
pub fn open_ok(txnr: u64) -> Vec<u8> {
    rsp(
        txnr,
        format!("200 OK\nrelp_version=0\nrelp_software={SOFTWARE}\ncommands=syslog").as_bytes(),
    )
}

/// Whether the client's `open` offers include the `syslog` command (`commands=` lists them,
/// comma-separated; a client that lists none is taken to mean syslog).
pub fn offers_syslog(open_data: &[u8]) -> bool {
    let text = String::from_utf8_lossy(open_data);
    let mut listed = None;
    for line in text.split('\n') {
        if let Some(v) = line.trim_end_matches('\r').strip_prefix("commands=") {
            listed = Some(v.split(',').any(|c| c.trim() == "syslog"));
        }
    }
    listed.unwrap_or(true)
}

/// The frame a server sends before closing a session on its own (`0 serverclose 0`).
pub const SERVERCLOSE: &[u8] = b"0 serverclose 0\n";

#[cfg(test)]
mod tests {
    use super::*;

    fn all(d: &mut RelpDecoder) -> Vec<Result<RelpFrame, RelpError>> {
        std::iter::from_fn(|| d.next_frame()).collect()
    }

    fn frame(txnr: u64, command: Command, data: &[u8]) -> RelpFrame {
        RelpFrame {
            txnr,
            command,
            data: data.to_vec(),
            oversize: None,
        }
    }

    const SESSION: &[u8] = b"1 open 86 relp_version=0\nrelp_software=librelp,1.11.0,http://librelp.adiscon.com\ncommands=syslog\n2 syslog 11 <13>1 hello\n3 syslog 3 abc\n4 close 0\n";

    #[test]
    fn a_librelp_session_decodes() {
        let mut d = RelpDecoder::new(1024);
        d.push(SESSION);
        let got = all(&mut d);
        assert_eq!(got.len(), 4, "{got:?}");
        let open = got[0].as_ref().unwrap();
        assert_eq!(open.command, Command::Open);
        assert!(offers_syslog(&open.data));
        assert_eq!(got[1], Ok(frame(2, Command::Syslog, b"<13>1 hello")));
        assert_eq!(got[2], Ok(frame(3, Command::Syslog, b"abc")));
        assert_eq!(got[3], Ok(frame(4, Command::Close, b"")));
        d.finish();
        assert_eq!(d.next_frame(), None);
    }

    #[test]
    fn byte_by_byte_gives_the_same_frames() {
        let mut whole = RelpDecoder::new(1024);
        whole.push(SESSION);
        let want = all(&mut whole);
        let mut d = RelpDecoder::new(1024);
        let mut got = Vec::new();
        for b in SESSION {
            d.push(&[*b]);
            got.extend(all(&mut d));
        }
        assert_eq!(got, want);
    }

    #[test]
    fn data_may_hold_newlines_and_any_byte() {
        let mut d = RelpDecoder::new(1024);
        d.push(b"7 syslog 5 a\n\0\xff\n\n8 syslog 1 x\n");
        assert_eq!(
            all(&mut d),
            vec![
                Ok(frame(7, Command::Syslog, b"a\n\0\xff\n")),
                Ok(frame(8, Command::Syslog, b"x")),
            ]
        );
    }

    #[test]
    fn message_drops_one_trailing_newline() {
        assert_eq!(frame(1, Command::Syslog, b"abc\n").message(), b"abc");
        assert_eq!(frame(1, Command::Syslog, b"abc\r\n").message(), b"abc");
        assert_eq!(frame(1, Command::Syslog, b"abc\n\n").message(), b"abc\n");
        assert_eq!(frame(1, Command::Syslog, b"").message(), b"");
    }

    #[test]
    fn oversize_data_keeps_its_head_and_the_stream_goes_on() {
        let mut d = RelpDecoder::new(4);
        d.push(b"5 syslog 10 0123456789\n6 syslog 2 ok\n");
        let got = all(&mut d);
        assert_eq!(
            got[0],
            Ok(RelpFrame {
                txnr: 5,
                command: Command::Syslog,
                data: b"0123".to_vec(),
                oversize: Some(10),
            })
        );
        assert_eq!(got[1], Ok(frame(6, Command::Syslog, b"ok")));
    }

    #[test]
    fn grammar_errors_end_the_stream_once() {
        for bad in [
            &b"x syslog 1 a\n"[..],
            b"1234567890 syslog 1 a\n",
            b"1 sys1og 1 a\n",
            b"1 syslog x a\n",
            b"1 syslog 3\n",
            b"1 syslog 1 ab\n",
            b"1 aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa 1 a\n",
            b" 1 syslog 1 a\n",
        ] {
            let mut d = RelpDecoder::new(1024);
            d.push(bad);
            let got = all(&mut d);
            assert_eq!(got.len(), 1, "{:?}: {got:?}", String::from_utf8_lossy(bad));
            assert!(got[0].is_err(), "{:?}", String::from_utf8_lossy(bad));
            assert!(d.failed());
            d.push(b"2 syslog 1 a\n");
            assert_eq!(d.next_frame(), None);
        }
    }

    #[test]
    fn a_frame_cut_short_is_reported_at_the_end() {
        for cut in [&b"1 sys"[..], b"1 syslog 5 ab", b"1 syslog 2 ab"] {
            let mut d = RelpDecoder::new(1024);
            d.push(cut);
            assert_eq!(d.next_frame(), None);
            d.finish();
            assert!(
                matches!(d.next_frame(), Some(Err(RelpError::Truncated(_)))),
                "{cut:?}"
            );
        }
    }

    #[test]
    fn responses_follow_the_grammar() {
        assert_eq!(ok(42), b"42 rsp 6 200 OK\n");
        assert_eq!(rsp(3, b""), b"3 rsp 0\n");
        assert_eq!(error(9, "nope"), b"9 rsp 8 500 nope\n");
        // our own decoder reads what we send (rsp is an "other" command to it)
        let mut d = RelpDecoder::new(1024);
        d.push(&open_ok(1));
        let f = d.next_frame().unwrap().unwrap();
        assert_eq!(f.command, Command::Other("rsp".into()));
        assert!(f.data.starts_with(b"200 OK\n"));
        assert!(offers_syslog(&f.data));
        d.push(SERVERCLOSE);
        let f = d.next_frame().unwrap().unwrap();
        assert_eq!(
            (f.txnr, f.command),
            (0, Command::Other("serverclose".into()))
        );
    }

    #[test]
    fn offers_without_syslog_are_seen() {
        assert!(!offers_syslog(b"relp_version=0\ncommands=other"));
        assert!(offers_syslog(b"relp_version=0\ncommands=foo,syslog"));
        assert!(offers_syslog(b"relp_version=0"));
    }
}
