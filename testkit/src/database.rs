//! A database of its own on a database server, for one test or bench run, dropped
//! however the run ends: suites share the machine's server, so each one works in
//! a database nobody else touches.

use sea_orm::ConnectionTrait;

pub struct ScratchDatabase {
    admin: String,
    name: String,
    url: String,
}

impl ScratchDatabase {
    /// Creates `{prefix}_{random}` through `admin`, an account that may create
    /// databases (`postgres://postgres@127.0.0.1:5432/postgres`,
    /// `mysql://root@127.0.0.1:3306/mysql`). Panics if the server does not answer.
    pub async fn create(admin: &str, prefix: &str) -> ScratchDatabase {
        let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
        let conn = sea_orm::Database::connect(admin)
            .await
            .unwrap_or_else(|e| panic!("{admin} unreachable: {e}"));
        conn.execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        let _ = conn.close().await;
        let base = admin.rsplit_once('/').map_or(admin, |(b, _)| b);
        ScratchDatabase {
            url: format!("{base}/{name}"),
            admin: admin.to_string(),
            name,
        }
    }

    /// The URL of the database, as the admin URL with its database replaced.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the server is PostgreSQL (else MySQL/MariaDB).
    pub fn is_postgres(&self) -> bool {
        self.admin.starts_with("postgres")
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // `WITH (FORCE)`: connections a test left open (a server still shutting
        // down) would otherwise keep the database alive.
        let force = if self.is_postgres() {
            " WITH (FORCE)"
        } else {
            ""
        };
        // `Drop` cannot await, and the caller's runtime may be unwinding (or be a
        // current-thread one that this would block): a runtime of its own on a
        // thread of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(conn) = sea_orm::Database::connect(&admin).await {
                    if !force.is_empty() {
                        // Handled by `WITH (FORCE)`.
                    } else if let Ok(rows) = conn
                        .query_all_raw(sea_orm::Statement::from_string(
                            conn.get_database_backend(),
                            format!(
                                "SELECT id FROM information_schema.processlist WHERE db = '{name}'"
                            ),
                        ))
                        .await
                    {
                        // MySQL has no FORCE: a connection still in a transaction
                        // (a server's background work the test did not wait for,
                        // on the runtime this drop now blocks) would hold the
                        // DROP forever. End those connections first.
                        for row in rows {
                            if let Ok(id) = row.try_get_by_index::<u64>(0) {
                                let _ = conn.execute_unprepared(&format!("KILL {id}")).await;
                            }
                        }
                    }
                    let _ = conn
                        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name}{force}"))
                        .await;
                    let _ = conn.close().await;
                }
            })
        })
        .join();
    }
}
