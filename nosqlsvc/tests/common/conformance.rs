//! The backend conformance suite over `TextStore`: every backend must pass all of it.

use std::collections::HashSet;
use std::sync::Arc;

use nosqlsvc::api::valid_path;
use nosqlsvc::store::TextStore;

/// A well-formed path no backend will have made (generated paths are 16 or 24 chars).
pub const MISSING: &str = "no-such-path_0";

/// Texts that trip naive encoders: emoji, CJK, RTL, NUL and control characters.
pub fn unicode_samples() -> Vec<String> {
    vec![
        "emoji: 😀🎉👩‍👩‍👧‍👦 🇫🇷".to_owned(),
        "中文字符，日本語のテキスト、한국어".to_owned(),
        "עברית مرحبا بالعالم \u{200F}rtl\u{200E}".to_owned(),
        "nul \0 inside \0\0 and at the end\0".to_owned(),
        "controls \u{1}\u{7f}\t\r\n \"quotes\" \\back\\slash </script>".to_owned(),
        "\u{FEFF}bom, \u{10FFFF} max scalar, e\u{301} combining".to_owned(),
    ]
}

pub async fn insert_then_get<S: TextStore>(store: Arc<S>) {
    let path = store.insert("hello world".to_owned()).await.unwrap();
    assert!(valid_path(&path), "bad path {path:?}");
    assert_eq!(
        store.get(&path).await.unwrap().as_deref(),
        Some("hello world")
    );
    assert_eq!(store.get(MISSING).await.unwrap(), None);
    let other = store.insert("hello world".to_owned()).await.unwrap();
    assert_ne!(path, other, "same text must still get a new path");
}

pub async fn get_many_keeps_order_and_missing<S: TextStore>(store: Arc<S>) {
    let a = store.insert("a".to_owned()).await.unwrap();
    let b = store.insert("b".to_owned()).await.unwrap();
    let c = store.insert("c".to_owned()).await.unwrap();
    let asked = vec![
        c.clone(),
        MISSING.to_owned(),
        a.clone(),
        b.clone(),
        a.clone(),
    ];
    let got = store.get_many(&asked).await.unwrap();
    let want: Vec<Option<String>> = vec![
        Some("c".into()),
        None,
        Some("a".into()),
        Some("b".into()),
        Some("a".into()),
    ];
    assert_eq!(got, want);
    assert_eq!(
        store.get_many(&[]).await.unwrap(),
        Vec::<Option<String>>::new()
    );
    let only_missing = store.get_many(&[MISSING.to_owned()]).await.unwrap();
    assert_eq!(only_missing, vec![None]);
}

pub async fn delete_removes<S: TextStore>(store: Arc<S>) {
    let keep = store.insert("keep".to_owned()).await.unwrap();
    let gone = store.insert("gone".to_owned()).await.unwrap();
    assert!(store.delete(&gone).await.unwrap());
    assert_eq!(store.get(&gone).await.unwrap(), None);
    assert!(
        !store.delete(&gone).await.unwrap(),
        "second delete finds nothing"
    );
    assert!(!store.delete(MISSING).await.unwrap());
    let got = store.get_many(&[gone.clone(), keep.clone()]).await.unwrap();
    assert_eq!(got, vec![None, Some("keep".to_owned())]);
}

pub async fn large_texts<S: TextStore>(store: Arc<S>) {
    let ascii = "0123456789abcdef".repeat(512 * 1024 / 16); // exactly 512 KiB
    let multibyte = "😀".repeat(512 * 1024 / 4); // 512 KiB of 4-byte chars
    let over = "x".repeat(600 * 1024); // a bit over, the store does not cap
    let mut paths = Vec::new();
    for text in [&ascii, &multibyte, &over] {
        let path = store.insert(text.clone()).await.unwrap();
        assert_eq!(store.get(&path).await.unwrap().as_ref(), Some(text));
        paths.push(path);
    }
    let got = store.get_many(&paths).await.unwrap();
    assert_eq!(got, vec![Some(ascii), Some(multibyte), Some(over)]);
}

pub async fn unicode_texts<S: TextStore>(store: Arc<S>) {
    let samples = unicode_samples();
    let mut paths = Vec::new();
    for text in &samples {
        let path = store.insert(text.clone()).await.unwrap();
        assert_eq!(store.get(&path).await.unwrap().as_ref(), Some(text));
        paths.push(path);
    }
    let got = store.get_many(&paths).await.unwrap();
    let want: Vec<Option<String>> = samples.into_iter().map(Some).collect();
    assert_eq!(got, want);
}

pub async fn concurrent_inserts<S: TextStore>(store: Arc<S>) {
    const N: usize = 200;
    let tasks: Vec<_> = (0..N)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let text = format!("concurrent paste number {i}");
                let path = store.insert(text.clone()).await.unwrap();
                (path, text)
            })
        })
        .collect();
    let mut written = Vec::with_capacity(N);
    for task in tasks {
        written.push(task.await.unwrap());
    }
    let distinct: HashSet<&String> = written.iter().map(|(p, _)| p).collect();
    assert_eq!(distinct.len(), N, "paths must be distinct");
    let paths: Vec<String> = written.iter().map(|(p, _)| p.clone()).collect();
    let got = store.get_many(&paths).await.unwrap();
    for ((path, text), got) in written.iter().zip(got) {
        assert_eq!(got.as_ref(), Some(text), "text under {path}");
    }
}

pub async fn ready_when_open<S: TextStore>(store: Arc<S>) {
    store.ready().await.unwrap();
}
