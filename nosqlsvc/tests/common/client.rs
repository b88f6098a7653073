//! The testkit client, with the shorthands these suites use: every answer's status,
//! headers and JSON body, JSON bodies sent as `application/json`.

use bytes::Bytes;
use http::Method;
use serde_json::Value;

pub use testkit::{Answer, Client};

/// A pooled client; pools are tied to the runtime that made them, so one per test.
pub fn new_client() -> Client {
    Client::new()
}

/// Sends one request with a fresh client.
pub async fn send(method: Method, url: &str, body: Option<Vec<u8>>) -> Answer {
    send_with(&new_client(), method, url, body).await
}

/// Sends one request through `client`; a body goes as `application/json`.
pub async fn send_with(
    client: &Client,
    method: Method,
    url: &str,
    body: Option<Vec<u8>>,
) -> Answer {
    client
        .send(
            method,
            url,
            body.map(|b| ("application/json", Bytes::from(b))),
        )
        .await
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
