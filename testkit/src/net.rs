//! Addresses and sockets: a loopback address that refuses connections without
//! racing parallel tests for its port, and the kernel's view of the TCP sockets on a
//! port (to prove that a server closed what its clients abandoned).

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket};

/// A loopback port bound without listening: connections to it are refused, and since
/// it stays bound no other test can take it, for as long as this lives. It can turn
/// into a listener on the same port ([`Refusing::listen`]): a server "coming back".
pub struct Refusing {
    socket: TcpSocket,
    pub addr: SocketAddr,
}

impl Refusing {
    pub fn new() -> Refusing {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = socket.local_addr().unwrap();
        Refusing { socket, addr }
    }

    /// `host:port`.
    pub fn authority(&self) -> String {
        self.addr.to_string()
    }

    /// Starts listening on the reserved port.
    pub fn listen(self) -> TcpListener {
        self.socket.listen(1024).unwrap()
    }
}

impl Default for Refusing {
    fn default() -> Self {
        Self::new()
    }
}

/// A loopback port outside the kernel's ephemeral range (never handed out for port 0
/// or outgoing connections, so no parallel test takes it by chance) and free now:
/// for a *process* that must come back on the address it had after being killed.
/// Avoids the ports people use for manual runs (3000-5999).
pub fn port_outside_ephemeral_range() -> u16 {
    ports_outside_ephemeral_range(1)
}

/// The first of `n` consecutive loopback ports outside the kernel's ephemeral range,
/// all free now (see [`port_outside_ephemeral_range`]): for webservers numbered from a
/// base port. No two calls in this process hand out the same port, so tests running
/// side by side in one binary never pick the same one between the check here and
/// their process binding it; another test binary picking it in that window is what
/// the random start makes unlikely (and the process that loses fails loudly at
/// startup, never silently).
pub fn ports_outside_ephemeral_range(n: u16) -> u16 {
    static HANDED_OUT: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    assert!(n >= 1);
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .unwrap_or_else(|_| "32768 60999".into());
    let low: u16 = range
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(32768);
    let (from, to) = (10_000u16, low.max(10_000 + n));
    let seed = std::process::id() as u64
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
    let span = u64::from(to - from - n + 1);
    let mut handed_out = HANDED_OUT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for i in 0..span {
        let first = from + ((seed.wrapping_mul(2654435761).wrapping_add(i * 7919)) % span) as u16;
        let block = first..first + n;
        if block.clone().all(|port| {
            !handed_out.contains(&port) && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
        }) {
            handed_out.extend(block);
            return first;
        }
    }
    panic!("no {n} free consecutive ports in {from}..{to}");
}

/// TCP states, as the kernel numbers them in `/proc/net/tcp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpState {
    Established,
    SynSent,
    SynRecv,
    FinWait1,
    FinWait2,
    TimeWait,
    Close,
    /// The peer closed; this side has not. A server socket left here leaks.
    CloseWait,
    LastAck,
    Listen,
    Closing,
    Other(u8),
}

impl TcpState {
    fn from_hex(hex: &str) -> TcpState {
        match u8::from_str_radix(hex, 16).unwrap_or(0) {
            0x01 => TcpState::Established,
            0x02 => TcpState::SynSent,
            0x03 => TcpState::SynRecv,
            0x04 => TcpState::FinWait1,
            0x05 => TcpState::FinWait2,
            0x06 => TcpState::TimeWait,
            0x07 => TcpState::Close,
            0x08 => TcpState::CloseWait,
            0x09 => TcpState::LastAck,
            0x0A => TcpState::Listen,
            0x0B => TcpState::Closing,
            other => TcpState::Other(other),
        }
    }

    /// Whether a socket in this state still holds a file descriptor of its owner.
    /// (TIME_WAIT, FIN_WAIT2 and LAST_ACK linger in the kernel after `close`.)
    pub fn holds_a_descriptor(self) -> bool {
        matches!(
            self,
            TcpState::Established | TcpState::CloseWait | TcpState::SynRecv | TcpState::Closing
        )
    }
}

/// One IPv4 TCP socket whose local port is `port`: its state and its peer.
#[derive(Debug, Clone)]
pub struct SocketOnPort {
    pub state: TcpState,
    pub peer: SocketAddr,
}

/// The IPv4 TCP sockets whose local port is `port` (a server's listener and every
/// connection it accepted), from `/proc/net/tcp`. Linux only: panics without it
/// rather than report nothing.
pub fn sockets_on_port(port: u16) -> Vec<SocketOnPort> {
    let table = std::fs::read_to_string("/proc/net/tcp")
        .expect("/proc/net/tcp is needed to see the server's sockets");
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let local = fields.nth(1)?;
            let remote = fields.next()?;
            let state = fields.next()?;
            let peer = parse_addr(remote)?;
            (parse_addr(local)?.port() == port).then(|| SocketOnPort {
                state: TcpState::from_hex(state),
                peer,
            })
        })
        .filter(|s| s.peer.port() != 0 || s.state == TcpState::Listen)
        .collect()
}

/// `0100007F:1F90` -> 127.0.0.1:8080.
fn parse_addr(hex: &str) -> Option<SocketAddr> {
    let (ip, port) = hex.split_once(':')?;
    let ip = u32::from_str_radix(ip, 16).ok()?;
    let port = u16::from_str_radix(port, 16).ok()?;
    Some(SocketAddr::from((u32::from_be(ip).to_be_bytes(), port)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_addresses() {
        assert_eq!(
            parse_addr("0100007F:1F90"),
            Some("127.0.0.1:8080".parse().unwrap())
        );
    }

    #[tokio::test]
    async fn a_refusing_address_refuses_then_listens() {
        let refusing = Refusing::new();
        let addr = refusing.addr;
        let err = tokio::net::TcpStream::connect(addr).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
        let listener = refusing.listen();
        let (_client, accepted) =
            tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
        let (_server, peer) = accepted.unwrap();
        let states = sockets_on_port(addr.port());
        assert!(
            states
                .iter()
                .any(|s| s.state == TcpState::Established && s.peer == peer),
            "{states:?}"
        );
    }
}
