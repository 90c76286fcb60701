//! The upload client of the side-by-side benchmark (`benches/run.sh`): a plain HTTP/1.1 client
//! on keep-alive connections, so that the client, which shares the machine with the server,
//! costs little next to the server it measures. Python's http.client, tried first, kept one
//! core busy at ~2,000 uploads/s and so measured itself rather than the servers.
//!
//! It speaks each server's own upload API: Shoebox a raw `POST /api/media?filename=` with a
//! bearer token, dufs a raw `PUT /<name>`, miniserve a multipart `POST /upload?path=/`.
//!
//! ```text
//! bench-client many SERVER PORT COUNT SIZE PARALLEL SEED   # COUNT distinct files, PARALLEL at a time
//! bench-client file SERVER PORT PATH NAME                  # one upload of a file (sent with sendfile)
//! ```
//! It prints one line: `seconds=… ok=… failed=… first_error=…`. Loopback only.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TOKEN: &str = "bench-token-0123456789abcdef";
const TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Clone, Copy, PartialEq)]
enum Server {
    Shoebox,
    Dufs,
    Miniserve,
}

/// The request line and headers, and the bytes that go before and after the file's bytes.
fn framing(server: Server, port: u16, name: &str, size: u64) -> (String, Vec<u8>, Vec<u8>) {
    let (method, path, mut headers, prefix, suffix) = match server {
        Server::Shoebox => (
            "POST",
            format!("/api/media?filename={name}"),
            format!("Authorization: Bearer {TOKEN}\r\nContent-Type: application/octet-stream\r\n"),
            Vec::new(),
            Vec::new(),
        ),
        Server::Dufs => (
            "PUT",
            format!("/{name}"),
            "Content-Type: application/octet-stream\r\n".to_owned(),
            Vec::new(),
            Vec::new(),
        ),
        Server::Miniserve => {
            let boundary = format!("----shoebox-bench-{name}");
            (
                "POST",
                "/upload?path=/".to_owned(),
                format!("Content-Type: multipart/form-data; boundary={boundary}\r\n"),
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"path\"; \
                     filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                )
                .into_bytes(),
                format!("\r\n--{boundary}--\r\n").into_bytes(),
            )
        }
    };
    let length = prefix.len() as u64 + size + suffix.len() as u64;
    headers.push_str(&format!("Content-Length: {length}\r\n"));
    let head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{headers}\r\n");
    (head, prefix, suffix)
}

struct Conn {
    port: u16,
    reader: Option<BufReader<TcpStream>>,
}

impl Conn {
    fn new(port: u16) -> Self {
        Conn { port, reader: None }
    }

    fn stream(&mut self) -> io::Result<&mut BufReader<TcpStream>> {
        if self.reader.is_none() {
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
            let s = TcpStream::connect_timeout(&addr, TIMEOUT)?;
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(TIMEOUT))?;
            s.set_write_timeout(Some(TIMEOUT))?;
            self.reader = Some(BufReader::with_capacity(64 * 1024, s));
        }
        Ok(self.reader.as_mut().expect("connected above"))
    }

    /// Sends one request whose body the closure writes, reads the response, returns its status.
    fn request(
        &mut self,
        head: &str,
        body: impl FnOnce(&mut TcpStream) -> io::Result<()>,
    ) -> io::Result<u16> {
        let result = self.try_request(head, body);
        if result.is_err() {
            self.reader = None;
        }
        result
    }

    fn try_request(
        &mut self,
        head: &str,
        body: impl FnOnce(&mut TcpStream) -> io::Result<()>,
    ) -> io::Result<u16> {
        let r = self.stream()?;
        r.get_mut().write_all(head.as_bytes())?;
        body(r.get_mut())?;
        let (status, length, chunked, close) = read_head(r)?;
        if chunked {
            read_chunked(r)?;
        } else if let Some(n) = length {
            io::copy(&mut r.by_ref().take(n), &mut io::sink())?;
        } else {
            io::copy(r, &mut io::sink())?;
        }
        if close || (length.is_none() && !chunked) {
            self.reader = None;
        }
        Ok(status)
    }
}

fn read_head(r: &mut BufReader<TcpStream>) -> io::Result<(u16, Option<u64>, bool, bool)> {
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::other(format!("bad status line {line:?}")))?;
    let (mut length, mut chunked, mut close) = (None, false, false);
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Err(io::Error::other("connection closed in the headers"));
        }
        let l = line.trim_end();
        if l.is_empty() {
            return Ok((status, length, chunked, close));
        }
        if let Some((k, v)) = l.split_once(':') {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_ascii_lowercase());
            match k.as_str() {
                "content-length" => length = v.parse().ok(),
                "transfer-encoding" => chunked = v.contains("chunked"),
                "connection" => close = v == "close",
                _ => {}
            }
        }
    }
}

fn read_chunked(r: &mut BufReader<TcpStream>) -> io::Result<()> {
    let mut line = String::new();
    loop {
        line.clear();
        r.read_line(&mut line)?;
        let size = u64::from_str_radix(line.trim().split(';').next().unwrap_or("0"), 16)
            .map_err(|_| io::Error::other("bad chunk size"))?;
        io::copy(&mut r.by_ref().take(size), &mut io::sink())?;
        line.clear();
        r.read_line(&mut line)?;
        if size == 0 {
            return Ok(());
        }
    }
}

fn ok(server: Server, status: u16) -> bool {
    match server {
        // miniserve redirects back to the listing after an upload.
        Server::Miniserve => status == 200 || status == 303,
        _ => status == 200 || status == 201,
    }
}

/// Deterministic bytes, different for every seed.
fn payload(size: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(size + 8);
    while out.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(size);
    out
}

struct Tally {
    ok: AtomicUsize,
    failed: AtomicUsize,
    first_error: Mutex<Option<String>>,
}

impl Tally {
    fn fail(&self, e: String) {
        self.failed.fetch_add(1, Ordering::SeqCst);
        self.first_error
            .lock()
            .expect("not poisoned")
            .get_or_insert(e);
    }
}

fn many(server: Server, port: u16, count: usize, size: usize, parallel: usize, seed: u64) -> Tally {
    let body = Arc::new(payload(size, seed));
    let next = Arc::new(AtomicUsize::new(0));
    let tally = Arc::new(Tally {
        ok: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        first_error: Mutex::new(None),
    });
    let threads: Vec<_> = (0..parallel)
        .map(|_| {
            let (body, next, tally) = (body.clone(), next.clone(), tally.clone());
            std::thread::spawn(move || {
                let mut conn = Conn::new(port);
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= count {
                        break;
                    }
                    // Distinct bytes for every file of every run: nothing is a duplicate.
                    let tag = format!("{seed:016x}{i:016x}");
                    let name = format!("many-{seed}-{i}.bin");
                    let (head, prefix, suffix) = framing(server, port, &name, size as u64);
                    let sent = conn.request(&head, |s| {
                        s.write_all(&prefix)?;
                        s.write_all(&tag.as_bytes()[..tag.len().min(size)])?;
                        s.write_all(&body[tag.len().min(size)..])?;
                        s.write_all(&suffix)
                    });
                    match sent {
                        Ok(status) if ok(server, status) => {
                            tally.ok.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(status) => tally.fail(format!("status {status}")),
                        Err(e) => tally.fail(e.to_string()),
                    }
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
    Arc::try_unwrap(tally).unwrap_or_else(|_| panic!("threads joined"))
}

fn file(server: Server, port: u16, path: &str, name: &str) -> Tally {
    let tally = Tally {
        ok: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        first_error: Mutex::new(None),
    };
    let result = std::fs::File::open(path).and_then(|mut f| {
        let size = f.metadata()?.len();
        let (head, prefix, suffix) = framing(server, port, name, size);
        Conn::new(port).request(&head, |s| {
            s.write_all(&prefix)?;
            // File to socket: std uses sendfile(2) here, so the client copies nothing.
            io::copy(&mut f, s)?;
            s.write_all(&suffix)
        })
    });
    match result {
        Ok(status) if ok(server, status) => {
            tally.ok.fetch_add(1, Ordering::SeqCst);
        }
        Ok(status) => tally.fail(format!("status {status}")),
        Err(e) => tally.fail(e.to_string()),
    }
    tally
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: bench-client many SERVER PORT COUNT SIZE PARALLEL SEED | \
                 file SERVER PORT PATH NAME";
    let server = match args.get(1).map(String::as_str) {
        Some("shoebox") => Server::Shoebox,
        Some("dufs") => Server::Dufs,
        Some("miniserve") => Server::Miniserve,
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    };
    let num = |i: usize| -> u64 {
        args.get(i).and_then(|a| a.parse().ok()).unwrap_or_else(|| {
            eprintln!("{usage}");
            std::process::exit(2)
        })
    };
    let port = num(2) as u16;
    let start = Instant::now();
    let tally = match args[0].as_str() {
        "many" => many(
            server,
            port,
            num(3) as usize,
            num(4) as usize,
            num(5) as usize,
            num(6),
        ),
        "file" => match (args.get(3), args.get(4)) {
            (Some(path), Some(name)) => file(server, port, path, name),
            _ => {
                eprintln!("{usage}");
                std::process::exit(2)
            }
        },
        _ => {
            eprintln!("{usage}");
            std::process::exit(2)
        }
    };
    let first = tally.first_error.lock().expect("not poisoned").take();
    println!(
        "seconds={:.6} ok={} failed={} first_error={:?}",
        start.elapsed().as_secs_f64(),
        tally.ok.load(Ordering::SeqCst),
        tally.failed.load(Ordering::SeqCst),
        first.unwrap_or_default()
    );
}
