//! The registry write lock: every registry write updates the one lock row first, inside its
//! transaction, so registry writes run one at a time (checks and writes see each other).

use diesel::prelude::*;
use ship::AnyConnection;

use super::schema::broker_registry_lock;

pub fn registry(conn: &mut AnyConnection) -> QueryResult<()> {
    diesel::update(broker_registry_lock::table.find(1))
        .set(broker_registry_lock::version.eq(broker_registry_lock::version + 1))
        .execute(conn)
        .map(drop)
}
