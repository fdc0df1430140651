//! State the replicas share through Redis, and each replica's copies of it:
//! the one Redis pool, the session store, the session and read caches kept
//! correct by pub/sub.

pub mod read_cache;
pub mod redis;
pub mod session_cache;
pub mod session_store;
