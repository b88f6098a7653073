//! The generator's HTTP/1.1 client connection: one keep-alive TCP connection, one
//! request at a time, written from one buffer and answered in place, the way wrk
//! works. hyper's client runs each connection as a task of its own fed through a
//! channel, which costs a hand-off and a wake-up per request on each side; a load
//! generator pays that on the cores it shares with the stack it measures.
//!
//! Answers are parsed with `httparse` and framed per RFC 9112 §6.3: no body for
//! 1xx (skipped), 204 and 304; `Transfer-Encoding: chunked` decoded; else
//! `Content-Length`; else the body runs to the end of the connection.

use std::io;
use std::net::SocketAddr;

use bytes::{Buf, Bytes, BytesMut};
use http::Request;
use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Most header lines an answer may have.
const MAX_HEADERS: usize = 64;
/// Largest answer head accepted.
const MAX_HEAD: usize = 64 * 1024;

/// How an exchange failed: the connection is unusable afterwards.
#[derive(Debug)]
pub enum WireError {
    Io(io::Error),
    /// The peer closed the connection before a complete answer.
    Closed,
    /// Not an HTTP/1.x answer this client can frame.
    Malformed(&'static str),
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::Io(err) => write!(f, "{err}"),
            WireError::Closed => f.write_str("connection closed before a complete answer"),
            WireError::Malformed(what) => write!(f, "malformed answer: {what}"),
        }
    }
}

impl From<io::Error> for WireError {
    fn from(err: io::Error) -> Self {
        WireError::Io(err)
    }
}

/// An answer, read in full.
pub struct Reply {
    pub status: u16,
    /// Status line, headers and body as received (without chunk framing).
    pub bytes: u64,
    /// The body, when asked to keep it.
    pub body: Option<Bytes>,
    /// The server will close the connection (or framed the body by closing it).
    pub close: bool,
}

/// One client connection.
pub struct Conn {
    stream: TcpStream,
    /// Received and not yet consumed.
    input: BytesMut,
    /// The request being written (reused).
    output: Vec<u8>,
}

impl Conn {
    pub async fn connect(addr: SocketAddr) -> io::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            input: BytesMut::with_capacity(16 * 1024),
            output: Vec::with_capacity(1024),
        })
    }

    /// Sends `req` (its headers as given, plus `Content-Length` when it has a body)
    /// in one write and reads the whole answer, keeping the body only if `keep`.
    pub async fn exchange(&mut self, req: &Request<Bytes>, keep: bool) -> Result<Reply, WireError> {
        self.encode(req);
        let head_request = req.method() == http::Method::HEAD;
        self.round_trip(head_request, keep).await
    }

    /// The request buffer, cleared, for a caller that encodes its request itself
    /// (whole and framed) and then calls [`Conn::exchange_written`]: the generator's hot
    /// loop writes its few request shapes from pre-encoded pieces instead of building
    /// an `http::Request` (a header map allocated and encoded again) for each request.
    pub fn request_buffer(&mut self) -> &mut Vec<u8> {
        self.output.clear();
        &mut self.output
    }

    /// Sends what was encoded into [`Conn::request_buffer`] and reads the whole answer
    /// (a `HEAD` answer has no body), keeping the body only if `keep`.
    pub async fn exchange_written(
        &mut self,
        head_request: bool,
        keep: bool,
    ) -> Result<Reply, WireError> {
        self.round_trip(head_request, keep).await
    }

    /// Writes the output buffer and reads the whole answer.
    async fn round_trip(&mut self, head_request: bool, keep: bool) -> Result<Reply, WireError> {
        self.stream.write_all(&self.output).await?;
        loop {
            let head = self.read_head().await?;
            if (100..200).contains(&head.status) && head.status != 101 {
                continue; // an interim answer: the real one follows
            }
            let no_body = head_request || head.status == 204 || head.status == 304;
            let (body, body_len, to_close) = if no_body {
                (None, 0, false)
            } else if head.chunked {
                let (body, len) = self.read_chunked(keep).await?;
                (body, len, false)
            } else if let Some(len) = head.length {
                (self.read_exact_body(len, keep).await?, len, false)
            } else {
                let (body, len) = self.read_to_close(keep).await?;
                (body, len, true)
            };
            return Ok(Reply {
                status: head.status,
                bytes: head.size as u64 + body_len,
                body,
                close: head.close || to_close,
            });
        }
    }

    fn encode(&mut self, req: &Request<Bytes>) {
        let out = &mut self.output;
        out.clear();
        out.extend_from_slice(req.method().as_str().as_bytes());
        out.push(b' ');
        let target = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
        out.extend_from_slice(target.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        for (name, value) in req.headers() {
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        let body = req.body();
        if !body.is_empty() && !req.headers().contains_key(CONTENT_LENGTH) {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(body.len().to_string().as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body);
    }

    /// Reads more input; `Closed` at the end of the connection.
    async fn fill(&mut self) -> Result<(), WireError> {
        if self.input.capacity() - self.input.len() < 4096 {
            self.input.reserve(16 * 1024);
        }
        match self.stream.read_buf(&mut self.input).await? {
            0 => Err(WireError::Closed),
            _ => Ok(()),
        }
    }

    async fn read_head(&mut self) -> Result<Head, WireError> {
        loop {
            if let Some(head) = parse_head(&self.input)? {
                self.input.advance(head.size);
                return Ok(head);
            }
            if self.input.len() > MAX_HEAD {
                return Err(WireError::Malformed("head too large"));
            }
            self.fill().await?;
        }
    }

    async fn read_exact_body(&mut self, len: u64, keep: bool) -> Result<Option<Bytes>, WireError> {
        let len = usize::try_from(len).map_err(|_| WireError::Malformed("body too large"))?;
        if keep {
            while self.input.len() < len {
                self.input.reserve(len - self.input.len());
                self.fill().await?;
            }
            return Ok(Some(self.input.split_to(len).freeze()));
        }
        let mut left = len;
        loop {
            let take = left.min(self.input.len());
            self.input.advance(take);
            left -= take;
            if left == 0 {
                return Ok(None);
            }
            self.fill().await?;
        }
    }

    async fn read_to_close(&mut self, keep: bool) -> Result<(Option<Bytes>, u64), WireError> {
        loop {
            match self.fill().await {
                Ok(()) => {}
                Err(WireError::Closed) => break,
                Err(err) => return Err(err),
            }
        }
        let len = self.input.len() as u64;
        let body = self.input.split().freeze();
        Ok((keep.then_some(body), len))
    }

    async fn read_chunked(&mut self, keep: bool) -> Result<(Option<Bytes>, u64), WireError> {
        let mut kept = BytesMut::new();
        let mut total = 0u64;
        loop {
            let line = self.read_line().await?;
            let size_text = line.split(|b| *b == b';').next().unwrap_or_default();
            let size_text = std::str::from_utf8(size_text)
                .map_err(|_| WireError::Malformed("chunk size"))?
                .trim();
            let size = usize::from_str_radix(size_text, 16)
                .map_err(|_| WireError::Malformed("chunk size"))?;
            if size == 0 {
                // Trailers, up to the empty line.
                while !self.read_line().await?.is_empty() {}
                return Ok((keep.then(|| kept.freeze()), total));
            }
            while self.input.len() < size + 2 {
                self.fill().await?;
            }
            if keep {
                kept.extend_from_slice(&self.input[..size]);
            }
            if &self.input[size..size + 2] != b"\r\n" {
                return Err(WireError::Malformed("chunk end"));
            }
            self.input.advance(size + 2);
            total += size as u64;
        }
    }

    /// One CRLF-terminated line, without its CRLF.
    async fn read_line(&mut self) -> Result<Bytes, WireError> {
        loop {
            if let Some(end) = self.input.windows(2).position(|w| w == b"\r\n") {
                let line = self.input.split_to(end).freeze();
                self.input.advance(2);
                return Ok(line);
            }
            if self.input.len() > MAX_HEAD {
                return Err(WireError::Malformed("line too long"));
            }
            self.fill().await?;
        }
    }
}

/// What framing needs from an answer's head.
struct Head {
    status: u16,
    /// Bytes of the status line and headers, the blank line included.
    size: usize,
    length: Option<u64>,
    chunked: bool,
    close: bool,
}

/// The head at the start of `input`, if complete.
fn parse_head(input: &[u8]) -> Result<Option<Head>, WireError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let size = match resp.parse(input) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(WireError::Malformed("head")),
    };
    let status = resp.code.ok_or(WireError::Malformed("status"))?;
    let mut head = Head {
        status,
        size,
        length: None,
        chunked: false,
        close: resp.version == Some(0),
    };
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case(TRANSFER_ENCODING.as_str()) {
            head.chunked = std::str::from_utf8(h.value).is_ok_and(|v| {
                v.rsplit(',')
                    .next()
                    .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"))
            });
        } else if h.name.eq_ignore_ascii_case(CONTENT_LENGTH.as_str()) {
            let len = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .ok_or(WireError::Malformed("content-length"))?;
            if head.length.is_some_and(|l| l != len) {
                return Err(WireError::Malformed("content-length"));
            }
            head.length = Some(len);
        } else if h.name.eq_ignore_ascii_case(CONNECTION.as_str()) {
            let value = String::from_utf8_lossy(h.value).to_ascii_lowercase();
            if value.split(',').any(|t| t.trim() == "close") {
                head.close = true;
            } else if value.split(',').any(|t| t.trim() == "keep-alive") {
                head.close = false;
            }
        }
    }
    Ok(Some(head))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A server that answers each request (read up to its blank line) with the next
    /// canned answer, as given, then closes.
    async fn canned(answers: Vec<&'static [u8]>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            for answer in answers {
                loop {
                    if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        break;
                    }
                    let mut chunk = [0u8; 1024];
                    let n = s.read(&mut chunk).await.unwrap();
                    assert!(n > 0);
                    buf.extend_from_slice(&chunk[..n]);
                }
                // In pieces, to exercise partial reads.
                for piece in answer.chunks(7) {
                    s.write_all(piece).await.unwrap();
                    s.flush().await.unwrap();
                    tokio::task::yield_now().await;
                }
            }
        });
        addr
    }

    fn get(path: &str) -> Request<Bytes> {
        Request::get(path)
            .header("host", "h")
            .body(Bytes::new())
            .unwrap()
    }

    #[tokio::test]
    async fn length_chunked_and_interim_answers_on_one_connection() {
        let addr = canned(vec![
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello",
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3;x=1\r\nabc\r\n2\r\nde\r\n0\r\nx-t: 1\r\n\r\n",
            b"HTTP/1.1 204 No Content\r\n\r\n",
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno",
        ])
        .await;
        let mut conn = Conn::connect(addr).await.unwrap();
        let r = conn.exchange(&get("/a"), true).await.unwrap();
        assert_eq!(
            (r.status, r.body.unwrap().as_ref(), r.close),
            (200, &b"hello"[..], false)
        );
        assert_eq!(r.bytes, 38 + 5);
        let post = Request::post("/p")
            .header("host", "h")
            .body(Bytes::from_static(b"{}"))
            .unwrap();
        let r = conn.exchange(&post, true).await.unwrap();
        assert_eq!((r.status, r.body.unwrap().as_ref()), (201, &b"abcde"[..]));
        let r = conn.exchange(&get("/c"), false).await.unwrap();
        assert_eq!((r.status, r.body.is_none()), (204, true));
        let r = conn.exchange(&get("/d"), false).await.unwrap();
        assert_eq!((r.status, r.close), (404, true));
        assert!(conn.exchange(&get("/e"), false).await.is_err());
    }

    #[tokio::test]
    async fn a_body_to_the_end_of_the_connection_and_garbage() {
        let addr = canned(vec![b"HTTP/1.0 200 OK\r\n\r\nall of it"]).await;
        let mut conn = Conn::connect(addr).await.unwrap();
        let r = conn.exchange(&get("/"), true).await.unwrap();
        assert_eq!(
            (r.body.unwrap().as_ref(), r.close),
            (&b"all of it"[..], true)
        );
        let addr = canned(vec![b"NOT HTTP\r\n\r\n"]).await;
        let mut conn = Conn::connect(addr).await.unwrap();
        assert!(matches!(
            conn.exchange(&get("/"), false).await,
            Err(WireError::Malformed(_))
        ));
        let addr = canned(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"]).await;
        let mut conn = Conn::connect(addr).await.unwrap();
        assert!(conn.exchange(&get("/"), false).await.is_err());
    }
}
