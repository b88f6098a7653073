//! A raw HTTP client for tests: status, headers and JSON body of every answer.

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|err| {
            panic!(
                "answer {} is not JSON ({err}): {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// Asserts an error answer: `status` and a JSON `{"error": string}` body.
    pub fn assert_error(&self, status: StatusCode) {
        assert_eq!(
            self.status,
            status,
            "body: {:?}",
            String::from_utf8_lossy(&self.body)
        );
        assert!(
            self.json()["error"].is_string(),
            "error body: {:?}",
            String::from_utf8_lossy(&self.body)
        );
    }
}

/// A pooled client; pools are tied to the runtime that made them, so one per test.
pub fn new_client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(64)
        .build(HttpConnector::new())
}

/// Sends one request with a fresh client.
pub async fn send(method: Method, url: &str, body: Option<Vec<u8>>) -> Answer {
    send_with(&new_client(), method, url, body).await
}

/// Sends one request through `client`.
pub async fn send_with(
    client: &Client<HttpConnector, Full<Bytes>>,
    method: Method,
    url: &str,
    body: Option<Vec<u8>>,
) -> Answer {
    let mut builder = Request::builder().method(method).uri(url);
    if body.is_some() {
        builder = builder.header("content-type", "application/json");
    }
    let req = builder
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body,
    }
}

pub async fn get(url: &str) -> Answer {
    send(Method::GET, url, None).await
}

pub async fn delete(url: &str) -> Answer {
    send(Method::DELETE, url, None).await
}

pub async fn post_json(url: &str, value: &Value) -> Answer {
    send(Method::POST, url, Some(serde_json::to_vec(value).unwrap())).await
}

pub async fn post_raw(url: &str, body: &[u8]) -> Answer {
    send(Method::POST, url, Some(body.to_vec())).await
}
