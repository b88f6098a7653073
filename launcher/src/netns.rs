//! Network namespaces, a bridge and veth pairs, made and removed with iproute2's
//! `ip` (the tool every Linux admin knows, so what the launcher did can be read back
//! with `ip netns list` / `ip link`).

use std::process::Command;

/// Runs `ip ARGS`; its stderr becomes the error.
pub fn ip(args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|err| format!("cannot run `ip` (iproute2): {err}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Makes bridge `name` with `cidr` (e.g. 198.18.3.1/24) in this namespace, up.
pub fn add_bridge(name: &str, cidr: &str) -> Result<(), String> {
    ip(&["link", "add", name, "type", "bridge"])?;
    ip(&["addr", "add", cidr, "dev", name])?;
    ip(&["link", "set", name, "up"])?;
    Ok(())
}

/// Makes namespace `ns`, joined to `bridge` by a veth pair (`veth` on this side,
/// `eth0` inside) that carries `cidr`; loopback up inside.
pub fn add_host(ns: &str, veth: &str, bridge: &str, cidr: &str) -> Result<(), String> {
    ip(&["netns", "add", ns])?;
    ip(&[
        "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns,
    ])?;
    ip(&["link", "set", veth, "master", bridge, "up"])?;
    ip(&["-n", ns, "addr", "add", cidr, "dev", "eth0"])?;
    ip(&["-n", ns, "link", "set", "eth0", "up"])?;
    ip(&["-n", ns, "link", "set", "lo", "up"])?;
    Ok(())
}

/// Named network namespaces.
pub fn namespaces() -> Vec<String> {
    ip(&["netns", "list"])
        .unwrap_or_default()
        .lines()
        // "name (id: 3)" or just "name".
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

/// Links of this namespace.
pub fn links() -> Vec<String> {
    ip(&["-o", "link", "show"])
        .unwrap_or_default()
        .lines()
        .filter_map(link_name)
        .collect()
}

/// The name in a `ip -o link show` line: `5: pastebin-003-02@if2: <...`.
fn link_name(line: &str) -> Option<String> {
    let name = line.split(": ").nth(1)?;
    Some(name.split('@').next().unwrap_or(name).to_owned())
}

/// IPv4 addresses (with prefix) configured in this namespace.
pub fn addresses() -> Vec<String> {
    ip(&["-o", "-4", "addr", "show"])
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            words.find(|w| *w == "inet")?;
            words.next().map(str::to_owned)
        })
        .collect()
}

/// Processes in namespace `ns`.
pub fn pids(ns: &str) -> Vec<u32> {
    ip(&["netns", "pids", ns])
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// The command that runs `program` inside namespace `ns`. `ip netns exec` execs the
/// program in place, so the pid the caller gets is the program's.
pub fn exec_in(ns: &str, program: &std::path::Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new("ip");
    cmd.args(["netns", "exec", ns]).arg(program);
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_names_drop_the_peer_suffix() {
        assert_eq!(
            link_name("7: pastebin-003-02@if2: <BROADCAST,MULTICAST,UP> mtu 1500"),
            Some("pastebin-003-02".into())
        );
        assert_eq!(
            link_name("1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536"),
            Some("lo".into())
        );
    }
}
