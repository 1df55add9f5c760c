//! TCP handshakes still under way on the listeners' ports.
//!
//! Once a TCP accept queue is closed (a filter drops new SYNs, see
//! `aserve_http`'s `queue.rs`), the only connections that can still join
//! it are handshakes already under way: a SYN answered before the filter,
//! whose last ACK has not arrived yet, or was dropped because the queue
//! was full (the client believes it is connected and retransmits). The
//! kernel lists each of them in `/proc/net/tcp` and `/proc/net/tcp6` as a
//! `SYN_RECV` entry on the listener's local port; the master waits until
//! there are none left (or a bound passes) before the workers empty the
//! queue, so nothing joins it after they have.
//!
//! Reading those files is the whole of it: no netlink, no privileges. The
//! files list the process's network namespace, which is the listeners'.

/// `SYN_RECV` in the `st` column.
const SYN_RECV: &str = "03";

/// Handshakes under way to any of `ports`; `None` if neither file can be
/// read (no /proc), so the caller does not wait for what it cannot see.
pub(crate) fn pending(ports: &[u16]) -> Option<usize> {
    if ports.is_empty() {
        return Some(0);
    }
    let mut found = None;
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(text) = std::fs::read_to_string(file) {
            *found.get_or_insert(0) += count(&text, ports);
        }
    }
    found
}

/// Entries of a `/proc/net/tcp{,6}` table in `SYN_RECV` on a local port in
/// `ports`. Lines that do not parse (the header) are skipped.
fn count(table: &str, ports: &[u16]) -> usize {
    table
        .lines()
        .filter(|line| {
            let mut fields = line.split_whitespace();
            let (Some(_slot), Some(local), Some(_remote), Some(state)) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                return false;
            };
            state == SYN_RECV
                && local
                    .rsplit_once(':')
                    .and_then(|(_, port)| u16::from_str_radix(port, 16).ok())
                    .is_some_and(|port| ports.contains(&port))
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0
   1: 0100007F:1F90 0100007F:D2F0 03 00000000:00000000 02:00000058 00000000     0        0 0 1 0
   2: 0100007F:1F90 0100007F:D2F2 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0
   3: 0100007F:1F91 0100007F:D2F4 03 00000000:00000000 02:00000058 00000000     0        0 0 1 0
   4: 0100007F:D2F6 0100007F:1F90 02 00000000:00000000 01:00000058 00000000     0        0 4 1 0
garbage
";

    #[test]
    fn syn_recv_entries_on_our_ports_are_counted() {
        // 0x1F90 = 8080, 0x1F91 = 8081; the SYN_SENT entry (st 02) is a
        // client of port 8080, not a handshake to it.
        assert_eq!(count(TABLE, &[8080]), 1);
        assert_eq!(count(TABLE, &[8080, 8081]), 2);
        assert_eq!(count(TABLE, &[9000]), 0);
        let v6 = "   0: 00000000000000000000000001000000:1F90 00000000000000000000000001000000:D2F0 03 0:0 0:0 0 0 0 0\n";
        assert_eq!(count(v6, &[8080]), 1);
    }

    #[test]
    fn this_process_can_read_its_tables() {
        assert!(pending(&[1]).is_some());
        assert_eq!(pending(&[]), Some(0));
    }
}
