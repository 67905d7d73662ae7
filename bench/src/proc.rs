//! Child servers: start them, time their start-up, read their memory and CPU time from `/proc`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A server running as a child process; killed when dropped.
pub struct Server {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Server {
    /// Starts `cmd` (which must print `listening on http://ADDR` on stdout once bound) and waits
    /// for its first 200 on `health`. Returns the server and the time from exec to that 200.
    pub fn start(mut cmd: Command, health: &str) -> Result<(Server, Duration), String> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let t0 = Instant::now();
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut line = String::new();
        let mut reader = BufReader::new(stdout);
        let _ = reader.read_line(&mut line);
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .and_then(|a| a.parse::<SocketAddr>().ok());
        let Some(addr) = addr else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{cmd:?} printed {line:?} instead of its address"));
        };
        // Keep reading (and discarding) stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let server = Server { child, addr };
        // From the address line on: loading a stored world before it may take longer.
        let announced = Instant::now();
        loop {
            match get_status(addr, health) {
                Ok(200) => return Ok((server, t0.elapsed())),
                _ if announced.elapsed() > Duration::from_secs(10) => {
                    return Err(format!("{cmd:?}: no 200 on {health} within 10 s"))
                }
                _ => std::thread::sleep(Duration::from_micros(200)),
            }
        }
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory in KiB (`VmRSS`).
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// User plus system CPU time so far, in clock ticks (normally 1/100 s).
    pub fn cpu_ticks(&self) -> Option<u64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).ok()?;
        // Fields after the command name, which is in parentheses and may contain spaces.
        let rest = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let utime: u64 = fields.get(11)?.parse().ok()?;
        let stime: u64 = fields.get(12)?.parse().ok()?;
        Some(utime + stime)
    }

    /// CPU time so far of the process's live threads, in nanoseconds (the first field of each
    /// `/proc/PID/task/TID/schedstat`): precise enough to time one request, where `cpu_ticks` counts
    /// in hundredths of a second.
    pub fn cpu_ns(&self) -> Option<u64> {
        let tasks = std::fs::read_dir(format!("/proc/{}/task", self.pid())).ok()?;
        let mut total = 0;
        for task in tasks.flatten() {
            let stat = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
            total += stat.split_whitespace().next()?.parse::<u64>().ok()?;
        }
        Some(total)
    }
}

/// Whether servers are stopped with SIGTERM and given time to exit (see [`stop_gently`]).
static GENTLE: AtomicBool = AtomicBool::new(false);

/// From now on, a dropped server is sent SIGTERM and waited for (up to 10 s) before it is
/// killed: an instrumented build writes its profile only when it exits on its own.
pub fn stop_gently() {
    GENTLE.store(true, Ordering::Relaxed);
}

impl Drop for Server {
    fn drop(&mut self) {
        if GENTLE.load(Ordering::Relaxed) {
            let asked = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status()
                .is_ok_and(|s| s.success());
            let deadline = Instant::now() + Duration::from_secs(10);
            while asked && Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Clock ticks per second for `/proc/PID/stat` (USER_HZ; 100 on every Linux this runs on).
pub const TICKS_PER_SEC: f64 = 100.0;

/// A blocking `GET path` on a fresh connection; the status code.
pub fn get_status(addr: SocketAddr, path: &str) -> std::io::Result<u16> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head)?;
    let text = std::str::from_utf8(&head).unwrap_or("");
    text.get(9..12)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other("not an HTTP answer"))
}
