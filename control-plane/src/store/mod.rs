//! Postgres storage of the configuration, its version history, admin tokens
//! and the fleet. Every config change goes through a [`WriteTx`], which
//! draws exactly one new version per committed change.

mod admin;
mod entities;
mod fleet;
pub mod history;
mod policy;
mod versions;

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::MigrateDatabase;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres};

pub use admin::{AuditEntry, TokenInfo};
pub use entities::{EntityKind, EntitySpec, ListPage, Refs, Stored};
pub use fleet::{DataPlaneRow, DpStatus, HelloInfo, refused_newer};
pub use versions::{CONFIG_CHANNEL, Change, SnapshotBuild, VersionInfo, WriteTx};

use crate::Error;

#[derive(Clone)]
pub struct Store {
    pool: PgPool,
    /// The last snapshot this process built, shown by `GET /config`.
    last_build: versions::LastBuild,
}

impl Store {
    /// Connects, creating the database if it does not exist, and runs the
    /// migrations.
    pub async fn connect(url: &str) -> Result<Store, Error> {
        // Several processes may race to create the same database at first
        // start; losing the race is fine.
        if !Postgres::database_exists(url).await?
            && let Err(e) = Postgres::create_database(url).await
            && !Postgres::database_exists(url).await.unwrap_or(false)
        {
            return Err(e.into());
        }
        let options = PgConnectOptions::from_str(url)?.application_name("turnpike-control-plane");
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await?;
        let store = Store {
            pool,
            last_build: Default::default(),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Wraps an existing pool (used by `#[sqlx::test]`).
    pub async fn from_pool(pool: PgPool) -> Result<Store, Error> {
        let store = Store {
            pool,
            last_build: Default::default(),
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), Error> {
        sqlx::migrate!("../migrations").run(&self.pool).await?;
        Ok(())
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The newest snapshot this process built, if it built one.
    pub fn last_build(&self) -> Option<SnapshotBuild> {
        self.last_build.get()
    }

    /// Durations of this process's snapshot builds (shared, for `/metrics`).
    pub fn build_durations(&self) -> prometheus_client::metrics::histogram::Histogram {
        self.last_build.durations()
    }

    pub async fn ping(&self) -> Result<(), Error> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn get_setting(&self, key: &str) -> Result<Option<String>, Error> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT value FROM cluster_settings WHERE key = $1")
                .bind(key)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|r| r.0))
    }

    pub async fn put_setting(&self, key: &str, value: &str) -> Result<(), Error> {
        sqlx::query(
            "INSERT INTO cluster_settings (key, value) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
        )
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn has_admin_token(&self) -> Result<bool, Error> {
        let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM admin_tokens")
            .fetch_one(&self.pool)
            .await?;
        Ok(n > 0)
    }

    pub async fn put_admin_token(
        &self,
        name: &str,
        token_hash: &str,
        role: &str,
    ) -> Result<(), Error> {
        sqlx::query(
            "INSERT INTO admin_tokens (id, name, token_hash, role) VALUES ($1, $2, $3, $4)
             ON CONFLICT (name) DO UPDATE SET token_hash = EXCLUDED.token_hash, role = EXCLUDED.role",
        )
        .bind(uuid::Uuid::now_v7())
        .bind(name)
        .bind(token_hash)
        .bind(role)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The name and role of the admin token with this digest.
    pub async fn find_admin_token(
        &self,
        token_hash: &str,
    ) -> Result<Option<(String, String)>, Error> {
        Ok(
            sqlx::query_as("SELECT name, role FROM admin_tokens WHERE token_hash = $1")
                .bind(token_hash)
                .fetch_optional(&self.pool)
                .await?,
        )
    }
}
