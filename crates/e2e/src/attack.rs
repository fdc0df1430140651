//! What `tests/attacker.sh` reports from inside the swarm, read and judged:
//! one line per attempt ("proxy: 401 401 … 429", "connections: 64 6", …).

use anyhow::{Result, bail};

/// The attacker's lines, each without its label.
pub struct AttackReport {
    pub via_proxy: String,
    pub via_replica: String,
    /// Connections served and closed, "64 6".
    pub held: String,
    /// `uniq -c` of the statuses: "886 200 214 429".
    pub rate: String,
}

impl AttackReport {
    pub fn parse(printed: &str) -> AttackReport {
        let said = |what: &str| {
            let prefix = format!("{what}: ");
            let line = printed.lines().find_map(|line| line.strip_prefix(&prefix));
            line.unwrap_or("").trim().to_string()
        };
        AttackReport {
            via_proxy: said("proxy"),
            via_replica: said("replica"),
            held: said("connections"),
            rate: said("requests"),
        }
    }

    /// The limits held: 20 of 25 logins through the proxy checked and 5
    /// refused (20 per address, whatever X-Forwarded-For named), all 5
    /// straight at a replica refused, 64 of 70 connections served, and at
    /// least 100 of 1,100 quick requests refused.
    pub fn judge(&self) -> Result<()> {
        let count = |status: &str, of: &str| of.split_whitespace().filter(|s| *s == status).count();
        let (served, refused) = (self.answered("200"), self.answered("429"));
        if count("401", &self.via_proxy) != 20
            || count("429", &self.via_proxy) != 5
            || count("429", &self.via_replica) != 5
            || self.held != "64 6"
            || refused < 100
            || served < 500
        {
            bail!(
                "client limits from the stack's network: proxy '{}' (want 20 x 401, 5 x 429), \
                 replica '{}' (want 5 x 429), connections served/closed '{}' (want 64 6), \
                 requests '{}' (want 100 or more 429, and 500 or more 200)",
                self.via_proxy,
                self.via_replica,
                self.held,
                self.rate
            );
        }
        Ok(())
    }
}

impl AttackReport {
    /// How many of the 1,100 requests got `status`: `uniq -c` prints each
    /// status after its count.
    fn answered(&self, status: &str) -> u32 {
        let words: Vec<&str> = self.rate.split_whitespace().collect();
        let pairs = words.chunks_exact(2);
        let found = pairs
            .filter(|pair| pair[1] == status)
            .find_map(|pair| pair[0].parse().ok());
        found.unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn printed(proxy_429s: usize, held: &str, rate: &str) -> String {
        let proxy = format!(
            "{}{}",
            "401 ".repeat(25 - proxy_429s),
            "429 ".repeat(proxy_429s)
        );
        format!(
            "proxy: {proxy}\nreplica: 429 429 429 429 429 \nconnections: {held}\nrequests: {rate}\n"
        )
    }

    #[test]
    fn limits_that_held_pass() {
        let report = AttackReport::parse(&printed(5, "64 6", " 886 200 214 429 "));
        assert_eq!(report.rate, "886 200 214 429");
        report.judge().unwrap();
    }

    #[test]
    fn each_limit_that_gave_way_fails() {
        for (proxy_429s, held, rate) in [
            (0, "64 6", "886 200 214 429"),
            (5, "70 0", "886 200 214 429"),
            (5, "64 6", "1100 200"),
            (5, "64 6", "1050 200 50 429"),
            (5, "64 6", "1100 429"),
            (5, "64 6", "671 200 429 503"),
        ] {
            let report = AttackReport::parse(&printed(proxy_429s, held, rate));
            assert!(report.judge().is_err(), "{proxy_429s} {held} {rate}");
        }
        assert!(AttackReport::parse("").judge().is_err());
    }
}
