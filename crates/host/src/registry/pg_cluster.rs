//! A throwaway PostgreSQL cluster for tests and benchmarks: `initdb` into a temporary
//! directory, `postgres` on a free port of 127.0.0.1, stopped and deleted on drop.
//!
//! The server refuses to run as root (and CI runs as root): then the cluster belongs to an
//! unprivileged user (`nobody`) and every server command runs through `runuser`. The server
//! binaries are looked up on `PATH`, then under `/usr/lib/postgresql/*/bin` (where Debian's
//! `postgresql` package puts them). Without them [`PgCluster::start`] says why
//! ([`ClusterError::Absent`]) so a test can skip with that reason; under `CI=true` a missing
//! server is not a reason to skip ([`skip_or_fail`]).

use std::fmt;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};

/// Why no cluster could be started.
#[derive(Debug)]
pub enum ClusterError {
    /// The PostgreSQL server binaries are not installed (the test may skip).
    Absent(String),
    /// They are installed but the cluster did not start: a real failure.
    Failed(String),
}

impl fmt::Display for ClusterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Absent(why) => write!(f, "PostgreSQL server not installed: {why}"),
            Self::Failed(why) => write!(f, "throwaway PostgreSQL cluster: {why}"),
        }
    }
}

impl std::error::Error for ClusterError {}

/// A running throwaway cluster. Superuser `postgres`, trust authentication on 127.0.0.1 only.
#[derive(Debug)]
pub struct PgCluster {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    /// `Some(user)`: the server runs as this user (we are root).
    run_as: Option<&'static str>,
    /// `fsync` on (benchmarks) or off (tests).
    durable: bool,
    databases: AtomicU32,
}

/// The directory holding `initdb`, `pg_ctl` and `postgres`.
fn find_binaries() -> Result<PathBuf, ClusterError> {
    let has_all = |d: &Path| {
        ["initdb", "pg_ctl", "postgres"]
            .iter()
            .all(|b| d.join(b).is_file())
    };
    if let Some(path) = std::env::var_os("PATH") {
        for d in std::env::split_paths(&path) {
            if has_all(&d) {
                return Ok(d);
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, d)| has_all(d))
        .collect();
    versions.sort();
    versions.pop().map(|(_, d)| d).ok_or_else(|| {
        ClusterError::Absent(
            "initdb/pg_ctl/postgres neither on PATH nor in /usr/lib/postgresql/*/bin \
             (Debian: apt-get install postgresql)"
                .into(),
        )
    })
}

/// Whether this process runs as root (the server must then run as another user).
fn is_root() -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
    }
    #[cfg(not(unix))]
    {
        false
    }
}

fn free_port() -> Result<u16, ClusterError> {
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| ClusterError::Failed(format!("no free port on 127.0.0.1: {e}")))
}

fn output_text(o: &Output) -> String {
    let mut s = String::from_utf8_lossy(&o.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&o.stderr));
    s.trim().to_string()
}

/// Shared by the tests of one process: the last holder to drop it stops it.
static SHARED: Mutex<Weak<PgCluster>> = Mutex::new(Weak::new());

impl PgCluster {
    /// Initializes and starts a new cluster; `fsync` off (tests: nothing must survive a
    /// power cut).
    pub fn start() -> Result<Self, ClusterError> {
        Self::start_with(false)
    }

    /// [`PgCluster::start`] with commits flushed to disk as on a production server
    /// (benchmarks).
    pub fn start_durable() -> Result<Self, ClusterError> {
        Self::start_with(true)
    }

    fn start_with(durable: bool) -> Result<Self, ClusterError> {
        if !cfg!(unix) {
            return Err(ClusterError::Absent(
                "the throwaway cluster runs on Unix only".into(),
            ));
        }
        let bin = find_binaries()?;
        let run_as = is_root().then_some("nobody");
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "keystamp-pg-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)
            .map_err(|e| ClusterError::Failed(format!("{}: {e}", dir.display())))?;
        let mut cluster = Self {
            bin,
            dir,
            port: 0,
            run_as,
            durable,
            databases: AtomicU32::new(0),
        };
        cluster.chown_to_server_user(&cluster.dir)?;
        let data = cluster.data_dir();
        let out = cluster.run(
            "initdb",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-U".as_ref(),
                "postgres".as_ref(),
                "--auth=trust".as_ref(),
                "-E".as_ref(),
                "UTF8".as_ref(),
                "--no-sync".as_ref(),
                "--no-instructions".as_ref(),
            ],
        )?;
        if !out.status.success() {
            return Err(ClusterError::Failed(format!(
                "initdb failed: {}",
                output_text(&out)
            )));
        }
        // A port found free may be taken before the server binds it: try a few.
        let mut last = String::new();
        for _ in 0..5 {
            cluster.port = free_port()?;
            match cluster.start_server() {
                Ok(()) => return Ok(cluster),
                Err(e) => last = e.to_string(),
            }
        }
        Err(ClusterError::Failed(last))
    }

    /// The cluster this test process shares (started on first use, stopped when the last
    /// holder drops it). Each test takes its own database ([`PgCluster::new_database`]).
    pub fn shared() -> Result<Arc<Self>, ClusterError> {
        let mut slot = SHARED.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = slot.upgrade() {
            return Ok(c);
        }
        let c = Arc::new(Self::start()?);
        *slot = Arc::downgrade(&c);
        Ok(c)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn chown_to_server_user(&self, path: &Path) -> Result<(), ClusterError> {
        let Some(user) = self.run_as else {
            return Ok(());
        };
        let out = Command::new("chown")
            .arg("-R")
            .arg(user)
            .arg(path)
            .output()
            .map_err(|e| ClusterError::Failed(format!("chown: {e}")))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(ClusterError::Failed(format!(
                "chown {user} {}: {}",
                path.display(),
                output_text(&out)
            )))
        }
    }

    /// Runs one server binary, as the server user when we are root.
    fn run(&self, program: &str, args: &[&std::ffi::OsStr]) -> Result<Output, ClusterError> {
        let exe = self.bin.join(program);
        let mut cmd = match self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        cmd.args(args)
            .current_dir(&self.dir)
            .env_remove("PGDATA")
            .stdin(std::process::Stdio::null());
        cmd.output()
            .map_err(|e| ClusterError::Failed(format!("{}: {e}", exe.display())))
    }

    /// Starts the server (again, after [`PgCluster::stop_server`]) on the cluster's port.
    pub fn start_server(&self) -> Result<(), ClusterError> {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync={} -c max_connections=200",
            self.port,
            self.dir.display(),
            if self.durable { "on" } else { "off" }
        );
        let data = self.data_dir();
        let log = self.dir.join("server.log");
        let out = self.run(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-l".as_ref(),
                log.as_os_str(),
                "-w".as_ref(),
                "-t".as_ref(),
                "60".as_ref(),
                "-o".as_ref(),
                opts.as_ref(),
                "start".as_ref(),
            ],
        )?;
        if out.status.success() {
            Ok(())
        } else {
            let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
            Err(ClusterError::Failed(format!(
                "pg_ctl start failed: {} {}",
                output_text(&out),
                log.lines().rev().take(5).collect::<Vec<_>>().join(" | ")
            )))
        }
    }

    /// Stops the server at once (`-m immediate`: like a crash or a pulled cable for clients).
    pub fn stop_server(&self) -> Result<(), ClusterError> {
        let data = self.data_dir();
        let out = self.run(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-m".as_ref(),
                "immediate".as_ref(),
                "-w".as_ref(),
                "stop".as_ref(),
            ],
        )?;
        if out.status.success() {
            Ok(())
        } else {
            Err(ClusterError::Failed(format!(
                "pg_ctl stop failed: {}",
                output_text(&out)
            )))
        }
    }

    /// The port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of database `db` as the superuser (no password: trust authentication).
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates a new, empty database and returns its URL.
    pub fn new_database(&self) -> Result<String, ClusterError> {
        let name = format!(
            "keystamp_{}",
            self.databases.fetch_add(1, Ordering::Relaxed)
        );
        self.execute("postgres", &format!("CREATE DATABASE {name}"))?;
        Ok(self.url(&name))
    }

    /// Makes the server ask `user` for its password (SCRAM) on 127.0.0.1; everyone else keeps
    /// trust authentication.
    pub fn require_password_for(&self, user: &str) -> Result<(), ClusterError> {
        let hba = self.data_dir().join("pg_hba.conf");
        let old = std::fs::read_to_string(&hba)
            .map_err(|e| ClusterError::Failed(format!("{}: {e}", hba.display())))?;
        // The first matching line wins: this one goes first.
        let new = format!("host all {user} 127.0.0.1/32 scram-sha-256\n{old}");
        std::fs::write(&hba, new)
            .map_err(|e| ClusterError::Failed(format!("{}: {e}", hba.display())))?;
        self.execute("postgres", "SELECT pg_reload_conf()")
    }

    /// Runs SQL statements in database `db` as the superuser (roles, grants in tests).
    pub fn execute(&self, db: &str, sql: &str) -> Result<(), ClusterError> {
        let mut client = postgres::Client::connect(&self.url(db), postgres::NoTls)
            .map_err(|e| ClusterError::Failed(format!("connect: {e}")))?;
        client
            .batch_execute(sql)
            .map_err(|e| ClusterError::Failed(format!("{sql}: {e}")))
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if self.port != 0 {
            let _ = self.stop_server();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// For tests: the shared cluster, or `None` after printing why the test skips. Only a missing
/// server is a reason to skip, and not under `CI=true` on Unix (CI installs PostgreSQL).
pub fn skip_or_fail(test: &str) -> Option<Arc<PgCluster>> {
    or_skip(test, PgCluster::shared())
}

/// [`skip_or_fail`] with a cluster of the test's own (for tests that stop the server).
pub fn own_or_skip(test: &str) -> Option<PgCluster> {
    or_skip(test, PgCluster::start())
}

fn or_skip<T>(test: &str, cluster: Result<T, ClusterError>) -> Option<T> {
    match cluster {
        Ok(c) => Some(c),
        Err(ClusterError::Absent(why))
            if !(cfg!(unix) && std::env::var("CI").is_ok_and(|v| v == "true")) =>
        {
            eprintln!("{test}: skipped: PostgreSQL server not installed ({why})");
            None
        }
        Err(e) => panic!("{test}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The harness starts a real server that answers SQL, survives a stop/start, and is gone
    /// after drop.
    #[test]
    fn throwaway_cluster_answers_and_restarts() {
        let Some(cluster) = own_or_skip("throwaway_cluster_answers_and_restarts") else {
            return;
        };
        let url = cluster.new_database().expect("database");
        let mut c = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
        let row = c.query_one("SELECT 1 + 1", &[]).expect("query");
        assert_eq!(row.get::<_, i32>(0), 2);
        cluster.stop_server().expect("stop");
        assert!(postgres::Client::connect(&url, postgres::NoTls).is_err());
        cluster.start_server().expect("restart");
        postgres::Client::connect(&url, postgres::NoTls).expect("reconnect");
    }
}
