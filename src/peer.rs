//! Who is at the other end of a local (Unix-domain) socket, and who we are: the one place that
//! reads `SO_PEERCRED` and the effective uid, so that the daemon (which maps a connecting uid to
//! a principal) and the client (which refuses a daemon run by an untrusted uid) agree on what
//! the kernel says. Also who owns the other end of a loopback TCP connection (the HTTP
//! endpoint's clients), which Linux tells in `/proc/net/tcp`; and whether a file holding a
//! secret (a passphrase, HTTP credentials) is ours alone ([`read_private_file`]).

use std::os::fd::AsRawFd;

use crate::err;
use crate::error::Result;

/// The credentials of a connected peer, as the kernel recorded them: for a connecting client,
/// at `connect`; for a listening server, at `listen` (so a socket file cannot lie about who
/// serves it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Credentials {
    /// Process id.
    pub pid: i32,
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// Reads `SO_PEERCRED` of a connected Unix stream socket.
///
/// Errors: `KMSInternalException` naming the OS error when the kernel refuses.
#[allow(unsafe_code)]
pub(crate) fn credentials(socket: &impl AsRawFd) -> Result<Credentials> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: u32::MAX,
        gid: u32::MAX,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` is a live, writable `ucred` and `len` holds its exact size, so the kernel
    // writes at most `len` bytes into it; the fd is borrowed from an open socket for the call.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(err!(
            KMSInternalException,
            "SO_PEERCRED failed: {}",
            std::io::Error::last_os_error()
        ));
    }
    if len as usize != std::mem::size_of::<libc::ucred>() {
        return Err(err!(
            KMSInternalException,
            "SO_PEERCRED returned {len} bytes, not a ucred"
        ));
    }
    Ok(Credentials {
        pid: cred.pid,
        uid: cred.uid,
        gid: cred.gid,
    })
}

/// The uid owning the other end of a loopback TCP connection whose ends are `local` (ours)
/// and `peer` (theirs): the peer's socket is the one whose local address is `peer` and remote
/// address `local`. None when the kernel does not show it held by a process (the peer gone).
///
/// Asked of the kernel's socket diagnostics ([`sock_diag_uid`]), which look the one socket up
/// by its addresses: the cost is the same however many sockets the machine has. Only where
/// that interface is refused (a sandbox without `NETLINK_SOCK_DIAG`) are the socket tables read
/// whole ([`proc_table_uid`]), which costs tens of milliseconds once a machine holds tens of
/// thousands of sockets — and any local user can make it hold that many.
pub(crate) fn loopback_tcp_peer_uid(
    local: std::net::SocketAddr,
    peer: std::net::SocketAddr,
) -> Option<u32> {
    match sock_diag_uid(local, peer) {
        Ok(uid) => uid,
        Err(e) => {
            tracing::debug!(error = %e, "NETLINK_SOCK_DIAG refused; reading /proc/net/tcp");
            proc_table_uid(local, peer)
        }
    }
}

/// `SOCK_DIAG_BY_FAMILY` (linux/sock_diag.h): the request and answer type of the inet
/// diagnostics.
const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// The length of a `struct nlmsghdr`.
const NLMSG_HDR: usize = 16;
/// The length of a `struct inet_diag_req_v2`: family, protocol, extensions, padding, states
/// (4 bytes), then the socket's id ([`SOCKID_LEN`]).
const REQ_V2_LEN: usize = 8 + SOCKID_LEN;
/// The length of a `struct inet_diag_sockid`: source and destination ports (big-endian), source
/// and destination addresses (16 bytes each, network order), interface, cookie (2 × 4).
const SOCKID_LEN: usize = 48;
/// The offsets, in a `struct inet_diag_msg` (after family, state, timer, retransmits and the
/// socket's id), of `idiag_uid` and `idiag_inode`; and its length.
const MSG_UID: usize = 4 + SOCKID_LEN + 12;
const MSG_INODE: usize = MSG_UID + 4;
const MSG_LEN: usize = MSG_INODE + 4;

/// A `struct inet_diag_sockid` naming the socket whose local end is `local` and remote end
/// `remote`, with no interface and no cookie (`INET_DIAG_NOCOOKIE`).
fn sockid(local: std::net::SocketAddr, remote: std::net::SocketAddr) -> [u8; SOCKID_LEN] {
    fn address(a: std::net::SocketAddr) -> [u8; 16] {
        let mut out = [0u8; 16];
        match a.ip() {
            std::net::IpAddr::V4(ip) => out[..4].copy_from_slice(&ip.octets()),
            std::net::IpAddr::V6(ip) => out.copy_from_slice(&ip.octets()),
        }
        out
    }
    let mut id = [0u8; SOCKID_LEN];
    id[0..2].copy_from_slice(&local.port().to_be_bytes());
    id[2..4].copy_from_slice(&remote.port().to_be_bytes());
    id[4..20].copy_from_slice(&address(local));
    id[20..36].copy_from_slice(&address(remote));
    // idiag_if 0 (bytes 36..40); the cookie INET_DIAG_NOCOOKIE, all ones.
    id[40..48].fill(0xff);
    id
}

/// The uid of the process holding the TCP socket whose local end is `peer` and remote end
/// `local`, asked of the kernel's inet diagnostics (`NETLINK_SOCK_DIAG`, one exact lookup, as
/// `ss` makes). `Ok(None)`: no such socket, or one no process holds (inode 0: closed, or the
/// kernel's `TIME_WAIT` stand-in, which shows uid 0 whoever owned it; see [`tcp_table_uid`]),
/// or an answer for another socket than asked. `Err`: the interface is not there or refused.
#[allow(unsafe_code)]
pub(crate) fn sock_diag_uid(
    local: std::net::SocketAddr,
    peer: std::net::SocketAddr,
) -> std::io::Result<Option<u32>> {
    use std::os::fd::{FromRawFd, OwnedFd};
    // SAFETY: socket(2) takes no pointers; a non-negative result is a descriptor that only
    // this function holds, so `OwnedFd` may own (and close) it.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            libc::NETLINK_SOCK_DIAG,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: as above: `fd` is open and owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let family = if peer.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    let mut req = [0u8; NLMSG_HDR + REQ_V2_LEN];
    let len = req.len() as u32;
    req[0..4].copy_from_slice(&len.to_ne_bytes());
    req[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    req[6..8].copy_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
    req[8..12].copy_from_slice(&1u32.to_ne_bytes()); // sequence number
    let body = &mut req[NLMSG_HDR..];
    body[0] = family as u8;
    body[1] = libc::IPPROTO_TCP as u8;
    body[4..8].copy_from_slice(&u32::MAX.to_ne_bytes()); // every state
    let asked = sockid(peer, local);
    body[8..].copy_from_slice(&asked);
    // SAFETY: `req` is a live buffer of `req.len()` bytes the kernel only reads; the address is
    // the kernel's (a zeroed `sockaddr_nl` with its family set), passed with its exact size.
    let sent = unsafe {
        let mut to: libc::sockaddr_nl = std::mem::zeroed();
        to.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        libc::sendto(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            req.as_ptr().cast(),
            req.len(),
            0,
            (&to as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if sent < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // The kernel answers the request while it is sent: the answer is queued when `sendto`
    // returns, so the read never waits (and would say so rather than block the caller's loop).
    let mut answer = [0u8; 1024];
    // SAFETY: `answer` is a live, writable buffer of `answer.len()` bytes; the kernel writes at
    // most that many.
    let got = unsafe {
        libc::recv(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            answer.as_mut_ptr().cast(),
            answer.len(),
            libc::MSG_DONTWAIT,
        )
    };
    let got = usize::try_from(got).map_err(|_| std::io::Error::last_os_error())?;
    parse_sock_diag_answer(&answer[..got], &asked)
}

/// The uid in a `NETLINK_SOCK_DIAG` answer to a request for the socket `asked`, as
/// [`sock_diag_uid`] reads it.
fn parse_sock_diag_answer(answer: &[u8], asked: &[u8; SOCKID_LEN]) -> std::io::Result<Option<u32>> {
    let bad = |what: &str| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("sock_diag answered {what}"),
        )
    };
    let u16_at = |b: &[u8], at: usize| u16::from_ne_bytes([b[at], b[at + 1]]);
    let u32_at = |b: &[u8], at: usize| u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    if answer.len() < NLMSG_HDR + 4 {
        return Err(bad("too short a message"));
    }
    match u16_at(answer, 4) {
        t if t == libc::NLMSG_ERROR as u16 => {
            let errno = -(u32_at(answer, NLMSG_HDR) as i32);
            if errno == libc::ENOENT {
                Ok(None)
            } else {
                Err(std::io::Error::from_raw_os_error(errno))
            }
        }
        SOCK_DIAG_BY_FAMILY if answer.len() >= NLMSG_HDR + MSG_LEN => {
            let msg = &answer[NLMSG_HDR..];
            // The socket found must be the one asked for: the exact lookup may also find a
            // listener on the peer's port, whose remote end is empty.
            let id = &msg[4..4 + SOCKID_LEN];
            if id[..36] != asked[..36] {
                return Ok(None);
            }
            match u32_at(msg, MSG_INODE) {
                0 => Ok(None),
                _ => Ok(Some(u32_at(msg, MSG_UID))),
            }
        }
        t => Err(bad(&format!("message type {t}"))),
    }
}

/// [`loopback_tcp_peer_uid`] from the kernel's socket tables (`/proc/net/tcp`,
/// `/proc/net/tcp6`), read whole. None when the tables do not show it (not Linux, `/proc` not
/// mounted, the peer gone).
fn proc_table_uid(local: std::net::SocketAddr, peer: std::net::SocketAddr) -> Option<u32> {
    let table = if peer.is_ipv4() {
        "/proc/net/tcp"
    } else {
        "/proc/net/tcp6"
    };
    let text = std::fs::read_to_string(table).ok()?;
    tcp_table_uid(&text, local, peer)
}

/// The uid column of the row of a `/proc/net/tcp[6]` table whose local address is `peer` and
/// remote address `local`, if that row is a socket some process still holds.
///
/// A row whose inode is 0 is not: a socket its process has closed (an orphan) or the kernel's
/// stand-in for one in `TIME_WAIT` or an orphaned `FIN_WAIT2`, and the kernel writes uid 0 in
/// the stand-in's row whoever owned the socket. A client that sends a request and closes at
/// once leaves such a row before the daemon accepts it: trusting its uid would make any local
/// user root. So such a peer is nobody's (`None`), and its connection is refused.
fn tcp_table_uid(
    table: &str,
    local: std::net::SocketAddr,
    peer: std::net::SocketAddr,
) -> Option<u32> {
    let (want_local, want_remote) = (proc_address(peer), proc_address(local));
    table.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout
        // inode ...
        let (l, r) = (cols.get(1)?, cols.get(2)?);
        if !(l.eq_ignore_ascii_case(&want_local) && r.eq_ignore_ascii_case(&want_remote)) {
            return None;
        }
        let (uid, inode) = (cols.get(7)?, cols.get(9)?);
        match inode.parse::<u64>() {
            Ok(0) | Err(_) => None,
            Ok(_) => uid.parse().ok(),
        }
    })
}

/// An address as the kernel's tables write it: the address as 32-bit words in host (little-
/// endian) order, each as 8 hex digits, then `:` and the port as 4 hex digits.
fn proc_address(addr: std::net::SocketAddr) -> String {
    let words: Vec<u32> = match addr.ip() {
        std::net::IpAddr::V4(ip) => vec![u32::from_le_bytes(ip.octets())],
        std::net::IpAddr::V6(ip) => ip
            .octets()
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    };
    let mut out: String = words.iter().map(|w| format!("{w:08X}")).collect();
    out.push_str(&format!(":{:04X}", addr.port()));
    out
}

/// Reads a file that holds a secret: a regular file owned by the effective uid with no group
/// or other access (checked on the open descriptor), at most `max` bytes. The buffer is
/// zeroized when dropped and never grows (no copy is left in a freed allocation). Errors: why
/// the file is refused, for the caller to name the file and what it is for.
pub(crate) fn read_private_file(
    path: &std::path::Path,
    max: u64,
) -> std::result::Result<zeroize::Zeroizing<Vec<u8>>, String> {
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::fs::OpenOptionsExt;
    // Non-blocking: opening a FIFO for reading waits for a writer, so one planted at the path
    // (by whoever may write its directory) would hang the caller; opened at once, it is
    // refused below as not a regular file. Reading a regular file never blocks either way.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| format!("cannot be opened: {e}"))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot be examined: {e}"))?;
    if !meta.file_type().is_file() {
        return Err("is not a regular file".into());
    }
    let mode = meta.mode() & 0o7777;
    if meta.uid() != effective_uid() {
        return Err(format!(
            "is owned by uid {}, not by this process's uid {} (mode {mode:04o})",
            meta.uid(),
            effective_uid()
        ));
    }
    if mode & 0o077 != 0 {
        return Err(format!(
            "has mode {mode:04o}: it must not be accessible to group or others (chmod 600 it)"
        ));
    }
    let cap = usize::try_from(max).unwrap_or(usize::MAX).saturating_add(1);
    let mut data = zeroize::Zeroizing::new(Vec::with_capacity(cap));
    file.take(max + 1)
        .read_to_end(&mut data)
        .map_err(|e| format!("cannot be read: {e}"))?;
    if data.len() as u64 > max {
        return Err(format!("is longer than {max} bytes"));
    }
    Ok(data)
}

/// The effective uid of this process: whose files it creates, whom it acts for.
#[allow(unsafe_code)]
pub(crate) fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    #[test]
    fn a_loopback_tcp_peer_is_this_process_s_uid() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, peer) = listener.accept().unwrap();
        let local = server.local_addr().unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
        if !std::path::Path::new("/proc/net/tcp").exists() {
            eprintln!("skipped: /proc/net/tcp is not there");
            return;
        }
        assert_eq!(loopback_tcp_peer_uid(local, peer), Some(effective_uid()));
        // Another port is nobody's.
        let nobody = std::net::SocketAddr::new(peer.ip(), 1);
        assert_eq!(loopback_tcp_peer_uid(local, nobody), None);
        // Both ways of asking the kernel agree.
        assert_eq!(proc_table_uid(local, peer), Some(effective_uid()));
        assert_eq!(proc_table_uid(local, nobody), None);
        match sock_diag_uid(local, peer) {
            Ok(uid) => {
                assert_eq!(uid, Some(effective_uid()));
                assert_eq!(sock_diag_uid(local, nobody).unwrap(), None);
                // The server's own end is not the peer's: asked the other way round, the
                // answer is the server's socket (ours too), found by its own addresses.
                assert_eq!(sock_diag_uid(peer, local).unwrap(), Some(effective_uid()));
            }
            Err(e) => eprintln!("skipped the sock_diag half: NETLINK_SOCK_DIAG refused: {e}"),
        }
    }

    /// A `SOCK_DIAG_BY_FAMILY` answer as the kernel writes it, for `id`, with `uid` and
    /// `inode`.
    fn diag_answer(id: &[u8; SOCKID_LEN], uid: u32, inode: u32) -> Vec<u8> {
        let mut a = vec![0u8; NLMSG_HDR + MSG_LEN];
        let len = a.len() as u32;
        a[0..4].copy_from_slice(&len.to_ne_bytes());
        a[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        a[NLMSG_HDR] = libc::AF_INET as u8;
        a[NLMSG_HDR + 4..NLMSG_HDR + 4 + SOCKID_LEN].copy_from_slice(id);
        a[NLMSG_HDR + MSG_UID..NLMSG_HDR + MSG_UID + 4].copy_from_slice(&uid.to_ne_bytes());
        a[NLMSG_HDR + MSG_INODE..NLMSG_HDR + MSG_LEN].copy_from_slice(&inode.to_ne_bytes());
        a
    }

    #[test]
    fn a_sock_diag_answer_names_the_uid_only_of_the_socket_asked_for_while_a_process_holds_it() {
        let client: std::net::SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let server: std::net::SocketAddr = "127.0.0.1:4599".parse().unwrap();
        let asked = sockid(client, server);
        assert_eq!(&asked[0..2], &40000u16.to_be_bytes());
        assert_eq!(&asked[4..8], &[127, 0, 0, 1]);
        let read = |a: &[u8]| parse_sock_diag_answer(a, &asked).unwrap();
        assert_eq!(read(&diag_answer(&asked, 1000, 7)), Some(1000));
        // Closed, or the kernel's TIME_WAIT stand-in (uid 0 whoever owned it): nobody's.
        assert_eq!(read(&diag_answer(&asked, 0, 0)), None);
        // A listener on the client's port (its remote end empty) is not the client.
        let listener = sockid(client, "0.0.0.0:0".parse().unwrap());
        assert_eq!(read(&diag_answer(&listener, 0, 9)), None);
        // No such socket: the kernel's error message, -ENOENT.
        let mut missing = vec![0u8; NLMSG_HDR + 4];
        missing[4..6].copy_from_slice(&(libc::NLMSG_ERROR as u16).to_ne_bytes());
        missing[NLMSG_HDR..].copy_from_slice(&(-libc::ENOENT).to_ne_bytes());
        assert_eq!(read(&missing), None);
        // Any other error is the interface's, for the caller to fall back on the tables.
        missing[NLMSG_HDR..].copy_from_slice(&(-libc::EPERM).to_ne_bytes());
        assert!(parse_sock_diag_answer(&missing, &asked).is_err());
        assert!(parse_sock_diag_answer(&[0u8; 8], &asked).is_err());
    }

    #[test]
    fn a_fifo_where_a_secret_file_should_be_is_refused_at_once_not_waited_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("passphrase");
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: `c` is a NUL-terminated path that outlives the call.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
        assert_eq!(rc, 0, "mkfifo: {}", std::io::Error::last_os_error());
        let (tx, rx) = std::sync::mpsc::channel();
        // Without a writer, a blocking open would never return: the answer comes on a channel
        // so that the test fails rather than hangs.
        std::thread::spawn(move || {
            let _ = tx.send(read_private_file(&path, 1024).map(|_| ()));
        });
        let answer = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("read_private_file returned for a FIFO");
        assert_eq!(answer, Err("is not a regular file".to_owned()));
    }

    #[test]
    fn the_kernel_table_is_read_by_address_and_port_in_its_own_spelling() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
                     0: 0100007F:9C40 0100007F:11F7 01 00000000:00000000 00:00000000 00000000  1001        0 1 1\n\
                     1: 0100007F:11F7 0100007F:9C40 01 00000000:00000000 00:00000000 00000000  1000        0 2 1\n";
        let server: std::net::SocketAddr = "127.0.0.1:4599".parse().unwrap();
        let client: std::net::SocketAddr = "127.0.0.1:40000".parse().unwrap();
        assert_eq!(tcp_table_uid(table, server, client), Some(1001));
        assert_eq!(tcp_table_uid(table, client, server), Some(1000));
        let v6: std::net::SocketAddr = "[::1]:80".parse().unwrap();
        assert_eq!(proc_address(v6), "00000000000000000000000001000000:0050");
    }

    #[test]
    fn a_row_no_process_holds_is_nobody_s_whatever_uid_it_shows() {
        // The kernel's stand-in for a closed client socket (an orphaned FIN_WAIT2, 05, or
        // TIME_WAIT, 06) shows uid 0 and inode 0; a live row with the same addresses, later in
        // the table (the port reused), is the one that counts.
        let header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";
        let closed = "0: 0100007F:9C40 0100007F:11F7 05 00000000:00000000 03:00000F9C 00000000     0        0 0 3\n";
        let waiting = "1: 0100007F:9C40 0100007F:11F7 06 00000000:00000000 03:00000F9C 00000000     0        0 0 3\n";
        let live = "2: 0100007F:9C40 0100007F:11F7 01 00000000:00000000 00:00000000 00000000  1001        0 7 1\n";
        let server: std::net::SocketAddr = "127.0.0.1:4599".parse().unwrap();
        let client: std::net::SocketAddr = "127.0.0.1:40000".parse().unwrap();
        for gone in [closed, waiting] {
            assert_eq!(
                tcp_table_uid(&format!("{header}{gone}"), server, client),
                None
            );
        }
        let reused = format!("{header}{closed}{waiting}{live}");
        assert_eq!(tcp_table_uid(&reused, server, client), Some(1001));
    }

    #[test]
    fn a_client_that_closed_before_it_was_accepted_is_nobody_s() {
        if !std::path::Path::new("/proc/net/tcp").exists() {
            eprintln!("skipped: /proc/net/tcp is not there");
            return;
        }
        use std::io::Write;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let local = listener.local_addr().unwrap();
        let mut client = std::net::TcpStream::connect(local).unwrap();
        let peer = client.local_addr().unwrap();
        client.write_all(b"POST / HTTP/1.1\r\n\r\n").unwrap();
        drop(client);
        // The close is over once no process holds the client's socket: its row's inode reads
        // 0 (bounded: loopback delivers the FIN at once).
        let row = proc_address(peer);
        let closed = |text: &str| {
            text.lines().any(|l| {
                let c: Vec<&str> = l.split_whitespace().collect();
                c.get(1) == Some(&row.as_str()) && c.get(9) == Some(&"0")
            })
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !closed(&std::fs::read_to_string("/proc/net/tcp").unwrap()) {
            assert!(
                std::time::Instant::now() < deadline,
                "the client's socket never closed"
            );
            std::thread::yield_now();
        }
        assert_eq!(loopback_tcp_peer_uid(local, peer), None);
        assert_eq!(proc_table_uid(local, peer), None);
        if let Ok(uid) = sock_diag_uid(local, peer) {
            assert_eq!(uid, None, "sock_diag: a closed client is nobody's");
        }
        // The request it left is still there to be read: the daemon refuses its connection
        // for its owner, not for want of data.
        let (_server, accepted) = listener.accept().unwrap();
        assert_eq!(accepted, peer);
    }

    #[test]
    fn a_socket_pair_reports_this_process() {
        let (a, _b) = UnixStream::pair().unwrap();
        let peer = credentials(&a).unwrap();
        assert_eq!(peer.pid as u32, std::process::id());
        assert_eq!(peer.uid, effective_uid());
    }

    #[test]
    fn a_non_socket_is_a_typed_error() {
        let f = std::fs::File::open("/proc/self/stat").unwrap();
        let e = credentials(&f).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::KMSInternalException);
        assert!(e.message().contains("SO_PEERCRED"), "{e}");
    }
}
