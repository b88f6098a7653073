//! Reading what a launched process announces on stdout (the `pastebin` binary prints
//! `LISTENING <addr>` per component, and `pastebin up` the balancer's URL).

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout};

/// Longest a process may take to announce itself (it may be built or started on a
/// busy machine).
pub const ANNOUNCE_LIMIT: Duration = Duration::from_secs(60);

/// The stdout of a child, read line by line.
pub struct Announcements {
    lines: Lines<BufReader<ChildStdout>>,
}

impl Announcements {
    /// Takes `child`'s piped stdout.
    pub fn of(child: &mut Child) -> Announcements {
        let stdout = child.stdout.take().expect("stdout must be piped");
        Announcements {
            lines: BufReader::new(stdout).lines(),
        }
    }

    /// The next line for which `wanted` holds, within [`ANNOUNCE_LIMIT`]; panics if the
    /// process ends first.
    pub async fn next_matching(&mut self, wanted: impl Fn(&str) -> bool) -> String {
        let lines = &mut self.lines;
        tokio::time::timeout(ANNOUNCE_LIMIT, async {
            while let Some(line) = lines.next_line().await.expect("read stdout") {
                if wanted(&line) {
                    return line;
                }
            }
            panic!("the process ended without announcing itself");
        })
        .await
        .unwrap_or_else(|_| panic!("no announcement within {ANNOUNCE_LIMIT:?}"))
    }

    /// The address of the next `LISTENING <addr>` line.
    pub async fn listening(&mut self) -> String {
        let line = self
            .next_matching(|line| line.starts_with("LISTENING "))
            .await;
        line["LISTENING ".len()..].to_owned()
    }
}

/// The first line of `child`'s stdout for which `wanted` holds (takes its stdout).
pub async fn announced(child: &mut Child, wanted: impl Fn(&str) -> bool) -> String {
    Announcements::of(child).next_matching(wanted).await
}
