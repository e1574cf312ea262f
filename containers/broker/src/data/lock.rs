//! The registry write lock: every registry write that checks before it writes (register,
//! place, remove, register-self) updates the one lock row first, inside its transaction, so
//! those run one at a time and see each other. A heartbeat is a single-row update of an
//! existing region and takes no lock.

use diesel::prelude::*;
use ship::AnyConnection;

use super::schema::broker_registry_lock;

pub fn registry(conn: &mut AnyConnection) -> QueryResult<()> {
    diesel::update(broker_registry_lock::table.find(1))
        .set(broker_registry_lock::version.eq(broker_registry_lock::version + 1))
        .execute(conn)
        .map(drop)
}
