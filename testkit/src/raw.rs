//! Raw HTTP/1.1 over a fresh TCP connection, for what a client library hides: exactly
//! what the server sent (a HEAD answer's bytes), answers to requests a library would
//! not send (stalled or oversized bodies), and no pooling that could hide a restart.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::client::EXCHANGE_LIMIT;

/// What came back on the connection, up to its end.
#[derive(Debug, Clone)]
pub struct RawAnswer {
    /// Every byte received.
    pub bytes: Vec<u8>,
}

impl RawAnswer {
    /// The status code of the first answer; panics if there is none.
    pub fn status(&self) -> u16 {
        let text = String::from_utf8_lossy(&self.bytes);
        text.strip_prefix("HTTP/1.1 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("no HTTP/1.1 answer: {text:?}"))
    }

    /// The head (status line and headers), without the blank line.
    pub fn head(&self) -> String {
        let text = String::from_utf8_lossy(&self.bytes);
        text.split_once("\r\n\r\n")
            .map(|(head, _)| head.to_owned())
            .unwrap_or_else(|| panic!("answer without a complete head: {text:?}"))
    }

    /// The value of header `name` (any case) in the head.
    pub fn header(&self, name: &str) -> Option<String> {
        self.head().lines().skip(1).find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }

    /// Every byte after the head.
    pub fn body(&self) -> &[u8] {
        let at = self
            .bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("answer without a complete head");
        &self.bytes[at + 4..]
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(self.body()).into_owned()
    }

    /// The body as JSON; panics with the answer if it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(self.body()).unwrap_or_else(|err| {
            panic!(
                "not JSON ({err}): {:?}",
                String::from_utf8_lossy(&self.bytes)
            )
        })
    }

    /// Asserts an error answer: `status` and a JSON `{"error": string}` body.
    pub fn assert_error(&self, status: u16) {
        assert_eq!(
            self.status(),
            status,
            "{}",
            String::from_utf8_lossy(&self.bytes)
        );
        assert!(
            self.json()["error"].is_string(),
            "{}",
            String::from_utf8_lossy(&self.bytes)
        );
    }
}

/// Sends `request` (written as given; a failing write is not an error, the server may
/// answer and close before reading it all) and reads until the server closes the
/// connection or resets it, within [`EXCHANGE_LIMIT`]. What arrived before a reset
/// is kept: the kernel delivers data received before the reset.
pub async fn exchange(addr: SocketAddr, request: &[u8]) -> RawAnswer {
    exchange_within(addr, request, EXCHANGE_LIMIT).await
}

pub async fn exchange_within(addr: SocketAddr, request: &[u8], limit: Duration) -> RawAnswer {
    let mut stream = TcpStream::connect(addr)
        .await
        .unwrap_or_else(|err| panic!("connect {addr}: {err}"));
    let (mut reader, mut writer) = stream.split();
    // Reading while writing: a server that answers early is heard even if the
    // request is larger than the socket buffers.
    let write = async {
        let _ = writer.write_all(request).await;
    };
    let read = async {
        let mut bytes = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => bytes.extend_from_slice(&buf[..n]),
            }
        }
        bytes
    };
    let both = async { tokio::join!(write, read).1 };
    let bytes = tokio::time::timeout(limit, both)
        .await
        .unwrap_or_else(|_| panic!("{addr} did not close the connection within {limit:?}"));
    RawAnswer { bytes }
}

/// `METHOD url` (an `http://host:port/path` URL) over a fresh connection, with a
/// JSON content type: status and body text. No pooling, so a restarted server is
/// never hidden by a stale connection in the test itself.
pub async fn fetch(method: &str, url: &str, body: Option<&str>) -> (u16, String) {
    let rest = url.strip_prefix("http://").expect("an http:// URL");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let addr: SocketAddr = tokio::net::lookup_host(authority)
        .await
        .unwrap_or_else(|err| panic!("resolve {authority}: {err}"))
        .next()
        .unwrap_or_else(|| panic!("no address for {authority}"));
    let request = request(
        method,
        path,
        &[("Content-Type", "application/json")],
        body.unwrap_or("").as_bytes(),
    );
    let answer = exchange(addr, &request).await;
    (answer.status(), answer.body_text())
}

/// `GET url` over a fresh connection: status and JSON body (`Null` if not JSON).
pub async fn get_json(url: &str) -> (u16, serde_json::Value) {
    let (status, body) = fetch("GET", url, None).await;
    (
        status,
        serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
    )
}

/// `METHOD path` with `Connection: close`, the given headers and body, as bytes; a
/// `Content-Length` is added unless the headers already frame the body.
pub fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    let framed = headers.iter().any(|(k, _)| {
        k.eq_ignore_ascii_case("transfer-encoding") || k.eq_ignore_ascii_case("content-length")
    });
    if !framed && (!body.is_empty() || method == "POST" || method == "PUT") {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// A chunked request body of `total` bytes of `b'x'` in chunks of `chunk` bytes,
/// with its terminating chunk.
pub fn chunked(total: usize, chunk: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut left = total;
    while left > 0 {
        let n = left.min(chunk);
        out.extend_from_slice(format!("{n:x}\r\n").as_bytes());
        out.extend(std::iter::repeat_n(b'x', n));
        out.extend_from_slice(b"\r\n");
        left -= n;
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}
