//! Running a CLI test body once per registry backend: the project's SQLite file, then — when
//! the PostgreSQL server is installed — the same project moved into a fresh database of the
//! shared throwaway cluster (`registry migrate` + `registry copy`, as docs/factory-guide.md
//! tells an operator), used by every later `keystamp` child through `KEYSTAMP_REGISTRY`.
//! PostgreSQL is skipped only with a printed reason, and never under `CI=true`
//! ([`pg_cluster::skip_or_fail`]).

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use keystamp::registry::Registry;
use keystamp::registry::pg_cluster::{self, PgCluster};

/// The registry backend one run of a test body uses.
pub enum Backend {
    /// The project's own SQLite file (what `keystamp init` makes).
    Sqlite,
    /// A fresh database per project in this shared cluster.
    Postgres(Arc<PgCluster>),
}

thread_local! {
    /// Project directory → the PostgreSQL URL its `keystamp` children are given (each test
    /// runs on its own thread).
    static URLS: RefCell<HashMap<PathBuf, String>> = RefCell::new(HashMap::new());
}

/// The `KEYSTAMP_REGISTRY` for `keystamp` children on `project`, if it was moved to
/// PostgreSQL ([`Backend::adopt`]).
pub fn registry_url(project: &Path) -> Option<String> {
    URLS.with(|u| u.borrow().get(project).cloned())
}

/// Runs `body` on SQLite, then on PostgreSQL (or prints why not).
pub fn each_backend(test: &str, body: impl Fn(&Backend)) {
    eprintln!("{test}: on SQLite");
    body(&Backend::Sqlite);
    if let Some(cluster) = pg_cluster::skip_or_fail(&format!("{test} on PostgreSQL")) {
        eprintln!("{test}: on PostgreSQL");
        body(&Backend::Postgres(cluster));
        URLS.with(|u| u.borrow_mut().clear());
    }
}

impl Backend {
    /// Call right after `keystamp init` in `project`. On PostgreSQL: migrates a fresh database,
    /// copies the project's registry into it, deletes the SQLite file (so nothing can quietly
    /// keep using it) and routes later `keystamp` children of this thread to the database.
    pub fn adopt(&self, project: &Path) {
        let Self::Postgres(cluster) = self else {
            return;
        };
        let url = cluster.new_database().expect("database");
        super::ok(super::run_cli(super::keystamp(project).args([
            "registry",
            "migrate",
            "--registry",
            &url,
        ])));
        let copied = super::ok(super::run_cli(
            super::keystamp(project).args(["registry", "copy", "--to", &url]),
        ));
        assert!(copied.contains("copy verified"), "{copied}");
        let file = project.join("registry.sqlite");
        std::fs::remove_file(&file).expect("remove the SQLite registry");
        URLS.with(|u| u.borrow_mut().insert(project.to_path_buf(), url));
    }

    /// One integer a query of the project's registry returns, read around keystamp's code
    /// (rusqlite, or the `postgres` client).
    pub fn query_i64(&self, project: &Path, sql: &str) -> i64 {
        match registry_url(project) {
            Some(url) => postgres::Client::connect(&url, postgres::NoTls)
                .expect("connect")
                .query_one(sql, &[])
                .expect("query")
                .get(0),
            None => rusqlite::Connection::open(project.join("registry.sqlite"))
                .expect("open")
                .query_row(sql, (), |r| r.get(0))
                .expect("query"),
        }
    }

    /// The project's registry, opened directly (for records a test writes itself).
    pub fn open(&self, project: &Path) -> Registry {
        match registry_url(project) {
            Some(url) => Registry::open_postgres(&url).expect("open PostgreSQL registry"),
            None => Registry::open(&project.join("registry.sqlite")).expect("open registry"),
        }
    }
}
