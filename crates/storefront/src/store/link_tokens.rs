//! The tokens of links the shop mails (password reset, address
//! confirmation). The token goes only into the mail; tables keep its
//! SHA-256, so a copy of the database opens no account.

use sha2::{Digest, Sha256};

/// A fresh token for a link: 32 random bytes, hex.
pub fn new_token() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What a table keys a token by.
pub fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
