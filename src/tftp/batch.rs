//! DATA packets of one window sent together with UDP GSO (UDP_SEGMENT).
//!
//! A window of 64 blocks is 64 `sendto` calls, and at 1468-byte blocks that per-packet cost
//! is what limits a windowed transfer. With GSO the packets of a window sit back to back in
//! one buffer and the kernel cuts it into datagrams of `segment` bytes: one `sendmsg` per
//! up to [`MAX_SEGMENTS`] packets. Only the last datagram may be shorter, which is exactly
//! the last block of a file. Where the kernel or device refuses GSO, the batch falls back
//! to one `sendto` per packet for the rest of the transfer.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use nix::errno::Errno;
use nix::sys::socket::{ControlMessage, MsgFlags, SockaddrStorage, sendmsg};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Most datagrams the kernel accepts in one GSO send (UDP_MAX_SEGMENTS).
pub const MAX_SEGMENTS: usize = 64;
/// Most bytes in one GSO send: it must fit one (unfragmented-size) IP datagram's payload.
pub const MAX_BYTES: usize = 65_000;

/// Packets of `segment` bytes (the last possibly shorter) waiting to be sent as one.
#[derive(Debug)]
pub struct Batch {
    buf: Vec<u8>,
    segment: usize,
    count: usize,
    max_count: usize,
    gso: bool,
}

impl Batch {
    /// A batch for DATA packets of `segment` bytes (header plus blksize).
    pub fn new(segment: usize) -> Batch {
        let max_count = (MAX_BYTES / segment.max(1)).clamp(1, MAX_SEGMENTS);
        Batch {
            buf: Vec::with_capacity(segment * max_count),
            segment,
            count: 0,
            max_count,
            gso: true,
        }
    }

    /// Room for the next packet of `len` bytes at the end of the buffer, to fill in place.
    pub fn push(&mut self, len: usize) -> &mut [u8] {
        let start = self.buf.len();
        self.buf.resize(start + len, 0);
        self.count += 1;
        &mut self.buf[start..]
    }

    /// Whether the batch must go out before another packet is added: it is full, or its
    /// last packet is short (GSO allows a short segment only at the end).
    pub fn is_closed(&self) -> bool {
        self.count >= self.max_count || self.buf.len() < self.count * self.segment
    }

    /// Sends what is queued to `peer` and empties the batch.
    pub async fn flush(&mut self, sock: &UdpSocket, peer: SocketAddr) -> io::Result<()> {
        if self.count > 1 && self.gso {
            match self.send_gso(sock, peer).await {
                Ok(()) => {
                    self.clear();
                    return Ok(());
                }
                // No GSO here (old kernel, device without checksum offload): stop trying.
                Err(e) if e.raw_os_error().is_some_and(is_gso_refusal) => {
                    tracing::debug!(error = %e, "tftp: UDP GSO unavailable, sending packet by packet");
                    self.gso = false;
                }
                Err(e) => return Err(e),
            }
        }
        for packet in self.buf.chunks(self.segment) {
            sock.send_to(packet, peer).await?;
        }
        self.clear();
        Ok(())
    }

    fn clear(&mut self) {
        self.buf.clear();
        self.count = 0;
    }

    async fn send_gso(&self, sock: &UdpSocket, peer: SocketAddr) -> io::Result<()> {
        let addr = SockaddrStorage::from(peer);
        let segment = self.segment as u16;
        let iov = [io::IoSlice::new(&self.buf)];
        sock.async_io(Interest::WRITABLE, || {
            let cmsg = [ControlMessage::UdpGsoSegments(&segment)];
            sendmsg(
                sock.as_raw_fd(),
                &iov,
                &cmsg,
                MsgFlags::empty(),
                Some(&addr),
            )
            .map(drop)
            .map_err(io::Error::from)
        })
        .await
    }
}

fn is_gso_refusal(errno: i32) -> bool {
    [
        Errno::EIO,
        Errno::EINVAL,
        Errno::ENOPROTOOPT,
        Errno::EOPNOTSUPP,
    ]
    .iter()
    .any(|e| *e as i32 == errno)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closes_when_full_or_short() {
        let mut b = Batch::new(1472);
        assert_eq!(b.max_count, 44);
        b.push(1472).fill(1);
        assert!(!b.is_closed());
        b.push(100);
        assert!(b.is_closed(), "a short packet must end the batch");
        let mut b = Batch::new(516);
        for _ in 0..MAX_SEGMENTS {
            assert!(!b.is_closed());
            b.push(516);
        }
        assert!(b.is_closed());
    }

    #[tokio::test]
    async fn sends_segments_as_separate_datagrams() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut b = Batch::new(6);
        b.push(6).copy_from_slice(b"first.");
        b.push(6).copy_from_slice(b"second");
        b.push(3).copy_from_slice(b"end");
        b.flush(&tx, rx.local_addr().unwrap()).await.unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        for _ in 0..3 {
            let n = rx.recv(&mut buf).unwrap();
            got.push(buf[..n].to_vec());
        }
        assert_eq!(
            got,
            [b"first.".to_vec(), b"second".to_vec(), b"end".to_vec()]
        );
        assert_eq!(b.count, 0);
    }
}
