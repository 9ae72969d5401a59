//! HTTP/1 request framing followed on the bytes a connection reads, to find the
//! requests that carry both `Content-Length` and `Transfer-Encoding`.
//!
//! Such a request is how request smuggling starts: a proxy in front trusts one
//! header, the server the other, and the rest of the body becomes a request of
//! its own. hyper frames it by `Transfer-Encoding` and closes the connection after
//! it (RFC 9112 §6.3 allows that), but removes `Content-Length` before the
//! service sees the request, so nothing above hyper can tell. Glance's server
//! (eventlet) refuses it with a 400. So this follows each request head and body
//! the way hyper frames them, with the parser hyper uses (httparse), and records
//! which request on the connection had both headers; the server refuses that one.
//!
//! Whatever it cannot follow (HTTP/2, a head or chunk hyper would refuse) stops
//! the tracking, which then never marks a request: hyper closes such connections
//! itself, and a head with both headers is the last one hyper serves.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// hyper's default limit on the headers of a request.
const MAX_HEADERS: usize = 100;

/// Which request of a connection (counted from 0) had both framing headers.
#[derive(Debug, Default)]
pub struct Conflicts(AtomicU64);

impl Conflicts {
    pub fn is_conflicting(&self, index: u64) -> bool {
        // 0 means none; n means the request at index n - 1.
        self.0.load(Ordering::Acquire) == index + 1
    }

    fn mark(&self, index: u64) {
        self.0.store(index + 1, Ordering::Release);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading a request head.
    Head,
    /// This many body bytes left.
    Length(u64),
    /// Reading a chunk-size line.
    ChunkSize,
    /// This many chunk bytes left, then CRLF.
    ChunkData(u64),
    /// This many bytes of the CRLF after chunk data seen.
    ChunkEnd(usize),
    /// After the last chunk: the last four bytes, and how many trailer bytes.
    Trailers(u32, usize),
    /// Not following any more.
    Off,
}

/// What parsing the buffered bytes of a head or chunk-size line gave.
enum Step {
    More,
    Done {
        len: usize,
        next: State,
        conflict: bool,
    },
    Stop,
}

/// The framing of one connection's requests.
pub struct Framing {
    state: State,
    /// A head or chunk-size line split across reads.
    held: Vec<u8>,
    heads: u64,
    max_held: usize,
    conflicts: Arc<Conflicts>,
}

impl Framing {
    /// `max_held`: the longest head followed (hyper's read buffer; hyper refuses
    /// longer heads itself).
    pub fn new(max_held: usize, conflicts: Arc<Conflicts>) -> Self {
        Framing {
            state: State::Head,
            held: Vec::new(),
            heads: 0,
            max_held,
            conflicts,
        }
    }

    /// Follows the next bytes read from the client.
    pub fn feed(&mut self, mut input: &[u8]) {
        while !input.is_empty() {
            match self.state {
                State::Off => return,
                State::Length(left) | State::ChunkData(left) => {
                    let n = left.min(input.len() as u64);
                    input = &input[n as usize..];
                    self.state = match (self.state, left - n) {
                        (State::Length(_), 0) => State::Head,
                        (State::Length(_), rest) => State::Length(rest),
                        (_, 0) => State::ChunkEnd(0),
                        (_, rest) => State::ChunkData(rest),
                    };
                }
                State::ChunkEnd(seen) => {
                    if input[0] != b"\r\n"[seen] {
                        self.state = State::Off;
                        return;
                    }
                    input = &input[1..];
                    self.state = if seen == 1 {
                        State::ChunkSize
                    } else {
                        State::ChunkEnd(1)
                    };
                }
                State::Trailers(mut window, mut seen) => {
                    let mut used = 0;
                    self.state = State::Off;
                    for &b in input {
                        used += 1;
                        seen += 1;
                        window = (window << 8) | u32::from(b);
                        if window == u32::from_be_bytes(*b"\r\n\r\n") {
                            self.state = State::Head;
                            break;
                        }
                        if seen > self.max_held {
                            return;
                        }
                    }
                    if self.state == State::Off {
                        self.state = State::Trailers(window, seen);
                    }
                    input = &input[used..];
                }
                State::Head | State::ChunkSize => {
                    let before = self.held.len();
                    let step = if before == 0 {
                        parse(self.state, input)
                    } else {
                        self.held.extend_from_slice(input);
                        parse(self.state, &self.held)
                    };
                    match step {
                        Step::More => {
                            if before == 0 {
                                self.held.extend_from_slice(input);
                            }
                            if self.held.len() > self.max_held {
                                self.stop();
                            }
                            return;
                        }
                        Step::Stop => {
                            self.stop();
                            return;
                        }
                        Step::Done {
                            len,
                            next,
                            conflict,
                        } => {
                            // The held bytes did not complete it, so it ends in `input`.
                            input = &input[len - before..];
                            self.held.clear();
                            if self.state == State::Head {
                                if conflict {
                                    self.conflicts.mark(self.heads);
                                }
                                self.heads += 1;
                            }
                            self.state = next;
                        }
                    }
                }
            }
        }
    }

    fn stop(&mut self) {
        self.state = State::Off;
        self.held = Vec::new();
    }
}

fn parse(state: State, bytes: &[u8]) -> Step {
    if state == State::Head {
        return head(bytes);
    }
    match httparse::parse_chunk_size(bytes) {
        Ok(httparse::Status::Partial) => Step::More,
        Ok(httparse::Status::Complete((len, 0))) => Step::Done {
            len,
            // As if the CRLF ending the size line were the first of "\r\n\r\n".
            next: State::Trailers(u32::from_be_bytes(*b"\0\0\r\n"), 0),
            conflict: false,
        },
        Ok(httparse::Status::Complete((len, size))) => Step::Done {
            len,
            next: State::ChunkData(size),
            conflict: false,
        },
        Err(_) => Step::Stop,
    }
}

/// A request head: how its body is framed, as hyper decides it.
fn head(bytes: &[u8]) -> Step {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Step::More,
        Err(_) => return Step::Stop,
    };
    let mut transfer_encoding = false;
    let mut chunked = false;
    let mut content_length = false;
    let mut length: Option<u64> = None;
    let mut bad_length = false;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encoding = true;
            // hyper: chunked must be the last coding of the last such header.
            chunked = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.rsplit(',').next())
                .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
        } else if h.name.eq_ignore_ascii_case("content-length") {
            content_length = true;
            match (digits(h.value), length) {
                (Some(n), None) => length = Some(n),
                (Some(n), Some(m)) if n == m => {}
                _ => bad_length = true,
            }
        }
    }
    let next = if transfer_encoding && content_length {
        return Step::Done {
            len,
            next: State::Off,
            conflict: true,
        };
    } else if transfer_encoding {
        // hyper refuses Transfer-Encoding in HTTP/1.0, and any but chunked last.
        if req.version == Some(1) && chunked {
            State::ChunkSize
        } else {
            State::Off
        }
    } else if bad_length {
        State::Off
    } else {
        match length {
            None | Some(0) => State::Head,
            Some(n) => State::Length(n),
        }
    };
    Step::Done {
        len,
        next,
        conflict: false,
    }
}

/// A `Content-Length` value as hyper reads it: decimal digits only.
fn digits(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    value.iter().try_fold(0u64, |n, &b| {
        if b.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

pin_project_lite::pin_project! {
    /// A connection's stream, with its requests' framing followed as hyper reads it.
    pub struct Followed<T> {
        #[pin]
        io: T,
        framing: Framing,
    }
}

impl<T> Followed<T> {
    pub fn new(io: T, framing: Framing) -> Self {
        Followed { io, framing }
    }
}

impl<T: AsyncRead> AsyncRead for Followed<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let res = this.io.poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = res {
            this.framing.feed(&buf.filled()[before..]);
        }
        res
    }
}

impl<T: AsyncWrite> AsyncWrite for Followed<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.project().io.poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().io.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `stream` in pieces of every size from 1 up, and returns the marked
    /// request (if any) and the number of heads followed, which must agree.
    fn follow(stream: &[u8]) -> (Option<u64>, u64) {
        let mut seen = None;
        for piece in 1..=stream.len() {
            let conflicts = Arc::new(Conflicts::default());
            let mut f = Framing::new(4096, conflicts.clone());
            for chunk in stream.chunks(piece) {
                f.feed(chunk);
            }
            let marked = (0..16).find(|i| conflicts.is_conflicting(*i));
            let got = (marked, f.heads);
            assert!(
                seen.is_none_or(|s| s == got),
                "piece {piece}: {got:?} vs {seen:?}"
            );
            seen = Some(got);
        }
        seen.unwrap()
    }

    const GET: &[u8] = b"GET /v2/images HTTP/1.1\r\nHost: x\r\n\r\n";
    const BOTH: &[u8] =
        b"POST /v2/images HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";

    #[test]
    fn the_request_with_both_headers_is_marked_by_its_position() {
        assert_eq!(follow(BOTH), (Some(0), 1));
        let te_first =
            b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\ncontent-length: 4\r\n\r\n";
        assert_eq!(follow(te_first), (Some(0), 1));
        let third = [GET, GET, BOTH].concat();
        assert_eq!(follow(&third), (Some(2), 3));
    }

    #[test]
    fn bodies_that_look_like_requests_are_skipped() {
        // A length-framed body and a chunked one, each holding a request with both
        // headers, then a plain request: nothing is marked.
        let mut s =
            format!("PUT /f HTTP/1.1\r\nContent-Length: {}\r\n\r\n", BOTH.len()).into_bytes();
        s.extend_from_slice(BOTH);
        s.extend_from_slice(b"PUT /f HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
        s.extend_from_slice(format!("{:x};ext=1\r\n", BOTH.len()).as_bytes());
        s.extend_from_slice(BOTH);
        s.extend_from_slice(b"\r\n3\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\n");
        s.extend_from_slice(GET);
        assert_eq!(follow(&s), (None, 3));
        // Leading empty lines before a head are skipped, as hyper does.
        let mut t = b"\r\n".to_vec();
        t.extend_from_slice(GET);
        t.extend_from_slice(BOTH);
        assert_eq!(follow(&t), (Some(1), 2));
    }

    #[test]
    fn what_hyper_refuses_stops_the_tracking() {
        // HTTP/2's preface, a malformed head, a non-chunked coding, a bad length
        // and a bad chunk: no later head is followed, so none is marked.
        for start in [
            &b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
            b"PUT / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"PUT / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"PUT / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"PUT / HTTP/1.1\r\nContent-Length: +1\r\n\r\n",
            b"PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\naXX",
        ] {
            let s = [start, BOTH].concat();
            assert_eq!(follow(&s).0, None, "{}", String::from_utf8_lossy(start));
        }
    }

    #[test]
    fn a_head_longer_than_the_limit_stops_the_tracking() {
        let conflicts = Arc::new(Conflicts::default());
        let mut f = Framing::new(64, conflicts.clone());
        f.feed(b"GET / HTTP/1.1\r\nX: ");
        f.feed(&[b'a'; 100]);
        f.feed(b"\r\n\r\n");
        f.feed(BOTH);
        assert!(!conflicts.is_conflicting(0) && !conflicts.is_conflicting(1));
        assert!(f.held.is_empty());
    }

    #[test]
    fn content_length_digits() {
        assert_eq!(digits(b"0"), Some(0));
        assert_eq!(digits(b"18446744073709551615"), Some(u64::MAX));
        for bad in [&b""[..], b"-1", b"1 ", b"1,1", b"18446744073709551616"] {
            assert_eq!(digits(bad), None);
        }
    }
}
