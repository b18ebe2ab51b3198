//! The registry's database, SQLite or PostgreSQL, behind one interface ([`Connection`]).
//!
//! The registry writes ONE set of SQL statements in the dialect both engines share (SQLite
//! 3.35+ has `RETURNING` and `ON CONFLICT … DO UPDATE`): `?N` placeholders, which this module
//! rewrites to PostgreSQL's `$N`; values as SQLite's five storage classes ([`Value`]); no
//! engine-specific functions. The versioned schema steps are shared too: written in SQLite's
//! DDL, run on PostgreSQL through [`to_postgres_ddl`] ([`Connection::execute_schema`]).
//!
//! A write transaction ([`Connection::write_transaction`]) is the registry's unit of every invariant
//! (docs/decisions/0008-registry-backends.md): on SQLite `BEGIN IMMEDIATE` (one writer per
//! file), on PostgreSQL `READ COMMITTED` plus one transaction-scoped advisory lock taken first
//! (one writer per registry database, across every host). Writers therefore run one after
//! the other on both engines, and the checks a transaction makes before it writes (is this key
//! already issued? is the lot full?) cannot be invalidated by another host before it commits.

use std::cell::RefCell;
use std::fmt;

use postgres::types::{IsNull, ToSql, Type};

pub use rusqlite::types::Value;

/// The advisory lock every PostgreSQL write transaction takes first (any constant works:
/// the registry owns its database). "keystamp" in ASCII.
const PG_WRITE_LOCK: i64 = 0x6B65_7973_7461_6D70;

/// Which engine holds the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// One SQLite file (one host).
    Sqlite,
    /// A PostgreSQL database (several hosts).
    Postgres,
}

/// A database error, from either engine.
#[derive(Debug)]
pub enum DbError {
    /// SQLite failed.
    Sqlite(rusqlite::Error),
    /// PostgreSQL failed (or could not be reached).
    Postgres(postgres::Error),
    /// A query that must return a row returned none.
    NoRows,
    /// A column held a value of another type than the registry stores there.
    Conversion {
        /// Column index.
        column: usize,
        /// What was expected.
        expected: &'static str,
        /// What was found (or why it did not convert).
        found: String,
    },
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(e) => e.fmt(f),
            Self::Postgres(e) => match e.as_db_error() {
                // The server's own message says more than "db error".
                Some(db) => write!(f, "{}: {}", db.severity(), db.message()),
                // "invalid configuration" says little without its cause ("password missing").
                None => match std::error::Error::source(e) {
                    Some(cause) => write!(f, "{e}: {cause}"),
                    None => e.fmt(f),
                },
            },
            Self::NoRows => f.write_str("query returned no rows"),
            Self::Conversion {
                column,
                expected,
                found,
            } => write!(f, "column {column}: expected {expected}, found {found}"),
        }
    }
}

impl std::error::Error for DbError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Sqlite(e) => Some(e),
            Self::Postgres(e) => Some(e),
            _ => None,
        }
    }
}

impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> Self {
        match e {
            rusqlite::Error::QueryReturnedNoRows => Self::NoRows,
            e => Self::Sqlite(e),
        }
    }
}

impl From<postgres::Error> for DbError {
    fn from(e: postgres::Error) -> Self {
        Self::Postgres(e)
    }
}

impl DbError {
    /// Whether this is a violation of the unique constraint on `table.column`.
    pub fn is_unique_violation(&self, table: &str, column: &str) -> bool {
        match self {
            Self::Sqlite(rusqlite::Error::SqliteFailure(err, Some(msg))) => {
                // "UNIQUE constraint failed: t.a, t.b"
                let want = format!("{table}.{column}");
                err.code == rusqlite::ErrorCode::ConstraintViolation
                    && msg
                        .split_once(": ")
                        .is_some_and(|(_, cols)| cols.split(", ").any(|c| c == want))
            }
            Self::Postgres(e) => e.as_db_error().is_some_and(|db| {
                *db.code() == postgres::error::SqlState::UNIQUE_VIOLATION
                    && db.table() == Some(table)
                    && db
                        .detail()
                        .is_some_and(|d| d.starts_with(&format!("Key ({column})=")))
            }),
            _ => false,
        }
    }

    /// Whether the server refused the login: no password given where it asks for one (28000,
    /// or the client had none to send), or a wrong one (28P01).
    pub fn is_authentication(&self) -> bool {
        match self {
            Self::Postgres(e) => {
                e.as_db_error()
                    .is_some_and(|db| db.code().code().starts_with("28"))
                    || std::error::Error::source(e)
                        .is_some_and(|c| c.to_string().contains("password missing"))
            }
            _ => false,
        }
    }

    /// Whether a `CHECK` constraint refused the statement.
    pub fn is_check_violation(&self) -> bool {
        match self {
            Self::Sqlite(rusqlite::Error::SqliteFailure(err, Some(msg))) => {
                err.code == rusqlite::ErrorCode::ConstraintViolation
                    && msg.starts_with("CHECK constraint failed")
            }
            Self::Postgres(e) => e
                .as_db_error()
                .is_some_and(|db| *db.code() == postgres::error::SqlState::CHECK_VIOLATION),
            _ => false,
        }
    }

    /// Whether the database server could not be reached or the connection broke: nothing of
    /// the failed transaction was committed, and a retry after the server is back may succeed.
    pub fn is_unreachable(&self) -> bool {
        match self {
            Self::Postgres(e) => {
                let io = std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>());
                let code = e.as_db_error().map(|db| db.code().code());
                // 08: connection exception; 57P01-3: the server is shutting down or starting.
                e.is_closed()
                    || io
                    || code.is_some_and(|c| c.starts_with("08") || c.starts_with("57P0"))
            }
            _ => false,
        }
    }

    /// The SQLite error code, if SQLite failed.
    pub fn sqlite_error_code(&self) -> Option<rusqlite::ErrorCode> {
        match self {
            Self::Sqlite(e) => e.sqlite_error_code(),
            _ => None,
        }
    }
}

/// A query that returns no row as `None` (rusqlite's `OptionalExtension`, for [`Connection`]).
pub trait OptionalExt<T> {
    /// `Ok(None)` for [`DbError::NoRows`].
    fn optional(self) -> Result<Option<T>, DbError>;
}

impl<T> OptionalExt<T> for Result<T, DbError> {
    fn optional(self) -> Result<Option<T>, DbError> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(DbError::NoRows) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// A Rust value as a statement parameter (by reference, like rusqlite's `ToSql`).
pub trait ToValue {
    /// The value.
    fn to_value(&self) -> Value;
}

macro_rules! to_value_int {
    ($($t:ty),*) => {$(
        impl ToValue for $t {
            fn to_value(&self) -> Value {
                Value::Integer(i64::from(*self))
            }
        }
    )*};
}
to_value_int!(i64, i32, u32, i16, u16, u8, bool);

impl ToValue for Value {
    fn to_value(&self) -> Value {
        self.clone()
    }
}
impl ToValue for str {
    fn to_value(&self) -> Value {
        Value::Text(self.to_string())
    }
}
impl ToValue for String {
    fn to_value(&self) -> Value {
        Value::Text(self.clone())
    }
}
impl ToValue for [u8] {
    fn to_value(&self) -> Value {
        Value::Blob(self.to_vec())
    }
}
impl ToValue for Vec<u8> {
    fn to_value(&self) -> Value {
        Value::Blob(self.clone())
    }
}
impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> Value {
        self.as_ref().map_or(Value::Null, ToValue::to_value)
    }
}
impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> Value {
        (**self).to_value()
    }
}

/// Statement parameters: `params![a, b]`, an array of one type, `()` for none.
pub trait Params {
    /// The values, in placeholder order.
    fn into_values(self) -> Vec<Value>;
}

impl Params for () {
    fn into_values(self) -> Vec<Value> {
        Vec::new()
    }
}
impl Params for Vec<Value> {
    fn into_values(self) -> Vec<Value> {
        self
    }
}
impl<T: ToValue, const N: usize> Params for [T; N] {
    fn into_values(self) -> Vec<Value> {
        self.iter().map(ToValue::to_value).collect()
    }
}

/// Parameters of mixed types: `params![serial, id, der.as_slice()]`.
macro_rules! params {
    ($($v:expr),* $(,)?) => {
        ::std::vec![$($crate::registry::backend::ToValue::to_value(&$v)),*]
    };
}
#[allow(unused_imports)] // used by the registry modules once they run on `Connection`
pub(crate) use params;

/// A value read from a column.
pub trait FromValue: Sized {
    /// Converts, or says what was expected.
    fn from_value(v: Value) -> Result<Self, (&'static str, Value)>;
}

impl FromValue for Value {
    fn from_value(v: Value) -> Result<Self, (&'static str, Value)> {
        Ok(v)
    }
}
impl FromValue for i64 {
    fn from_value(v: Value) -> Result<Self, (&'static str, Value)> {
        match v {
            Value::Integer(i) => Ok(i),
            v => Err(("an integer", v)),
        }
    }
}
impl FromValue for u32 {
    fn from_value(v: Value) -> Result<Self, (&'static str, Value)> {
        match v {
            Value::Integer(i) => u32::try_from(i).map_err(|_| ("a 32-bit count", v)),
            v => Err(("an integer", v)),
        }
    }
}
impl FromValue for bool {
    fn from_value(v: Value) -> Result<Self, (&'static str, Value)> {
        match v {
            Value::Integer(i) => Ok(i != 0),
            v => Err(("a boolean", v)),
        }
    }
}
impl FromValue for String {
    fn from_value(v: Value) -> Result<Self, (&'static str, Value)> {
        match v {
            Value::Text(s) => Ok(s),
            v => Err(("text", v)),
        }
    }
}
impl FromValue for Vec<u8> {
    fn from_value(v: Value) -> Result<Self, (&'static str, Value)> {
        match v {
            Value::Blob(b) => Ok(b),
            v => Err(("bytes", v)),
        }
    }
}
impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: Value) -> Result<Self, (&'static str, Value)> {
        match v {
            Value::Null => Ok(None),
            v => T::from_value(v).map(Some),
        }
    }
}

/// A column position (`usize`: integer literals infer to it, as with rusqlite's `RowIndex`).
pub trait ColumnIndex {
    /// The 0-based position.
    fn index(self) -> usize;
}

impl ColumnIndex for usize {
    fn index(self) -> usize {
        self
    }
}

/// One result row, as values.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    values: Vec<Value>,
}

impl Row {
    /// Column `idx` as `T` (`r.get::<_, String>(3)`, as with rusqlite).
    pub fn get<I: ColumnIndex, T: FromValue>(&self, idx: I) -> Result<T, DbError> {
        let column = idx.index();
        let v = self
            .values
            .get(column)
            .cloned()
            .ok_or(DbError::Conversion {
                column,
                expected: "a column",
                found: format!("{} columns", self.values.len()),
            })?;
        T::from_value(v).map_err(|(expected, found)| DbError::Conversion {
            column,
            expected,
            found: value_kind(&found).to_string(),
        })
    }

    /// How many columns.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether the row has no columns.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

fn value_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "NULL",
        Value::Integer(_) => "an integer",
        Value::Real(_) => "a real",
        Value::Text(_) => "text",
        Value::Blob(_) => "bytes",
    }
}

/// A value bound to a PostgreSQL parameter, converted to the type the server inferred for it.
#[derive(Debug)]
struct PgParam<'a>(&'a Value);

impl ToSql for PgParam<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self.0 {
            Value::Null => Ok(IsNull::Yes),
            Value::Integer(i) => match *ty {
                Type::INT8 => i.to_sql(ty, out),
                Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
                Type::BOOL => (*i != 0).to_sql(ty, out),
                _ => Err(format!("an integer for a {ty} parameter").into()),
            },
            Value::Real(r) => match *ty {
                Type::FLOAT8 => r.to_sql(ty, out),
                _ => Err(format!("a real for a {ty} parameter").into()),
            },
            Value::Text(t) => t.as_str().to_sql(ty, out),
            Value::Blob(b) => b.as_slice().to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

fn pg_row(row: &postgres::Row) -> Result<Row, DbError> {
    let mut values = Vec::with_capacity(row.len());
    for (i, col) in row.columns().iter().enumerate() {
        let ty = col.type_();
        let v = match *ty {
            Type::INT8 => row.try_get::<_, Option<i64>>(i)?.map(Value::Integer),
            Type::INT4 => row
                .try_get::<_, Option<i32>>(i)?
                .map(|v| Value::Integer(v.into())),
            Type::INT2 => row
                .try_get::<_, Option<i16>>(i)?
                .map(|v| Value::Integer(v.into())),
            Type::BOOL => row
                .try_get::<_, Option<bool>>(i)?
                .map(|v| Value::Integer(v.into())),
            Type::FLOAT8 => row.try_get::<_, Option<f64>>(i)?.map(Value::Real),
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => {
                row.try_get::<_, Option<String>>(i)?.map(Value::Text)
            }
            Type::BYTEA => row.try_get::<_, Option<Vec<u8>>>(i)?.map(Value::Blob),
            _ => {
                return Err(DbError::Conversion {
                    column: i,
                    expected: "a type the registry stores",
                    found: ty.to_string(),
                });
            }
        };
        values.push(v.unwrap_or(Value::Null));
    }
    Ok(Row { values })
}

fn sqlite_row(row: &rusqlite::Row<'_>, n: usize) -> rusqlite::Result<Row> {
    let mut values = Vec::with_capacity(n);
    for i in 0..n {
        values.push(row.get::<_, Value>(i)?);
    }
    Ok(Row { values })
}

/// The statement with `?N` (and bare `?`) placeholders rewritten to PostgreSQL's `$N`;
/// quoted text and identifiers are left alone.
pub fn to_postgres_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut quote: Option<char> = None;
    let mut next = 1u32;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => {
                quote = None;
                out.push(c);
            }
            (Some(_), c) => out.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                out.push(c);
            }
            (None, '?') => {
                out.push('$');
                let mut digits = String::new();
                while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                    digits.push(d);
                    chars.next();
                }
                if digits.is_empty() {
                    out.push_str(&next.to_string());
                    next += 1;
                } else {
                    out.push_str(&digits);
                }
            }
            (None, c) => out.push(c),
        }
    }
    out
}

/// A schema step in SQLite's DDL as PostgreSQL DDL: `id INTEGER PRIMARY KEY` becomes an
/// identity (`BY DEFAULT`, so `registry copy` keeps the ids the record chain hashes), other
/// `INTEGER`s `BIGINT` and `BLOB` `BYTEA` — so every value reads back as the same [`Value`]
/// on both engines. The registry's DDL uses nothing else SQLite-only.
pub fn to_postgres_ddl(sql: &str) -> String {
    // Tokens: words, or single other characters.
    let mut tokens: Vec<String> = Vec::new();
    let mut quote = false;
    for c in sql.chars() {
        let word = c.is_ascii_alphanumeric() || c == '_';
        match tokens.last_mut() {
            Some(t)
                if word && !quote && t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
            {
                t.push(c)
            }
            _ => tokens.push(c.to_string()),
        }
        if c == '\'' {
            quote = !quote;
        }
    }
    let words: Vec<usize> = (0..tokens.len())
        .filter(|&i| {
            tokens[i]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
        .collect();
    let mut out = tokens.clone();
    for (w, &i) in words.iter().enumerate() {
        let at = |k: usize| words.get(k).map(|&j| tokens[j].as_str());
        match tokens[i].as_str() {
            "INTEGER"
                if w > 0
                    && at(w - 1) == Some("id")
                    && at(w + 1) == Some("PRIMARY")
                    && at(w + 2) == Some("KEY") =>
            {
                out[i] = "BIGINT GENERATED BY DEFAULT AS IDENTITY".into();
            }
            "INTEGER" => out[i] = "BIGINT".into(),
            "BLOB" => out[i] = "BYTEA".into(),
            _ => {}
        }
    }
    out.concat()
}

/// A PostgreSQL client and the statements it prepared: each distinct statement is prepared
/// once per connection, so running it again is one round trip, not two.
struct PgClient {
    client: postgres::Client,
    statements: std::collections::HashMap<String, postgres::Statement>,
}

impl PgClient {
    fn statement(&mut self, sql: &str) -> Result<postgres::Statement, DbError> {
        if let Some(st) = self.statements.get(sql) {
            return Ok(st.clone());
        }
        let st = self.client.prepare(&to_postgres_placeholders(sql))?;
        self.statements.insert(sql.to_string(), st.clone());
        Ok(st)
    }

    fn execute(&mut self, sql: &str, values: &[Value]) -> Result<u64, DbError> {
        let st = self.statement(sql)?;
        with_pg_params(values, |p| self.client.execute(&st, p)).map_err(DbError::from)
    }

    fn query(&mut self, sql: &str, values: &[Value]) -> Result<Vec<postgres::Row>, DbError> {
        let st = self.statement(sql)?;
        with_pg_params(values, |p| self.client.query(&st, p)).map_err(DbError::from)
    }
}

fn with_pg_params<R>(values: &[Value], f: impl FnOnce(&[&(dyn ToSql + Sync)]) -> R) -> R {
    let args: Vec<PgParam<'_>> = values.iter().map(PgParam).collect();
    let refs: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a as &(dyn ToSql + Sync)).collect();
    f(&refs)
}

enum Inner {
    Sqlite(rusqlite::Connection),
    // `RefCell`: the registry's queries take `&self` (as rusqlite's do); one thread only.
    // Boxed: a client with its statement cache is several times an SQLite connection.
    Postgres(Box<RefCell<PgClient>>),
}

/// A connection to the registry's database.
pub struct Connection {
    inner: Inner,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("engine", &self.engine())
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// An SQLite connection.
    pub fn sqlite(conn: rusqlite::Connection) -> Self {
        Self {
            inner: Inner::Sqlite(conn),
        }
    }

    /// Connects to PostgreSQL at `url`. The password comes from `PGPASSWORD` or the pgpass
    /// file (`PGPASSFILE`, else `~/.pgpass`), never from the URL ([`crate::registry_url`] refuses one).
    pub fn connect_postgres(url: &str) -> Result<Self, DbError> {
        let mut config: postgres::Config = url.parse()?;
        if config.get_password().is_none()
            && let Some(pw) = crate::registry_url::password_for(&config)
        {
            config.password(pw);
        }
        config.connect_timeout(std::time::Duration::from_secs(10));
        let client = config.connect(postgres::NoTls)?;
        Ok(Self {
            inner: Inner::Postgres(Box::new(RefCell::new(PgClient {
                client,
                statements: std::collections::HashMap::new(),
            }))),
        })
    }

    /// Which engine this is.
    pub fn engine(&self) -> Engine {
        match self.inner {
            Inner::Sqlite(_) => Engine::Sqlite,
            Inner::Postgres(_) => Engine::Postgres,
        }
    }

    /// The SQLite connection (engine-specific pragmas, file paths), if this is SQLite.
    pub fn as_sqlite(&self) -> Option<&rusqlite::Connection> {
        match &self.inner {
            Inner::Sqlite(c) => Some(c),
            Inner::Postgres(_) => None,
        }
    }

    /// Runs one statement; the number of rows it changed.
    pub fn execute<P: Params>(&self, sql: &str, params: P) -> Result<usize, DbError> {
        let values = params.into_values();
        match &self.inner {
            Inner::Sqlite(c) => Ok(c
                .prepare_cached(sql)?
                .execute(rusqlite::params_from_iter(values.iter()))?),
            Inner::Postgres(c) => {
                let n = c.borrow_mut().execute(sql, &values)?;
                Ok(usize::try_from(n).unwrap_or(usize::MAX))
            }
        }
    }

    /// Runs statements without parameters (schema steps).
    pub fn execute_batch(&self, sql: &str) -> Result<(), DbError> {
        match &self.inner {
            Inner::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Inner::Postgres(c) => Ok(c.borrow_mut().client.batch_execute(sql)?),
        }
    }

    /// Every row of a query.
    pub fn query<P: Params>(&self, sql: &str, params: P) -> Result<Vec<Row>, DbError> {
        let values = params.into_values();
        match &self.inner {
            Inner::Sqlite(c) => {
                let mut st = c.prepare_cached(sql)?;
                let n = st.column_count();
                let rows = st.query_map(rusqlite::params_from_iter(values.iter()), |r| {
                    sqlite_row(r, n)
                })?;
                Ok(rows.collect::<Result<_, _>>()?)
            }
            Inner::Postgres(c) => c
                .borrow_mut()
                .query(sql, &values)?
                .iter()
                .map(pg_row)
                .collect(),
        }
    }

    /// The first row of a query through `f`; [`DbError::NoRows`] if there is none.
    pub fn query_row<T, P: Params>(
        &self,
        sql: &str,
        params: P,
        f: impl FnOnce(&Row) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        let rows = self.query(sql, params)?;
        f(rows.first().ok_or(DbError::NoRows)?)
    }

    /// Every row of a query through `f`.
    pub fn query_map<T, P: Params>(
        &self,
        sql: &str,
        params: P,
        f: impl FnMut(&Row) -> Result<T, DbError>,
    ) -> Result<Vec<T>, DbError> {
        self.query(sql, params)?.iter().map(f).collect()
    }

    /// A statement to run with [`Statement::query_map`] or [`Statement::execute`] (the shape
    /// of rusqlite's; nothing is prepared ahead on the server).
    pub fn prepare<'c>(&'c self, sql: &str) -> Result<Statement<'c>, DbError> {
        Ok(Statement {
            conn: self,
            sql: sql.to_string(),
        })
    }

    /// Runs an `INSERT` into a table with an `id` key and returns the new row's id
    /// (`RETURNING id`: SQLite's `last_insert_rowid` has no PostgreSQL twin).
    pub fn insert_id<P: Params>(&self, sql: &str, params: P) -> Result<i64, DbError> {
        self.query_row(&format!("{sql} RETURNING id"), params, |r| r.get(0))
    }

    /// Runs a schema step written in SQLite's DDL; on PostgreSQL translated first
    /// ([`to_postgres_ddl`]), so both engines go through the same versioned steps.
    pub fn execute_schema(&self, sql: &str) -> Result<(), DbError> {
        match self.engine() {
            Engine::Sqlite => self.execute_batch(sql),
            Engine::Postgres => self.execute_batch(&to_postgres_ddl(sql)),
        }
    }

    /// The schema version: SQLite's `user_version`; on PostgreSQL the row of
    /// `keystamp_schema` (0 when the database was never migrated).
    pub fn schema_version(&self) -> Result<i64, DbError> {
        match self.engine() {
            Engine::Sqlite => self.query_row("PRAGMA user_version", (), |r| r.get(0)),
            Engine::Postgres => {
                let exists: bool = self.query_row(
                    "SELECT to_regclass('keystamp_schema') IS NOT NULL",
                    (),
                    |r| r.get(0),
                )?;
                if !exists {
                    return Ok(0);
                }
                Ok(self
                    .query_row("SELECT version FROM keystamp_schema", (), |r| r.get(0))
                    .optional()?
                    .unwrap_or(0))
            }
        }
    }

    /// Records the schema version (in the migration's transaction).
    pub fn set_schema_version(&self, version: i64) -> Result<(), DbError> {
        match self.engine() {
            Engine::Sqlite => self.execute_batch(&format!("PRAGMA user_version = {version}")),
            Engine::Postgres => {
                self.execute_batch(
                    "CREATE TABLE IF NOT EXISTS keystamp_schema (version BIGINT NOT NULL);
                     DELETE FROM keystamp_schema",
                )?;
                self.execute(
                    "INSERT INTO keystamp_schema (version) VALUES (?1)",
                    [version],
                )
                .map(|_| ())
            }
        }
    }

    /// After rows were inserted with explicit ids (`registry copy`): on PostgreSQL, each
    /// table's `id` identity goes on after its largest id (SQLite needs nothing).
    pub fn reset_identities(&self, tables: &[&str]) -> Result<(), DbError> {
        if self.engine() == Engine::Postgres {
            for t in tables {
                self.execute_batch(&format!(
                    "SELECT setval(pg_get_serial_sequence('{t}', 'id'), \
                     COALESCE((SELECT MAX(id) FROM {t}), 0) + 1, false)"
                ))?;
            }
        }
        Ok(())
    }

    /// Starts the registry's write transaction: writers run one at a time (see the module
    /// docs). Rolled back on drop unless [`Transaction::commit`]ted.
    pub fn write_transaction(&self) -> Result<Transaction<'_>, DbError> {
        match &self.inner {
            Inner::Sqlite(c) => c.execute_batch("BEGIN IMMEDIATE")?,
            Inner::Postgres(c) => c.borrow_mut().client.batch_execute(&format!(
                "BEGIN ISOLATION LEVEL READ COMMITTED; SELECT pg_advisory_xact_lock({PG_WRITE_LOCK})"
            ))?,
        }
        Ok(Transaction {
            db: self,
            open: true,
        })
    }

    /// Starts a read transaction: one consistent snapshot (the chain audit reads many tables).
    pub fn read_transaction(&self) -> Result<Transaction<'_>, DbError> {
        match &self.inner {
            Inner::Sqlite(c) => c.execute_batch("BEGIN DEFERRED")?,
            Inner::Postgres(c) => c
                .borrow_mut()
                .client
                .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")?,
        }
        Ok(Transaction {
            db: self,
            open: true,
        })
    }
}

/// A statement of a [`Connection`].
pub struct Statement<'c> {
    conn: &'c Connection,
    sql: String,
}

impl Statement<'_> {
    /// Every row through `f`, as an iterator of results (rusqlite's shape).
    pub fn query_map<T, P: Params>(
        &mut self,
        params: P,
        mut f: impl FnMut(&Row) -> Result<T, DbError>,
    ) -> Result<std::vec::IntoIter<Result<T, DbError>>, DbError> {
        let rows = self.conn.query(&self.sql, params)?;
        Ok(rows.iter().map(&mut f).collect::<Vec<_>>().into_iter())
    }

    /// Runs it; the number of rows it changed.
    pub fn execute<P: Params>(&mut self, params: P) -> Result<usize, DbError> {
        self.conn.execute(&self.sql, params)
    }
}

/// An open transaction; derefs to its [`Connection`].
pub struct Transaction<'a> {
    db: &'a Connection,
    open: bool,
}

impl std::ops::Deref for Transaction<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.db
    }
}

impl Transaction<'_> {
    /// Commits.
    pub fn commit(mut self) -> Result<(), DbError> {
        self.open = false;
        self.db.execute_batch("COMMIT")
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if self.open {
            // Nothing to do about a failed rollback: the connection is broken, and the server
            // rolls back what it had of the transaction itself.
            let _ = self.db.execute_batch("ROLLBACK");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_ddl_becomes_postgres_ddl() {
        assert_eq!(
            to_postgres_ddl(
                "CREATE TABLE t (\n    id    INTEGER PRIMARY KEY,\n    n INTEGER NOT NULL, \
                 b BLOB, k TEXT CHECK (k IN ('INTEGER')), cert_id INTEGER PRIMARY KEY);"
            ),
            "CREATE TABLE t (\n    id    BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,\n    \
             n BIGINT NOT NULL, b BYTEA, k TEXT CHECK (k IN ('INTEGER')), \
             cert_id BIGINT PRIMARY KEY);"
        );
    }

    #[test]
    fn placeholders_are_rewritten_outside_quotes() {
        assert_eq!(
            to_postgres_placeholders("SELECT ?1, ?12 FROM t WHERE a = '?3' AND \"b?\" = ?"),
            "SELECT $1, $12 FROM t WHERE a = '?3' AND \"b?\" = $1"
        );
    }

    /// The same statements give the same values on both engines (the chain hashes them).
    fn round_trip(db: &Connection, ddl: &str) {
        db.execute_batch(ddl).expect("ddl");
        let tx = db.write_transaction().expect("tx");
        let id = tx
            .insert_id(
                "INSERT INTO t (name, n, b, o) VALUES (?1, ?2, ?3, ?4)",
                params!["a", 7i64, b"\x00\x01".as_slice(), Option::<String>::None],
            )
            .expect("insert");
        assert_eq!(id, 1);
        tx.commit().expect("commit");
        {
            let tx = db.write_transaction().expect("tx");
            tx.execute("UPDATE t SET n = 8 WHERE id = ?1", [id])
                .expect("update");
            // Dropped: rolled back.
        }
        let row: Vec<Value> = db
            .query_row("SELECT id, name, n, b, o FROM t WHERE id = ?1", [id], |r| {
                (0..5usize).map(|i| r.get(i)).collect()
            })
            .expect("row");
        assert_eq!(
            row,
            [
                Value::Integer(1),
                Value::Text("a".into()),
                Value::Integer(7),
                Value::Blob(vec![0, 1]),
                Value::Null
            ]
        );
        let e = db
            .execute("INSERT INTO t (name, n) VALUES (?1, 1)", ["a"])
            .expect_err("duplicate");
        assert!(e.is_unique_violation("t", "name"), "{e}");
        assert!(!e.is_unique_violation("t", "n"), "{e}");
        let none = db
            .query_row("SELECT id FROM t WHERE name = ?1", ["zz"], |r| {
                r.get::<_, i64>(0)
            })
            .optional()
            .expect("query");
        assert_eq!(none, None);
        let exists: bool = db
            .query_row("SELECT EXISTS (SELECT 1 FROM t)", (), |r| r.get(0))
            .expect("exists");
        assert!(exists);
    }

    /// Two hosts' write transactions never overlap: the second waits (on the advisory lock)
    /// until the first commits, and then sees what it wrote. Without the lock both would read
    /// the same chain head and lot count.
    #[test]
    fn postgres_writers_on_two_connections_run_one_after_the_other() {
        let Some(cluster) = super::super::pg_cluster::skip_or_fail(
            "postgres_writers_on_two_connections_run_one_after_the_other",
        ) else {
            return;
        };
        let url = cluster.new_database().expect("db");
        let a = Connection::connect_postgres(&url).expect("a");
        a.execute_batch("CREATE TABLE head (n BIGINT NOT NULL); INSERT INTO head VALUES (0)")
            .expect("ddl");
        let tx = a.write_transaction().expect("a begins");
        let n: i64 = tx
            .query_row("SELECT n FROM head", (), |r| r.get(0))
            .expect("a reads");
        let other = std::thread::spawn({
            let url = url.clone();
            move || {
                let b = Connection::connect_postgres(&url).expect("b");
                let tx = b.write_transaction().expect("b begins");
                let n: i64 = tx
                    .query_row("SELECT n FROM head", (), |r| r.get(0))
                    .expect("b reads");
                tx.execute("UPDATE head SET n = ?1", [n + 1])
                    .expect("b writes");
                tx.commit().expect("b commits");
                n
            }
        });
        // Wait until B is blocked on the lock (polled in the server, not timed), or done (it
        // did not wait: the assertions below then fail).
        let watcher = Connection::connect_postgres(&url).expect("watcher");
        while !other.is_finished()
            && watcher
                .query_row(
                    "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted",
                    (),
                    |r| r.get::<_, i64>(0),
                )
                .expect("locks")
                == 0
        {
            std::thread::yield_now();
        }
        tx.execute("UPDATE head SET n = ?1", [n + 1])
            .expect("a writes");
        tx.commit().expect("a commits");
        assert_eq!(other.join().expect("b"), 1, "b read after a's commit");
        let n: i64 = a
            .query_row("SELECT n FROM head", (), |r| r.get(0))
            .expect("final");
        assert_eq!(n, 2, "no update lost");
    }

    #[test]
    fn sqlite_and_postgres_round_trip_the_same_values() {
        let sqlite = Connection::sqlite(rusqlite::Connection::open_in_memory().expect("open"));
        round_trip(
            &sqlite,
            "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, \
             n INTEGER NOT NULL, b BLOB, o TEXT)",
        );
        let Some(cluster) = super::super::pg_cluster::skip_or_fail(
            "sqlite_and_postgres_round_trip_the_same_values (PostgreSQL half)",
        ) else {
            return;
        };
        let pg =
            Connection::connect_postgres(&cluster.new_database().expect("db")).expect("connect");
        assert_eq!(pg.engine(), Engine::Postgres);
        round_trip(
            &pg,
            "CREATE TABLE t (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, \
             name TEXT NOT NULL UNIQUE, n BIGINT NOT NULL, b BYTEA, o TEXT)",
        );
    }
}
