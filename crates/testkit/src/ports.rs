//! Ports for the outside processes a test starts that bind their own sockets (NGINX, Kafka,
//! SMTP, a service binary spawned as a child). In-process services need none of this: they
//! are handed a listener already bound to port 0 (`platform::config::BoundListener`).

/// A free TCP port on loopback for a server a test starts later, reserved for this process.
///
/// Ports come from 20000..32000, below Linux's ephemeral range (32768..61000): a port the OS
/// hands out for `:0` binds or for outgoing connections (to PostgreSQL, Redis, Kafka) can be
/// taken by another connection between this check and the server's bind. Below the range
/// only another test's pick can collide, and picks by the parallel test processes did
/// collide (two platforms of nine services each). So every pick is also reserved: an
/// exclusive lock on a per-port file, held until the process exits (the OS drops it even
/// on a crash), and a port locked by another process — or already picked by this one — is
/// skipped.
pub fn free_port() -> u16 {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU64, Ordering};
    static STATE: AtomicU64 = AtomicU64::new(0);
    static HELD: Mutex<Vec<(u16, std::fs::File)>> = Mutex::new(Vec::new());
    let seed = u64::from(std::process::id())
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
    let _ = STATE.compare_exchange(0, seed | 1, Ordering::Relaxed, Ordering::Relaxed);
    let lock_dir = std::env::temp_dir().join("payments-testkit-ports");
    let _ = std::fs::create_dir_all(&lock_dir);
    let mut held = HELD.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    for _ in 0..5000 {
        // xorshift64: cheap, good enough to spread picks.
        let mut x = STATE.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        STATE.store(x, Ordering::Relaxed);
        let port = 20_000 + (x % 12_000) as u16;
        if held.iter().any(|(p, _)| *p == port) {
            continue;
        }
        let Ok(file) = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(lock_dir.join(format!("{port}.lock")))
        else {
            continue;
        };
        if file.try_lock().is_err() {
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            held.push((port, file));
            return port;
        }
    }
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}
