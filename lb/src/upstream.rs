//! Upstream connections, owned by the worker thread that uses them, and the HTTP/1.1
//! exchange on them. Each worker keeps its own idle keep-alive connections per
//! webserver; a request checks one out, writes its head (straight from the client's
//! parsed request: no copy of its headers, no `Request` built), streams its body if
//! it has one, parses the answer's head and hands the connection to the answer's
//! body, which returns it to the pool once the body has been read in full. All of
//! it runs inside the client connection's own task: no task per upstream connection,
//! no channel or oneshot between a request and its connection, no wake-up of another
//! task per request (what hyper's `client::conn` costs; this is the shape nginx has).
//!
//! The client side of HTTP/1.1 that the balancer needs, and no more: requests go out
//! with `Content-Length` when the body's length is known and chunked otherwise;
//! answers are framed by `Content-Length`, chunked coding or the end of the
//! connection (RFC 9112 §6.3), 1xx interim answers are skipped, and a connection is
//! kept only after an HTTP/1.1 answer without `Connection: close` read to its end.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::poll_fn;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll, Waker, ready};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode, Version, header};
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use crate::body::ForwardBody;
use crate::headers::Forwarding;
use httpkit::BoxError;

/// Bytes asked of the socket per read.
const READ_SIZE: usize = 8 * 1024;
/// Largest answer head (status line and headers) accepted from a webserver.
const MAX_HEAD: usize = 64 * 1024;
/// Most header lines accepted in a webserver's answer.
const MAX_HEADERS: usize = 100;
/// Longest chunk-size or trailer line accepted.
const MAX_LINE: usize = 4 * 1024;

/// How an exchange on an upstream connection failed.
pub enum SendError {
    /// Nothing was sent: the connection could not be opened, or it failed before the
    /// request's head was written in full.
    NotSent(BoxError),
    /// No connection could be opened within the connect timeout: nothing was sent.
    /// Apart from `NotSent` because it says the webserver is slow (a full accept
    /// backlog), not gone.
    ConnectTimeout,
    /// The connection failed after the request may have been (partly) sent, or the
    /// answer was not HTTP; also a failure of the client's body while it was sent.
    Broken(BoxError),
}

/// One open connection to a webserver.
pub struct Conn {
    stream: TcpStream,
    /// Read and not consumed yet.
    rbuf: BytesMut,
    /// The request head being written.
    wbuf: Vec<u8>,
}

impl Conn {
    fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            rbuf: BytesMut::with_capacity(2 * READ_SIZE),
            wbuf: Vec::with_capacity(1024),
        }
    }

    /// Whether an idle connection can take a request: the webserver has neither
    /// closed it nor sent anything unasked. Costs no system call unless the socket
    /// became readable while idle (tokio clears a socket's read readiness when a read
    /// drains it, as the read of the last answer did).
    fn idle_usable(&mut self) -> bool {
        if !self.rbuf.is_empty() {
            return false;
        }
        let mut cx = Context::from_waker(Waker::noop());
        match self.stream.poll_read_ready(&mut cx) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            Poll::Ready(Ok(())) => {
                let mut probe = [0u8; 1];
                matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            }
        }
    }
}

thread_local! {
    /// Each worker's read buffer: `ReadBuf` needs initialized memory without
    /// `unsafe`, so reads land here and are copied into the connection's buffer (a
    /// copy of the bytes read, cheaper than zeroing a fresh buffer per read; and a
    /// short read is how tokio knows the socket is drained, unlike `try_read_buf`).
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0; READ_SIZE].into_boxed_slice());
}

/// Reads more bytes into `buf`; `Ok(0)` at the end of the stream.
fn poll_fill(
    io: &mut TcpStream,
    buf: &mut BytesMut,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    SCRATCH.with_borrow_mut(|scratch| {
        let mut read = ReadBuf::new(scratch);
        ready!(Pin::new(io).poll_read(cx, &mut read))?;
        buf.extend_from_slice(read.filled());
        Poll::Ready(Ok(read.filled().len()))
    })
}

/// What the request sends to the webserver, borrowed from the client's request.
pub struct Head<'a> {
    pub method: &'a Method,
    /// Path and query.
    pub target: &'a str,
    /// Already rewritten for the webserver (hop-by-hop headers gone).
    /// `Content-Length` is written from the body's own length.
    pub headers: &'a HeaderMap,
    /// Written after `headers`, replacing those of the same names.
    pub forwarding: &'a Forwarding,
}

/// How the request's body is framed on the wire.
#[derive(Clone, Copy, PartialEq, Eq)]
enum RequestFraming {
    /// No body.
    None,
    Length,
    Chunked,
}

/// Writes the request head into `out`. `host` is the `Host` sent when the client
/// sent none (HTTP/1.0).
fn encode_head(
    out: &mut Vec<u8>,
    head: &Head<'_>,
    host: &str,
    body: &ForwardBody,
) -> RequestFraming {
    out.clear();
    out.extend_from_slice(head.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(head.target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in head.headers {
        if name == header::CONTENT_LENGTH
            || name == header::TRANSFER_ENCODING
            || head.forwarding.replaces(name)
        {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    for (name, value) in head.forwarding.headers() {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !head.headers.contains_key(header::HOST) {
        out.extend_from_slice(b"host: ");
        out.extend_from_slice(host.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let framing = if body.is_end_stream() {
        // As hyper's client does: a zero length only where a body has a meaning.
        if !matches!(
            *head.method,
            Method::GET | Method::HEAD | Method::DELETE | Method::OPTIONS | Method::TRACE
        ) {
            out.extend_from_slice(b"content-length: 0\r\n");
        }
        RequestFraming::None
    } else if let Some(len) = body.size_hint().exact() {
        out.extend_from_slice(b"content-length: ");
        out.extend_from_slice(itoa(len, &mut [0; 20]));
        out.extend_from_slice(b"\r\n");
        RequestFraming::Length
    } else {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
        RequestFraming::Chunked
    };
    out.extend_from_slice(b"\r\n");
    framing
}

/// `n` in decimal, in `buf`.
fn itoa(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

/// The request body on its way to the webserver, chunked or as it comes. Polled
/// alongside the answer: a webserver may answer (and stream its answer) before it
/// has the whole body.
struct Upload {
    body: ForwardBody,
    chunked: bool,
    /// The current frame (with its chunk framing), not yet written in full.
    out: Option<bytes::buf::Chain<bytes::buf::Chain<Bytes, Bytes>, &'static [u8]>>,
    /// The last frame has been taken from the body.
    ended: bool,
}

impl Upload {
    fn new(body: ForwardBody, framing: RequestFraming) -> Self {
        Self {
            body,
            chunked: framing == RequestFraming::Chunked,
            out: None,
            ended: false,
        }
    }

    /// Ready once the whole body has been written.
    fn poll(&mut self, io: &mut TcpStream, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        loop {
            if let Some(out) = &mut self.out {
                if out.has_remaining() {
                    let mut slices = [io::IoSlice::new(&[]); 3];
                    let count = out.chunks_vectored(&mut slices);
                    let n = ready!(Pin::new(&mut *io).poll_write_vectored(cx, &slices[..count]))?;
                    if n == 0 {
                        return Poll::Ready(Err(io::Error::from(io::ErrorKind::WriteZero).into()));
                    }
                    out.advance(n);
                    continue;
                }
                self.out = None;
            }
            if self.ended {
                return Poll::Ready(Ok(()));
            }
            match ready!(Pin::new(&mut self.body).poll_frame(cx)) {
                Some(frame) => {
                    let Ok(data) = frame?.into_data() else {
                        continue; // trailers are not forwarded
                    };
                    if data.is_empty() {
                        continue;
                    }
                    let (prefix, suffix): (Bytes, &'static [u8]) = if self.chunked {
                        (format!("{:x}\r\n", data.len()).into(), b"\r\n")
                    } else {
                        (Bytes::new(), b"")
                    };
                    self.out = Some(prefix.chain(data).chain(suffix));
                }
                None => {
                    self.ended = true;
                    if self.chunked {
                        self.out = Some(Bytes::new().chain(Bytes::new()).chain(b"0\r\n\r\n"));
                    }
                }
            }
        }
    }
}

/// An answer's head, parsed.
struct ParsedHead {
    status: StatusCode,
    headers: HeaderMap,
    framing: Framing,
    keep_alive: bool,
}

/// Parses an answer head at the start of `buf` (consuming it) if it is complete;
/// 1xx interim answers are consumed and skipped.
fn parse_head(buf: &mut BytesMut, head_request: bool) -> Result<Option<ParsedHead>, BoxError> {
    loop {
        // Uninitialized slots: filling 100 empty headers per answer costs more than
        // parsing the few a webserver sends.
        let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut []);
        let len = match httparse::ParserConfig::default()
            .parse_response_with_uninit_headers(&mut resp, buf, &mut slots)?
        {
            httparse::Status::Complete(len) => len,
            httparse::Status::Partial if buf.len() > MAX_HEAD => {
                return Err("webserver answer head too large".into());
            }
            httparse::Status::Partial => return Ok(None),
        };
        let code = resp.code.unwrap_or(0);
        let status = StatusCode::from_u16(code)?;
        if status.is_informational() {
            if code == 101 {
                return Err("webserver switched protocols".into());
            }
            buf.advance(len);
            continue;
        }
        let http11 = resp.version == Some(1);
        // Each header's name, and where its value sits in `buf`, so the values can
        // share its memory once the head is split off.
        let base = buf.as_ptr() as usize;
        let mut fields = Vec::with_capacity(resp.headers.len());
        for h in resp.headers.iter() {
            let start = h.value.as_ptr() as usize - base;
            fields.push((
                HeaderName::from_bytes(h.name.as_bytes())?,
                start,
                h.value.len(),
            ));
        }
        let bytes = buf.split_to(len).freeze();
        let mut headers = HeaderMap::with_capacity(fields.len());
        for (name, start, n) in fields {
            let value = HeaderValue::from_maybe_shared(bytes.slice(start..start + n))?;
            headers.append(name, value);
        }
        let mut keep_alive = http11;
        for v in headers.get_all(header::CONNECTION) {
            for token in v.to_str().unwrap_or("close").split(',') {
                let token = token.trim();
                if token.eq_ignore_ascii_case("close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case("keep-alive") && !http11 {
                    keep_alive = true;
                }
            }
        }
        let framing = framing(&headers, status, head_request)?;
        if headers.contains_key(header::TRANSFER_ENCODING) {
            // The coding frames the body, not a length the client would be told
            // (RFC 9112 §6.3): the balancer frames its own answer.
            headers.remove(header::CONTENT_LENGTH);
        }
        if framing == Framing::Eof {
            keep_alive = false;
        }
        return Ok(Some(ParsedHead {
            status,
            headers,
            framing,
            keep_alive,
        }));
    }
}

/// How an answer's body is delimited (RFC 9112 §6.3).
fn framing(
    headers: &HeaderMap,
    status: StatusCode,
    head_request: bool,
) -> Result<Framing, BoxError> {
    if head_request || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        return Ok(Framing::Length(0));
    }
    if let Some(te) = headers
        .get_all(header::TRANSFER_ENCODING)
        .iter()
        .next_back()
    {
        let last = te.to_str().unwrap_or("").rsplit(',').next().unwrap_or("");
        return Ok(if last.trim().eq_ignore_ascii_case("chunked") {
            Framing::Chunked(Chunk::Size)
        } else {
            Framing::Eof
        });
    }
    let mut length = None;
    for v in headers.get_all(header::CONTENT_LENGTH) {
        let n: u64 = v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or("bad content-length from webserver")?;
        if length.is_some_and(|l| l != n) {
            return Err("conflicting content-lengths from webserver".into());
        }
        length = Some(n);
    }
    Ok(length.map_or(Framing::Eof, Framing::Length))
}

/// Reads until an answer head is complete.
fn poll_head(
    io: &mut TcpStream,
    buf: &mut BytesMut,
    head_request: bool,
    cx: &mut Context<'_>,
) -> Poll<Result<ParsedHead, BoxError>> {
    loop {
        if !buf.is_empty()
            && let Some(head) = parse_head(buf, head_request)?
        {
            return Poll::Ready(Ok(head));
        }
        if ready!(poll_fill(io, buf, cx))? == 0 {
            return Poll::Ready(Err(if buf.is_empty() {
                "webserver closed the connection without an answer".into()
            } else {
                "webserver closed the connection in the answer's head".into()
            }));
        }
    }
}

/// How much of an answer's body is left.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Framing {
    Length(u64),
    Chunked(Chunk),
    /// Until the webserver closes the connection.
    Eof,
    Done,
}

/// Where a chunked body is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Chunk {
    Size,
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    Trailers,
}

/// A webserver's answer body, read from its connection in the client connection's
/// task. Once read in full, [`UpstreamBody::take_reusable`] gives the connection
/// back for the pool; dropped before its end, it closes the connection.
pub struct UpstreamBody {
    /// `None` once given back, or after an error.
    conn: Option<Conn>,
    /// The rest of the request body, if the answer came before all of it was sent.
    upload: Option<Box<Upload>>,
    framing: Framing,
    keep_alive: bool,
}

impl UpstreamBody {
    /// The connection, if the body has been read in full and it can be reused.
    pub fn take_reusable(&mut self) -> Option<Conn> {
        if self.is_end_stream() && self.keep_alive && self.upload.is_none() {
            self.conn.take().filter(|c| c.rbuf.is_empty())
        } else {
            None
        }
    }

    fn fail(&mut self, why: impl Into<BoxError>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.conn = None;
        self.framing = Framing::Done;
        Poll::Ready(Some(Err(why.into())))
    }
}

/// The position of the first CRLF in `buf`.
fn line_end(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            if let Some(upload) = &mut this.upload
                && !matches!(this.framing, Framing::Done | Framing::Length(0))
            {
                match upload.poll(&mut conn.stream, cx) {
                    Poll::Ready(Ok(())) => this.upload = None,
                    Poll::Ready(Err(err)) => return this.fail(err),
                    Poll::Pending => {}
                }
            }
            // Data ready in the buffer, or the next step of the framing.
            match &mut this.framing {
                Framing::Done | Framing::Length(0) => {
                    this.framing = Framing::Done;
                    return Poll::Ready(None);
                }
                Framing::Length(left) | Framing::Chunked(Chunk::Data(left))
                    if !conn.rbuf.is_empty() =>
                {
                    let n = conn
                        .rbuf
                        .len()
                        .min(usize::try_from(*left).unwrap_or(usize::MAX));
                    let data = conn.rbuf.split_to(n).freeze();
                    *left -= n as u64;
                    if let Framing::Chunked(Chunk::Data(0)) = this.framing {
                        this.framing = Framing::Chunked(Chunk::DataEnd);
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Framing::Eof if !conn.rbuf.is_empty() => {
                    let data = conn.rbuf.split().freeze();
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Framing::Chunked(Chunk::Data(0)) => {
                    this.framing = Framing::Chunked(Chunk::DataEnd);
                    continue;
                }
                Framing::Chunked(Chunk::DataEnd) if conn.rbuf.len() >= 2 => {
                    if &conn.rbuf[..2] != b"\r\n" {
                        return this.fail("bad chunk end from webserver");
                    }
                    conn.rbuf.advance(2);
                    this.framing = Framing::Chunked(Chunk::Size);
                    continue;
                }
                Framing::Chunked(Chunk::Size) => {
                    if let Some(end) = line_end(&conn.rbuf) {
                        let line = &conn.rbuf[..end];
                        let digits = line.split(|b| *b == b';').next().unwrap_or(line);
                        let size = std::str::from_utf8(digits)
                            .ok()
                            .and_then(|s| u64::from_str_radix(s.trim(), 16).ok());
                        let Some(size) = size else {
                            return this.fail("bad chunk size from webserver");
                        };
                        conn.rbuf.advance(end + 2);
                        this.framing = Framing::Chunked(if size == 0 {
                            Chunk::Trailers
                        } else {
                            Chunk::Data(size)
                        });
                        continue;
                    }
                    if conn.rbuf.len() > MAX_LINE {
                        return this.fail("chunk size line too long");
                    }
                }
                Framing::Chunked(Chunk::Trailers) => {
                    if let Some(end) = line_end(&conn.rbuf) {
                        conn.rbuf.advance(end + 2);
                        if end == 0 {
                            this.framing = Framing::Done;
                            return Poll::Ready(None);
                        }
                        continue; // a trailer field: not forwarded
                    }
                    if conn.rbuf.len() > MAX_LINE {
                        return this.fail("trailer line too long");
                    }
                }
                _ => {}
            }
            // More bytes needed.
            match ready!(poll_fill(&mut conn.stream, &mut conn.rbuf, cx)) {
                Ok(0) if this.framing == Framing::Eof => {
                    this.framing = Framing::Done;
                    this.keep_alive = false;
                    this.conn = None;
                    return Poll::Ready(None);
                }
                Ok(0) => return this.fail("webserver closed the connection in the body"),
                Ok(_) => {}
                Err(err) => return this.fail(err),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.framing, Framing::Done | Framing::Length(0))
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::Length(n) => SizeHint::with_exact(n),
            Framing::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

struct Idle {
    conn: Conn,
    since: Instant,
}

/// One worker's idle connections, by webserver address.
struct Pool {
    idle: HashMap<String, Vec<Idle>>,
    idle_timeout: Duration,
    max_idle_per_host: usize,
}

thread_local! {
    static POOL: RefCell<Pool> = RefCell::new(Pool {
        idle: HashMap::new(),
        idle_timeout: Duration::from_secs(20),
        max_idle_per_host: 1024,
    });
}

/// Sets this worker thread's pool limits (before it serves).
pub fn init(idle_timeout: Duration, max_idle_per_host: usize) {
    POOL.with_borrow_mut(|pool| {
        pool.idle_timeout = idle_timeout;
        pool.max_idle_per_host = max_idle_per_host;
    });
}

/// The most recently used idle connection to `addr` still open and not expired.
fn checkout(addr: &str) -> Option<Conn> {
    POOL.with_borrow_mut(|pool| {
        let timeout = pool.idle_timeout;
        let list = pool.idle.get_mut(addr)?;
        while let Some(mut idle) = list.pop() {
            if idle.since.elapsed() < timeout && idle.conn.idle_usable() {
                return Some(idle.conn);
            }
        }
        None
    })
}

/// Returns a connection whose last answer has been read in full to the pool.
pub fn release(addr: &str, conn: Conn) {
    POOL.with_borrow_mut(|pool| {
        let max = pool.max_idle_per_host;
        let since = Instant::now();
        match pool.idle.get_mut(addr) {
            Some(list) if list.len() < max => list.push(Idle { conn, since }),
            Some(_) => {}
            None if max > 0 => {
                pool.idle
                    .insert(addr.to_owned(), vec![Idle { conn, since }]);
            }
            None => {}
        }
    });
}

/// Closes this worker's idle connections that expired or were closed by the peer.
pub fn sweep() {
    POOL.with_borrow_mut(|pool| {
        let timeout = pool.idle_timeout;
        pool.idle.retain(|_, list| {
            list.retain_mut(|idle| idle.since.elapsed() < timeout && idle.conn.idle_usable());
            !list.is_empty()
        });
    });
}

/// Opens a new connection to `addr` within `connect_timeout`.
async fn connect(addr: &str, connect_timeout: Duration) -> Result<Conn, SendError> {
    let stream = tokio::time::timeout(connect_timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| SendError::ConnectTimeout)?
        .map_err(|err| SendError::NotSent(err.into()))?;
    stream
        .set_nodelay(true)
        .map_err(|err| SendError::NotSent(err.into()))?;
    Ok(Conn::new(stream))
}

/// Sends the request to `addr` on an idle connection, or a new one, and reads the
/// answer's head; its body reads on from the same connection. A request whose head
/// an idle connection could not take (the webserver closed it meanwhile) is sent
/// again on a new connection: its body had not been touched. `host` is the `Host`
/// sent if the client sent none.
pub async fn send(
    addr: &str,
    head: &Head<'_>,
    body: ForwardBody,
    connect_timeout: Duration,
) -> Result<Response<UpstreamBody>, SendError> {
    loop {
        let (mut conn, reused) = match checkout(addr) {
            Some(conn) => (conn, true),
            // Boxed: the rare path's state stays out of every request's future.
            None => (Box::pin(connect(addr, connect_timeout)).await?, false),
        };
        let framing = encode_head(&mut conn.wbuf, head, addr, &body);
        if let Err(err) = conn.stream.write_all(&conn.wbuf).await {
            if reused {
                continue;
            }
            return Err(SendError::NotSent(err.into()));
        }
        let head_request = *head.method == Method::HEAD;
        return exchange(conn, body, framing, head_request)
            .await
            .map_err(SendError::Broken);
    }
}

/// After the head: sends the body (if any) while watching for the answer, which a
/// webserver may give (and stream) before it has read the whole body.
async fn exchange(
    mut conn: Conn,
    body: ForwardBody,
    framing: RequestFraming,
    head_request: bool,
) -> Result<Response<UpstreamBody>, BoxError> {
    // Boxed: most requests have no body, and this stays out of every answer's body.
    let mut upload =
        (framing != RequestFraming::None).then(|| Box::new(Upload::new(body, framing)));
    let parsed = poll_fn(|cx| {
        if let Some(up) = &mut upload {
            match up.poll(&mut conn.stream, cx) {
                Poll::Ready(Ok(())) => upload = None,
                Poll::Ready(Err(err)) => {
                    // An answer already here (a webserver refusing the rest of the
                    // body) wins over the failed write.
                    return match poll_head(&mut conn.stream, &mut conn.rbuf, head_request, cx) {
                        Poll::Ready(Ok(head)) => {
                            upload = None;
                            Poll::Ready(Ok((head, false)))
                        }
                        _ => Poll::Ready(Err(err)),
                    };
                }
                Poll::Pending => {}
            }
        }
        poll_head(&mut conn.stream, &mut conn.rbuf, head_request, cx).map_ok(|h| (h, true))
    })
    .await?;
    let (
        ParsedHead {
            status,
            headers,
            framing,
            keep_alive,
        },
        usable,
    ) = parsed;
    let body = UpstreamBody {
        conn: Some(conn),
        upload,
        framing,
        keep_alive: keep_alive && usable,
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    *resp.version_mut() = Version::HTTP_11;
    *resp.headers_mut() = headers;
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn head(raw: &str) -> Result<Option<ParsedHead>, BoxError> {
        parse_head(&mut BytesMut::from(raw), false)
    }

    #[test]
    fn answers_are_framed_per_rfc_9112() {
        let h = head("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello")
            .unwrap()
            .unwrap();
        assert_eq!(h.framing, Framing::Length(5));
        assert!(h.keep_alive);
        let h = head("HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.framing, Framing::Chunked(Chunk::Size));
        let h = head("HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.framing, Framing::Eof);
        assert!(!h.keep_alive);
        let h = head("HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!h.keep_alive);
        let h = head("HTTP/1.1 204 No Content\r\ncontent-length: 9\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.framing, Framing::Length(0));
        let h =
            head("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\n")
                .unwrap()
                .unwrap();
        assert_eq!(h.status, StatusCode::CREATED);
        let h = head("HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.framing, Framing::Chunked(Chunk::Size));
        assert!(h.headers.get("content-length").is_none());
        assert!(head("HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n").is_err());
        assert!(head("HTTP/1.1 200 OK\r\ncontent-len").unwrap().is_none());
        assert!(head("HTTP/1.1 101 Switching\r\n\r\n").is_err());
        assert!(head("garbage\r\n\r\n").is_err());
    }

    #[test]
    fn header_values_share_the_read_buffer() {
        let h = head("HTTP/1.1 200 OK\r\nx-a: 1\r\nx-a: 2\r\ncontent-type: text/plain\r\n\r\n")
            .unwrap()
            .unwrap();
        let all: Vec<_> = h.headers.get_all("x-a").iter().collect();
        assert_eq!(all, ["1", "2"]);
        assert_eq!(h.headers["content-type"], "text/plain");
    }

    #[test]
    fn request_heads_carry_the_body_s_framing() {
        let mut headers = HeaderMap::new();
        headers.insert("content-length", HeaderValue::from_static("99"));
        headers.insert("x-b", HeaderValue::from_static("v"));
        let forwarding = Forwarding {
            xff: Some(HeaderValue::from_static("192.0.2.1")),
            proto: None,
            host: None,
        };
        headers.insert("x-forwarded-for", HeaderValue::from_static("spoofed"));
        let h = Head {
            method: &Method::GET,
            target: "/a?b",
            headers: &headers,
            forwarding: &forwarding,
        };
        let mut out = Vec::new();
        assert!(encode_head(&mut out, &h, "w:1", &ForwardBody::empty()) == RequestFraming::None);
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "GET /a?b HTTP/1.1\r\nx-b: v\r\nx-forwarded-for: 192.0.2.1\r\nhost: w:1\r\n\r\n"
        );
        let post = Head {
            method: &Method::POST,
            ..h
        };
        encode_head(&mut out, &post, "w:1", &ForwardBody::empty());
        assert!(
            String::from_utf8(out)
                .unwrap()
                .ends_with("content-length: 0\r\n\r\n")
        );
        assert_eq!(itoa(0, &mut [0; 20]), b"0");
        assert_eq!(itoa(1234567, &mut [0; 20]), b"1234567");
        assert_eq!(
            itoa(u64::MAX, &mut [0; 20]),
            u64::MAX.to_string().as_bytes()
        );
    }

    proptest::proptest! {
        #[test]
        fn any_answer_head_is_parsed_or_refused_without_panic(
            status in "[0-9 ]{0,4}",
            fields in proptest::collection::vec(
                (proptest::sample::select(vec![
                    "content-length", "transfer-encoding", "connection", "x-a",
                ]), "[ -~]{0,12}"),
                0..6,
            ),
            head_request in proptest::bool::ANY,
        ) {
            let mut raw = format!("HTTP/1.1 {status} X\r\n");
            for (name, value) in &fields {
                raw.push_str(&format!("{name}: {value}\r\n"));
            }
            raw.push_str("\r\n");
            let mut buf = BytesMut::from(raw.as_str());
            if let Ok(Some(h)) = parse_head(&mut buf, head_request) {
                proptest::prop_assert!(buf.is_empty());
                if h.headers.contains_key(header::TRANSFER_ENCODING) {
                    proptest::prop_assert!(!h.headers.contains_key(header::CONTENT_LENGTH));
                }
                if h.framing == Framing::Eof {
                    proptest::prop_assert!(!h.keep_alive);
                }
            }
        }
    }

    /// A body over a real socket pair: chunked and length-framed answers, with the
    /// connection given back only after the end.
    #[tokio::test]
    async fn bodies_are_read_to_their_end_and_the_connection_kept() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            s.write_all(b"4\r\nwiki\r\n5;x=y\r\npedia\r\n0\r\nx-t: 1\r\n\r\n")
                .await
                .unwrap();
            s
        });
        let conn = Conn::new(TcpStream::connect(addr).await.unwrap());
        let _server = server.await.unwrap();
        let mut body = UpstreamBody {
            conn: Some(conn),
            upload: None,
            framing: Framing::Chunked(Chunk::Size),
            keep_alive: true,
        };
        let mut got = Vec::new();
        while let Some(frame) = body.frame().await {
            got.extend_from_slice(&frame.unwrap().into_data().unwrap());
        }
        assert_eq!(got, b"wikipedia");
        assert!(body.take_reusable().is_some());
    }
}
