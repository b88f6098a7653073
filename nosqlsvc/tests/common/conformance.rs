//! The backend conformance suite over `TextStore`: every backend must pass all of it.

use std::collections::HashSet;
use std::sync::Arc;

use nosqlsvc::api::PastePath;
use nosqlsvc::store::TextStore;

/// A well-formed path no backend will have made (generated paths are 16 or 24 chars).
pub const MISSING: &str = "no-such-path_0";

/// Well-formed paths shaped like real ones that name nothing: a 24-hex ObjectId (the
/// MongoDB backend queries it) and a 16-character embedded-style path.
pub const MISSING_LOOKALIKES: [&str; 2] = ["000000000000000000000000", "AAAAAAAAAAAAAAAA"];

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
    assert!(PastePath::is_valid(&path), "bad path {path:?}");
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
    for missing in MISSING_LOOKALIKES {
        assert_eq!(store.get(missing).await.unwrap(), None, "{missing}");
        assert!(!store.delete(missing).await.unwrap(), "{missing}");
    }
}

/// A full batch (1000 paths, the API's cap): texts interleaved with missing paths of
/// every shape, duplicates, in an order unrelated to insertion.
pub async fn get_many_full_batch_with_missing<S: TextStore>(store: Arc<S>) {
    let mut stored = Vec::new();
    for i in 0..300 {
        let text = format!("batch text {i}");
        stored.push((store.insert(text.clone()).await.unwrap(), text));
    }
    let mut asked = Vec::new();
    let mut want = Vec::new();
    for i in 0..nosqlsvc::api::MAX_BATCH_PATHS {
        match i % 4 {
            0 => {
                asked.push(MISSING_LOOKALIKES[i % 8 / 4].to_owned());
                want.push(None);
            }
            1 => {
                asked.push(MISSING.to_owned());
                want.push(None);
            }
            _ => {
                let (path, text) = &stored[(i * 7919) % stored.len()];
                asked.push(path.clone());
                want.push(Some(text.clone()));
            }
        }
    }
    assert_eq!(store.get_many(&asked).await.unwrap(), want);
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

/// The largest text a JSON body within the default limit can carry: the limit minus
/// the 11 bytes of `{"text":""}`.
pub const HUGE_TEXT_BYTES: usize = nosqlsvc::DEFAULT_MAX_BODY_BYTES - 11;

pub async fn large_texts<S: TextStore>(store: Arc<S>) {
    let ascii = "0123456789abcdef".repeat(512 * 1024 / 16); // exactly 512 KiB
    let multibyte = "😀".repeat(512 * 1024 / 4); // 512 KiB of 4-byte chars
    let over = "x".repeat(600 * 1024); // a bit over, the store does not cap
    // Near the service's default body limit (8 MiB): far above any edge limit, still
    // well under MongoDB's 16 MiB document cap.
    let huge = "y".repeat(HUGE_TEXT_BYTES);
    let mut paths = Vec::new();
    for text in [&ascii, &multibyte, &over, &huge] {
        let path = store.insert(text.clone()).await.unwrap();
        assert_eq!(store.get(&path).await.unwrap().as_ref(), Some(text));
        paths.push(path);
    }
    let got = store.get_many(&paths).await.unwrap();
    assert_eq!(
        got,
        vec![Some(ascii), Some(multibyte), Some(over), Some(huge)]
    );
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

/// `ready` answers `Ok` on an open store, also while writes are in flight (a busy
/// store is still ready), and a store that said so serves a write and a read.
pub async fn ready_when_open<S: TextStore>(store: Arc<S>) {
    if let Err(err) = store.ready().await {
        panic!("an open store must be ready: {err:?}");
    }
    let writes: Vec<_> = (0..50)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.insert(format!("busy {i}")).await })
        })
        .collect();
    for _ in 0..5 {
        if let Err(err) = store.ready().await {
            panic!("a store busy writing must be ready: {err:?}");
        }
    }
    for write in writes {
        write.await.unwrap().unwrap();
    }
    let path = store.insert("after ready".to_owned()).await.unwrap();
    assert_eq!(
        store.get(&path).await.unwrap().as_deref(),
        Some("after ready")
    );
}

/// The sweeper's calls: every insert starts unsettled, `settle` and `delete_many`
/// take texts off that list, `count` follows.
pub async fn unsettled_settle_and_delete_many<S: TextStore>(store: Arc<S>) {
    let start = store.count().await.unwrap();
    let a = store.insert("a".to_owned()).await.unwrap();
    let b = store.insert("b".to_owned()).await.unwrap();
    let c = store.insert("c".to_owned()).await.unwrap();
    assert_eq!(store.count().await.unwrap(), start + 3);
    let later = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        + 3600;
    let listed: HashSet<String> = store
        .unsettled(later, 1000)
        .await
        .unwrap()
        .into_iter()
        .collect();
    for p in [&a, &b, &c] {
        assert!(listed.contains(p), "{p} not listed as unsettled");
    }
    // Nothing was inserted before 1970; the limit holds.
    assert!(store.unsettled(0, 1000).await.unwrap().is_empty());
    assert_eq!(store.unsettled(later, 2).await.unwrap().len(), 2);

    let mut settle = vec![a.clone(), MISSING.to_owned()];
    settle.extend(MISSING_LOOKALIKES.iter().map(|s| s.to_string()));
    assert_eq!(store.settle(&settle).await.unwrap(), 1);
    assert_eq!(store.settle(std::slice::from_ref(&a)).await.unwrap(), 0);
    let listed = store.unsettled(later, 1000).await.unwrap();
    assert!(!listed.contains(&a));
    assert!(listed.contains(&b) && listed.contains(&c));
    assert_eq!(store.get(&a).await.unwrap().as_deref(), Some("a"));

    let mut doomed = vec![b.clone(), c.clone(), MISSING.to_owned()];
    doomed.extend(MISSING_LOOKALIKES.iter().map(|s| s.to_string()));
    assert_eq!(store.delete_many(&doomed).await.unwrap(), 2);
    assert_eq!(store.delete_many(&doomed).await.unwrap(), 0);
    assert_eq!(store.delete_many(&[]).await.unwrap(), 0);
    let listed = store.unsettled(later, 1000).await.unwrap();
    assert!(!listed.contains(&b) && !listed.contains(&c));
    assert_eq!(store.get(&b).await.unwrap(), None);
    assert_eq!(store.count().await.unwrap(), start + 1);
    // A single delete takes a text off the list too.
    let d = store.insert("d".to_owned()).await.unwrap();
    assert!(store.delete(&d).await.unwrap());
    assert!(!store.unsettled(later, 1000).await.unwrap().contains(&d));
}
