//! The agent API's bearer secret: from a file or a flag, or else from the
//! token store where `init` publishes it.

use crate::error::Error;
use crate::store::token_store::{Key, TokenStore};

pub fn read_secret(args: &crate::cli::SecretArgs) -> Result<Option<String>, Error> {
    if let Some(path) = &args.api_secret_file {
        let s = std::fs::read_to_string(path).map_err(Error::io(path.display().to_string()))?;
        return Ok(Some(s.trim_end_matches(['\n', '\r']).to_string()));
    }
    Ok(args.api_secret.clone().filter(|s| !s.is_empty()))
}

/// The API secret from the flags, or else from the token store (where `init`
/// publishes it), so a node's env file needs no secret of its own.
pub async fn resolve_secret(
    args: &crate::cli::SecretArgs,
    store: Option<&TokenStore>,
) -> Result<Option<String>, Error> {
    if let Some(secret) = read_secret(args)? {
        return Ok(Some(secret));
    }
    match store {
        Some(store) => store.get(Key::ApiSecret).await,
        None => Ok(None),
    }
}
