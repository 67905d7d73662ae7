//! The HTTP/1.1 sender of webhook deliveries: one kept-alive connection per destination, over
//! which a batch of deliveries is written at once (pipelined) and their answers are read back in
//! order.
//!
//! A general client costs a round trip, a handful of task wake-ups and a system call or two per
//! request; a destination that takes thousands of events a second then falls behind and its queue
//! overflows. Here a batch costs one write and usually one read, whatever its size. Only what a
//! delivery needs is spoken: a `POST` with a `Content-Length`, answers with a length, chunked or
//! read to the connection's end, `Connection: close` and HTTP/1.0 honoured.

use std::io;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;

/// Where a destination's requests go, read from its URL once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Address {
    /// `host:port`, to connect to.
    connect: String,
    /// The `Host` header.
    host: String,
    /// The request target: path and query.
    path: String,
}

impl Address {
    /// The address of `url`, or why nothing can be sent there.
    pub(super) fn parse(url: &str) -> Result<Address, String> {
        let uri: hyper::Uri = url
            .parse()
            .map_err(|_| "not an absolute URL with a host".to_string())?;
        match uri.scheme_str() {
            Some(s) if s.eq_ignore_ascii_case("http") => {}
            Some(s) if s.eq_ignore_ascii_case("https") => {
                return Err("https is not supported by the emulator's sender; use an http:// address for a local receiver".into());
            }
            _ => return Err("only http URLs can receive deliveries".into()),
        }
        let authority = uri
            .authority()
            .filter(|a| !a.host().is_empty())
            .ok_or_else(|| "not an absolute URL with a host".to_string())?;
        let host = match authority.port() {
            Some(port) => format!("{}:{port}", authority.host()),
            None => authority.host().to_string(),
        };
        let path = uri
            .path_and_query()
            .map(|p| p.as_str())
            .filter(|p| !p.is_empty())
            .unwrap_or("/");
        Ok(Address {
            connect: format!(
                "{}:{}",
                authority.host(),
                authority.port_u16().unwrap_or(80)
            ),
            host,
            path: path.to_string(),
        })
    }

    /// Appends one request's head (request line and headers, the signature's value written by
    /// `sign`) and its body to `out`.
    pub(super) fn write_request(
        &self,
        out: &mut Vec<u8>,
        body: &[u8],
        sign: impl FnOnce(&mut Vec<u8>),
    ) {
        out.extend_from_slice(b"POST ");
        out.extend_from_slice(self.path.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
        out.extend_from_slice(self.host.as_bytes());
        out.extend_from_slice(b"\r\nContent-Type: application/json; charset=utf-8\r\nUser-Agent: ");
        out.extend_from_slice(super::USER_AGENT.as_bytes());
        out.extend_from_slice(b"\r\nAccept: */*\r\nStripe-Signature: ");
        sign(out);
        out.extend_from_slice(b"\r\nContent-Length: ");
        out.extend_from_slice(body.len().to_string().as_bytes());
        out.extend_from_slice(b"\r\n\r\n");
        out.extend_from_slice(body);
    }
}

/// What became of one request of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Outcome {
    /// It was answered with this status.
    Answered(u16),
    /// It got no answer, and why: the first unanswered request of a batch carries the failure.
    Failed(String),
    /// It got no answer through no fault of its own (an earlier request failed, or the server
    /// closed the connection after an answer that said it would): to be sent again, without
    /// counting as an attempt.
    Unsent,
}

/// How a batch's exchange ended, when every answer it waited for was read or the server said it
/// would close.
enum End {
    /// Every request was answered and the connection stays open.
    Open,
    /// The last answer read said the connection closes after it.
    Closing,
}

/// One destination's sender: its address and its kept-alive connection, if one is open.
#[derive(Debug)]
pub(super) struct Sender {
    address: Result<Address, String>,
    conn: Option<Connection>,
    /// Whether the destination's last batch was answered in full, every answer a success, on a
    /// connection it kept open: only then are several requests sent at once. A new destination, or
    /// one that failed or closes its connections, gets one request at a time.
    pub(super) pipelining: bool,
}

/// An open connection and what was read past the last answer.
#[derive(Debug)]
struct Connection {
    stream: TcpStream,
    input: Input,
    /// When its last exchange ended: a connection idle for longer than [`IDLE`] is not reused, as
    /// the server may be closing it just as a request arrives.
    idle_since: Instant,
}

/// How long a connection may stay idle and still be reused (under the five seconds after which
/// common servers, Node's among them, close an idle connection).
pub(super) const IDLE: Duration = Duration::from_secs(4);

impl Sender {
    /// A sender to `address`, or to nowhere (every request failing with the reason).
    pub(super) fn new(address: Result<Address, String>) -> Self {
        Sender {
            address,
            conn: None,
            pipelining: false,
        }
    }

    /// The destination's address.
    pub(super) fn address(&self) -> Result<&Address, &str> {
        self.address.as_ref().map_err(String::as_str)
    }

    /// Sends `count` requests, written one after the other in `out`, over the kept connection (or
    /// a new one), and reads their answers, all within `timeout`. One outcome per request, in
    /// order.
    pub(super) async fn send(
        &mut self,
        out: &[u8],
        count: usize,
        timeout: Duration,
    ) -> Vec<Outcome> {
        let mut codes: Vec<u16> = Vec::with_capacity(count);
        let deadline = Instant::now() + timeout;
        let mut ending: Option<Outcome> = None;
        // A reused connection the server has closed meanwhile answers nothing: the batch goes
        // again, once, on a new one.
        for fresh_retry in [false, true] {
            let Ok(address) = &self.address else {
                break;
            };
            let address = address.clone();
            if self
                .conn
                .as_ref()
                .is_some_and(|c| c.idle_since.elapsed() > IDLE)
            {
                self.conn = None;
            }
            let reused = self.conn.is_some();
            codes.clear();
            let result =
                tokio::time::timeout_at(deadline, self.exchange(&address, out, count, &mut codes))
                    .await;
            match result {
                Ok(Ok(End::Open)) => {
                    if let Some(c) = &mut self.conn {
                        c.idle_since = Instant::now();
                    }
                }
                Ok(Ok(End::Closing)) => {
                    self.conn = None;
                    ending = Some(Outcome::Unsent);
                }
                Ok(Err(e)) => {
                    self.conn = None;
                    if reused && codes.is_empty() && !fresh_retry {
                        continue;
                    }
                    ending = Some(Outcome::Failed(format!("connection failed: {e}")));
                }
                Err(_) => {
                    self.conn = None;
                    ending = Some(Outcome::Failed(format!(
                        "timed out after {} s",
                        timeout.as_secs_f64()
                    )));
                }
            }
            break;
        }
        if let Err(e) = &self.address {
            ending = Some(Outcome::Failed(e.clone()));
        }
        let all_ok = codes.len() == count && codes.iter().all(|c| (200..300).contains(c));
        self.pipelining = all_ok && self.conn.is_some();
        let mut outcomes: Vec<Outcome> = codes.into_iter().map(Outcome::Answered).collect();
        if outcomes.len() < count {
            outcomes.push(ending.unwrap_or(Outcome::Unsent));
        }
        outcomes.resize(count, Outcome::Unsent);
        outcomes
    }

    /// Writes `out` and reads `count` answers into `codes`, connecting first if need be.
    async fn exchange(
        &mut self,
        address: &Address,
        out: &[u8],
        count: usize,
        codes: &mut Vec<u16>,
    ) -> io::Result<End> {
        let conn = match &mut self.conn {
            Some(c) => c,
            None => {
                let stream = TcpStream::connect(address.connect.as_str()).await?;
                // Requests go out whole, in one write: nothing is gained by waiting to fill a
                // segment.
                stream.set_nodelay(true)?;
                self.conn.insert(Connection {
                    stream,
                    input: Input::default(),
                    idle_since: Instant::now(),
                })
            }
        };
        let Connection { stream, input, .. } = conn;
        let stream: &TcpStream = stream;
        // Answers are read while the batch is still being written, so that a server that answers
        // each request before reading the next never waits on a full socket.
        let write = write_all(stream, out);
        let read = read_answers(stream, input, count, codes);
        tokio::pin!(write, read);
        let mut writing = true;
        loop {
            tokio::select! {
                biased;
                r = &mut read => return r,
                w = &mut write, if writing => {
                    w?;
                    writing = false;
                }
            }
        }
    }
}

/// Writes all of `out` to `stream`.
async fn write_all(stream: &TcpStream, mut out: &[u8]) -> io::Result<()> {
    while !out.is_empty() {
        stream.writable().await?;
        match stream.try_write(out) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => out = &out[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The most an answer's head (status line and headers), or a chunk-size line, may take.
const INPUT: usize = 16 * 1024;

/// What was read from a connection and not yet taken: `buf[start..end]`.
#[derive(Debug)]
struct Input {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
}

impl Default for Input {
    fn default() -> Self {
        Input {
            buf: vec![0; INPUT].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }
}

impl Input {
    fn unread(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    fn take(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Reads more from `stream`; an error at the connection's end. Fails when what is unread
    /// already fills the buffer (a head or a line longer than [`INPUT`]).
    async fn fill(&mut self, stream: &TcpStream) -> io::Result<()> {
        if self.end == self.buf.len() {
            if self.start == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the answer's headers are too long",
                ));
            }
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        loop {
            stream.readable().await?;
            match stream.try_read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the connection closed before an answer",
                    ))
                }
                Ok(n) => {
                    self.end += n;
                    quick_ack(stream);
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Takes `n` bytes of body, reading as needed.
    async fn skip(&mut self, stream: &TcpStream, mut n: u64) -> io::Result<()> {
        loop {
            let here = self
                .unread()
                .len()
                .min(usize::try_from(n).unwrap_or(usize::MAX));
            self.take(here);
            n -= here as u64;
            if n == 0 {
                return Ok(());
            }
            self.fill(stream).await?;
        }
    }

    /// Takes one line (without its CRLF), reading as needed.
    async fn line(&mut self, stream: &TcpStream) -> io::Result<Vec<u8>> {
        loop {
            if let Some(i) = find(self.unread(), b"\r\n") {
                let line = self.unread()[..i].to_vec();
                self.take(i + 2);
                return Ok(line);
            }
            self.fill(stream).await?;
        }
    }
}

/// Asks the kernel to acknowledge what arrives on `stream` at once rather than after its delayed-ACK
/// pause (up to 40 ms on Linux). A server that writes each pipelined answer on its own without
/// `TCP_NODELAY` (hyper's and Python's defaults) holds every answer after the first until the
/// previous one is acknowledged: with delayed acknowledgements a batch of answers would take tens
/// of milliseconds. The setting does not last, so it is renewed after every read.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn quick_ack(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: a valid socket descriptor, borrowed for the call, and a pointer to a c_int of the
    // size given. A failure only leaves acknowledgements delayed.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_QUICKACK,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// Elsewhere acknowledgements keep the system's pacing.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn quick_ack(_: &TcpStream) {}

/// How an answer's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Body {
    None,
    Length(u64),
    Chunked,
    /// Up to the connection's end.
    UntilClose,
}

/// An answer's head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Head {
    status: u16,
    body: Body,
    /// Whether the connection stays open after this answer.
    keep_alive: bool,
}

/// Reads answers into `codes` until there are `count`, or the server says it closes.
async fn read_answers(
    stream: &TcpStream,
    input: &mut Input,
    count: usize,
    codes: &mut Vec<u16>,
) -> io::Result<End> {
    while codes.len() < count {
        let head = loop {
            if let Some(i) = find(input.unread(), b"\r\n\r\n") {
                let head = parse_head(&input.unread()[..i])?;
                input.take(i + 4);
                break head;
            }
            input.fill(stream).await?;
        };
        match head.body {
            Body::None => {}
            Body::Length(n) => input.skip(stream, n).await?,
            Body::Chunked => loop {
                let line = input.line(stream).await?;
                let size = chunk_size(&line)?;
                if size == 0 {
                    // Trailers, up to an empty line.
                    while !input.line(stream).await?.is_empty() {}
                    break;
                }
                input.skip(stream, size.saturating_add(2)).await?;
            },
            Body::UntilClose => {
                loop {
                    input.take(input.unread().len());
                    match input.fill(stream).await {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
                        Err(e) => return Err(e),
                    }
                }
                codes.push(head.status);
                return Ok(End::Closing);
            }
        }
        // An interim answer (`100 Continue`, …) comes before the request's own.
        if (100..200).contains(&head.status) && head.status != 101 {
            continue;
        }
        codes.push(head.status);
        if !head.keep_alive {
            return Ok(End::Closing);
        }
    }
    Ok(End::Open)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn bad(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("malformed answer: {what}"),
    )
}

/// Reads a status line and headers.
fn parse_head(head: &[u8]) -> io::Result<Head> {
    let text = std::str::from_utf8(head).map_err(|_| bad("headers are not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let http10 = match version {
        "HTTP/1.1" => false,
        "HTTP/1.0" => true,
        _ => return Err(bad("not an HTTP/1.x status line")),
    };
    let status: u16 = parts
        .next()
        .filter(|s| s.len() == 3)
        .and_then(|s| s.parse().ok())
        .filter(|s| (100..600).contains(s))
        .ok_or_else(|| bad("no status code"))?;
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut close = false;
    let mut keep_alive_token = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(bad("a header without a colon"));
        };
        let value = value.trim();
        let name = name.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let n: u64 = value.parse().map_err(|_| bad("Content-Length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(bad("two Content-Length values"));
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value
                .rsplit(',')
                .next()
                .is_some_and(|c| c.trim().eq_ignore_ascii_case("chunked"));
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                close |= token.eq_ignore_ascii_case("close");
                keep_alive_token |= token.eq_ignore_ascii_case("keep-alive");
            }
        }
    }
    let body = if (100..200).contains(&status) || status == 204 || status == 304 {
        Body::None
    } else if chunked {
        Body::Chunked
    } else if let Some(n) = length {
        Body::Length(n)
    } else {
        Body::UntilClose
    };
    let keep_alive =
        !close && (!http10 || keep_alive_token) && body != Body::UntilClose && status != 101;
    Ok(Head {
        status,
        body,
        keep_alive,
    })
}

/// A chunk-size line's size (extensions after `;` ignored).
fn chunk_size(line: &[u8]) -> io::Result<u64> {
    let text = std::str::from_utf8(line).map_err(|_| bad("chunk size"))?;
    let digits = text.split(';').next().unwrap_or_default().trim();
    u64::from_str_radix(digits, 16).map_err(|_| bad("chunk size"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        let a = Address::parse("http://127.0.0.1:4242/hook?x=1").unwrap();
        assert_eq!(a.connect, "127.0.0.1:4242");
        assert_eq!(a.host, "127.0.0.1:4242");
        assert_eq!(a.path, "/hook?x=1");
        let b = Address::parse("HTTP://localhost").unwrap();
        assert_eq!(
            (b.connect.as_str(), b.host.as_str(), b.path.as_str()),
            ("localhost:80", "localhost", "/")
        );
        let c = Address::parse("http://[::1]:8080/x").unwrap();
        assert_eq!(c.connect, "[::1]:8080");
        assert!(Address::parse("https://example.com/x")
            .unwrap_err()
            .starts_with("https is not supported"));
        assert!(Address::parse("not a url").is_err());
    }

    #[test]
    fn heads() {
        let h = parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 2").unwrap();
        assert_eq!(
            h,
            Head {
                status: 200,
                body: Body::Length(2),
                keep_alive: true
            }
        );
        let h = parse_head(
            b"HTTP/1.1 500 Oops\r\ntransfer-encoding: gzip, chunked\r\nConnection: close",
        )
        .unwrap();
        assert_eq!(
            h,
            Head {
                status: 500,
                body: Body::Chunked,
                keep_alive: false
            }
        );
        // HTTP/1.0 closes unless it says otherwise; a body without a length runs to the end.
        let h = parse_head(b"HTTP/1.0 200 OK\r\nContent-Length: 0").unwrap();
        assert!(!h.keep_alive);
        let h =
            parse_head(b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0").unwrap();
        assert!(h.keep_alive);
        let h = parse_head(b"HTTP/1.1 200 OK").unwrap();
        assert_eq!((h.body, h.keep_alive), (Body::UntilClose, false));
        let h = parse_head(b"HTTP/1.1 204 No Content").unwrap();
        assert_eq!((h.body, h.keep_alive), (Body::None, true));
        assert!(parse_head(b"HTTP/2 200").is_err());
        assert!(parse_head(b"HTTP/1.1 2000 OK").is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2").is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nno colon").is_err());
        assert_eq!(chunk_size(b"1a;ext=1").unwrap(), 26);
        assert!(chunk_size(b"zz").is_err());
    }
}
