//! EC2 instance metadata (IMDSv2 only: a session token first, then reads),
//! turned into node labels so stacks can spread replicas across zones with
//! `placement.preferences: [spread: node.labels.zone]`.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::error::{Error, Result};

/// Metadata path -> node label key.
const FIELDS: &[(&str, &str)] = &[
    ("placement/availability-zone", "zone"),
    ("instance-id", "instance-id"),
    ("instance-type", "instance-type"),
    ("instance-life-cycle", "lifecycle"),
];

pub struct Imds {
    base: String,
    http: reqwest::Client,
}

impl Imds {
    pub fn new(base: &str) -> Result<Imds> {
        // IMDS answers in microseconds on EC2; a long wait means "not on EC2".
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .connect_timeout(Duration::from_secs(1))
            .build()
            .map_err(|e| Error::Config(format!("http client: {e}")))?;
        Ok(Imds {
            base: base.trim_end_matches('/').to_string(),
            http,
        })
    }

    fn fail(&self, message: impl Into<String>) -> Error {
        Error::Imds {
            url: self.base.clone(),
            message: message.into(),
        }
    }

    async fn session_token(&self) -> Result<String> {
        let resp = self
            .http
            .put(format!("{}/latest/api/token", self.base))
            .header("X-aws-ec2-metadata-token-ttl-seconds", "300")
            .send()
            .await
            .map_err(|e| self.fail(format!("getting an IMDSv2 token: {e}")))?;
        if !resp.status().is_success() {
            return Err(self.fail(format!("IMDSv2 token request answered {}", resp.status())));
        }
        resp.text().await.map_err(|e| self.fail(e.to_string()))
    }

    async fn read(&self, token: &str, path: &str) -> Result<Option<String>> {
        let resp = self
            .http
            .get(format!("{}/latest/meta-data/{path}", self.base))
            .header("X-aws-ec2-metadata-token", token)
            .send()
            .await
            .map_err(|e| self.fail(format!("reading {path}: {e}")))?;
        match resp.status() {
            s if s.is_success() => Ok(Some(
                resp.text().await.map_err(|e| self.fail(e.to_string()))?,
            )),
            reqwest::StatusCode::NOT_FOUND => Ok(None),
            s => Err(self.fail(format!("reading {path} answered {s}"))),
        }
    }

    /// Read several metadata paths with one session token; None where the
    /// path does not exist (404), as termination notices do until they come.
    pub async fn read_all(&self, paths: &[&str]) -> Result<Vec<Option<String>>> {
        let token = self.session_token().await?;
        let mut values = Vec::with_capacity(paths.len());
        for path in paths {
            values.push(self.read(&token, path).await?.map(|v| v.trim().to_string()));
        }
        Ok(values)
    }

    /// The node labels this instance should carry. Fields IMDS does not know
    /// (e.g. lifecycle on some instance kinds) are simply left out.
    pub async fn labels(&self) -> Result<BTreeMap<String, String>> {
        let token = self.session_token().await?;
        let mut labels = BTreeMap::new();
        for (path, label) in FIELDS {
            if let Some(value) = self.read(&token, path).await? {
                labels.insert((*label).to_string(), value.trim().to_string());
            }
        }
        Ok(labels)
    }
}

/// Parse `KEY=VALUE` flags into labels; a bad one is a configuration error.
pub fn parse_labels(raw: &[String]) -> Result<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    for item in raw.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        let (k, v) = item
            .split_once('=')
            .ok_or_else(|| Error::Config(format!("label `{item}` must be KEY=VALUE")))?;
        if k.trim().is_empty() {
            return Err(Error::Config(format!("label `{item}` has an empty key")));
        }
        labels.insert(k.trim().to_string(), v.trim().to_string());
    }
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_parse_and_reject_garbage() {
        let l =
            parse_labels(&["zone=eu-west-1a".into(), " tier = web ".into(), "".into()]).unwrap();
        assert_eq!(l["zone"], "eu-west-1a");
        assert_eq!(l["tier"], "web");
        assert!(parse_labels(&["novalue".into()]).is_err());
        assert!(parse_labels(&["=x".into()]).is_err());
    }
}
