//! Correctness checks on answers under load: a create's answer, a paste read back
//! against the text that was written, a list page's shape.

use std::borrow::Cow;

use serde::Deserialize;

use crate::keys::Key;
use crate::text::Texts;

#[derive(Deserialize)]
struct Created<'a> {
    #[serde(borrow)]
    paste_id: Cow<'a, str>,
    #[serde(borrow)]
    url: Cow<'a, str>,
}

#[derive(Deserialize)]
struct Paste<'a> {
    #[serde(borrow)]
    paste_id: Cow<'a, str>,
    #[serde(borrow)]
    text: Cow<'a, str>,
}

/// The id in a 201 answer to a create, if the answer is well formed: JSON with a
/// `paste_id` of `[0-9A-Za-z]` and a `url` that ends with it.
pub fn created_id(body: &[u8]) -> Result<String, &'static str> {
    let created: Created =
        serde_json::from_slice(body).map_err(|_| "create answer is not the expected JSON")?;
    let id = created.paste_id;
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err("create answer has a malformed paste_id");
    }
    if !created.url.ends_with(id.as_ref()) {
        return Err("create answer's url does not end with its paste_id");
    }
    Ok(id.into_owned())
}

/// Whether a 200 answer to `GET /pastes/{id}` holds exactly the text written.
pub fn paste_matches(body: &[u8], key: &Key, texts: &Texts) -> Result<(), &'static str> {
    let paste: Paste =
        serde_json::from_slice(body).map_err(|_| "read answer is not the expected JSON")?;
    if paste.paste_id != key.id {
        return Err("read answer has another paste_id");
    }
    if paste.text != texts.text(key.nonce, key.size) {
        return Err("read answer's text differs from the text written");
    }
    Ok(())
}

/// Whether a 200 answer to `GET /pastes?limit=N` is a JSON array of at most `limit`.
pub fn list_ok(body: &[u8], limit: usize) -> Result<(), &'static str> {
    let items: Vec<serde::de::IgnoredAny> =
        serde_json::from_slice(body).map_err(|_| "list answer is not a JSON array")?;
    if items.len() > limit {
        return Err("list answer is longer than the limit");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_answers_are_checked() {
        assert_eq!(
            created_id(br#"{"paste_id":"aB3","url":"http://h/pastes/aB3","created_at":"x"}"#)
                .unwrap(),
            "aB3"
        );
        assert!(created_id(br#"{"paste_id":"a-b","url":"http://h/pastes/a-b"}"#).is_err());
        assert!(created_id(br#"{"paste_id":"ab","url":"http://h/pastes/cd"}"#).is_err());
        assert!(created_id(b"http://h/pastes/ab\n").is_err());
    }

    #[test]
    fn reads_are_compared_with_the_text_written() {
        let texts = Texts::new(1, 100);
        let key = Key {
            id: "abc".into(),
            uri: http::Uri::from_static("/pastes/abc"),
            nonce: 9,
            size: 40,
        };
        let good = serde_json::json!({"paste_id": "abc", "text": texts.text(9, 40), "size": 40});
        assert!(paste_matches(good.to_string().as_bytes(), &key, &texts).is_ok());
        let mut altered = texts.text(9, 40);
        altered.pop();
        let bad = serde_json::json!({"paste_id": "abc", "text": altered});
        assert!(paste_matches(bad.to_string().as_bytes(), &key, &texts).is_err());
        let other = serde_json::json!({"paste_id": "abd", "text": texts.text(9, 40)});
        assert!(paste_matches(other.to_string().as_bytes(), &key, &texts).is_err());
    }

    #[test]
    fn list_pages_are_arrays_within_the_limit() {
        assert!(list_ok(b"[{},{}]", 2).is_ok());
        assert!(list_ok(b"[{},{},{}]", 2).is_err());
        assert!(list_ok(b"{}", 2).is_err());
    }
}
