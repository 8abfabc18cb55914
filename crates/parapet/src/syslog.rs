//! The syslog listener of `serve --syslog-listen ADDR`: UDP (one message a datagram) and TCP
//! (one message a line, or RFC 6587 octet counting) on the same address. Messages go through a
//! bounded queue to a batcher that hands them to the monitoring service; when the queue is full,
//! UDP messages are dropped and counted, TCP senders wait.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::sync::mpsc;

/// Longest message read (longer ones are cut).
const MAX_LINE: usize = 64 * 1024;
/// Messages per batch.
const BATCH: usize = 1000;

/// Binds UDP and TCP on `addr` and serves until `stop` turns true.
pub async fn start(
    addr: SocketAddr,
    monitor: Arc<parapet_monitor::Monitor>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let udp = tokio::net::UdpSocket::bind(addr)
        .await
        .with_context(|| format!("cannot listen for syslog on UDP {addr}"))?;
    let tcp = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for syslog on TCP {addr}"))?;
    println!(
        "Syslog receiver on {} (UDP) and {} (TCP)",
        udp.local_addr()?,
        tcp.local_addr()?
    );
    let (tx, rx) = mpsc::channel::<(String, String)>(20_000);
    let udp_tx = tx.clone();
    let mut s1 = stop.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; MAX_LINE];
        loop {
            tokio::select! {
                r = udp.recv_from(&mut buf) => match r {
                    Ok((n, peer)) => {
                        let text = String::from_utf8_lossy(buf.get(..n).unwrap_or_default()).into_owned();
                        if udp_tx.try_send((peer.ip().to_string(), text)).is_err() {
                            metrics::counter!("parapet_syslog_dropped_total").increment(1);
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "syslog UDP receive failed"),
                },
                _ = s1.changed() => return,
            }
        }
    });
    let mut s2 = stop.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                r = tcp.accept() => match r {
                    Ok((conn, peer)) => {
                        tokio::spawn(read_tcp(conn, peer, tx.clone()));
                    }
                    Err(e) => tracing::warn!(error = %e, "syslog TCP accept failed"),
                },
                _ = s2.changed() => return,
            }
        }
    });
    Ok(tokio::spawn(batcher(rx, monitor, stop)))
}

async fn read_tcp(
    conn: tokio::net::TcpStream,
    peer: SocketAddr,
    tx: mpsc::Sender<(String, String)>,
) {
    let ip = peer.ip().to_string();
    let mut reader = BufReader::new(conn);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        // RFC 6587 octet counting ("LEN <PRI>…") or a line.
        let n = match (&mut reader)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut buf)
            .await
        {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let _ = n;
        let text = String::from_utf8_lossy(&buf).into_owned();
        let text = match text.split_once(' ') {
            Some((len, rest))
                if !len.is_empty()
                    && len.bytes().all(|b| b.is_ascii_digit())
                    && rest.starts_with('<') =>
            {
                // Octet counting: take exactly LEN bytes (already read as far as the newline).
                let want: usize = len.parse().unwrap_or(0);
                let mut msg = rest.as_bytes().to_vec();
                if msg.len() < want && want <= MAX_LINE {
                    let mut more = vec![0u8; want - msg.len()];
                    if reader.read_exact(&mut more).await.is_err() {
                        return;
                    }
                    msg.extend_from_slice(&more);
                }
                String::from_utf8_lossy(&msg).into_owned()
            }
            _ => text,
        };
        if tx.send((ip.clone(), text)).await.is_err() {
            return;
        }
    }
}

async fn batcher(
    mut rx: mpsc::Receiver<(String, String)>,
    monitor: Arc<parapet_monitor::Monitor>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let first = tokio::select! {
            m = rx.recv() => m,
            _ = stop.changed() => None,
        };
        let Some(first) = first else { return };
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + Duration::from_millis(200);
        while batch.len() < BATCH {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(m)) => batch.push(m),
                _ => break,
            }
        }
        if let Err(e) = monitor.ingest_lines(&batch).await {
            tracing::warn!(error = %e, lines = batch.len(), "syslog batch not stored");
        }
    }
}
