//! Schema migrations: SQL files applied in order, tracked with `PRAGMA user_version`
//! (the number of migrations applied so far).

use rusqlite::{Connection, TransactionBehavior};

/// Every migration, in order; a new one is appended, never edited once released.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_create_pastes.sql"),
    include_str!("../migrations/0002_deletion_log.sql"),
    include_str!("../migrations/0003_lifecycle.sql"),
];

/// Brings the schema up to date, each migration in its own transaction together with
/// the version bump, so a crash leaves the database at a known version.
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), String> {
    let current: i64 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(|err| format!("cannot read user_version: {err}"))?;
    let known = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
    if current > known {
        return Err(format!(
            "database schema version {current} is newer than this program knows ({known})"
        ));
    }
    for (version, sql) in (1..)
        .zip(MIGRATIONS.iter())
        .skip_while(|(v, _)| *v <= current)
    {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|err| format!("cannot begin migration {version}: {err}"))?;
        tx.execute_batch(sql)
            .map_err(|err| format!("migration {version}: {err}"))?;
        tx.pragma_update(None, "user_version", version)
            .map_err(|err| format!("cannot record migration {version}: {err}"))?;
        tx.commit()
            .map_err(|err| format!("cannot commit migration {version}: {err}"))?;
        tracing::info!(version, "applied migration");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_apply_once_and_record_the_version() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        migrate(&mut conn).unwrap();
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, MIGRATIONS.len() as i64);
        conn.execute(
            "INSERT INTO pastes (paste_id, paste_path, created_at, seq) VALUES ('a', 'p', 1, 1)",
            [],
        )
        .unwrap();
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        assert!(migrate(&mut conn).unwrap_err().contains("newer"));
    }
}
