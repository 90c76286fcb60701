//! Throttling of failed sign-ins and bad tokens, per client address and per token prefix. Only
//! failures are counted and held back: a valid token always works (see
//! [`check_token`](super::auth::check_token)). Behind a reverse proxy the address comes from
//! `X-Forwarded-For`, but only when the connection comes from a proxy listed in
//! SHOEBOX_TRUSTED_PROXIES; anyone else could write that header.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::HttpRequest;
use ipnet::IpNet;

use super::error::ApiError;

/// Failures allowed per address, and per token prefix, in one window before further failures
/// are answered `429`.
const MAX_FAILURES: u32 = 10;
const WINDOW: Duration = Duration::from_secs(300);
/// Keys remembered at most; the oldest windows are dropped first.
const MAX_TRACKED: usize = 10_000;
/// How much of a presented token keys its failures: guesses at one token share a budget
/// wherever they come from, and a generated token's prefix says nothing of its secret part.
const PREFIX_CHARS: usize = 12;

/// What failures are counted by.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
enum Key {
    Address(IpAddr),
    Prefix(String),
}

#[derive(Default)]
pub struct Limiter {
    failures: Mutex<HashMap<Key, (u32, Instant)>>,
}

fn trusted(ip: IpAddr, proxies: &[IpNet]) -> bool {
    proxies.iter().any(|net| net.contains(&ip))
}

fn keys(client: Option<IpAddr>, token: &str) -> impl Iterator<Item = Key> {
    let prefix: String = token.chars().take(PREFIX_CHARS).collect();
    client
        .map(Key::Address)
        .into_iter()
        .chain(std::iter::once(Key::Prefix(prefix)))
}

impl Limiter {
    /// The client's address: the peer, or for a trusted proxy the nearest untrusted address in
    /// `X-Forwarded-For` (read right to left, since proxies append).
    pub fn client(&self, req: &HttpRequest, proxies: &[IpNet]) -> Option<IpAddr> {
        let peer = req.peer_addr()?.ip();
        if !trusted(peer, proxies) {
            return Some(peer);
        }
        let mut client = peer;
        // Walk back from the nearest hop past trusted proxies.
        let hops: Vec<IpAddr> = req
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter_map(|h| h.parse().ok())
                    .collect::<Vec<_>>()
            })
            .collect();
        for ip in hops.iter().rev() {
            if !trusted(*ip, proxies) {
                return Some(*ip);
            }
            client = *ip;
        }
        Some(client)
    }

    /// Refuses a failed attempt from an address, or at a token prefix, that failed too often
    /// recently.
    pub fn check(&self, client: Option<IpAddr>, token: &str) -> Result<(), ApiError> {
        let map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        for key in keys(client, token) {
            if let Some((count, since)) = map.get(&key) {
                if *count >= MAX_FAILURES && since.elapsed() < WINDOW {
                    return Err(ApiError::TooManyRequests {
                        retry_after: (WINDOW - since.elapsed()).as_secs().max(1),
                    });
                }
            }
        }
        Ok(())
    }

    pub fn failed(&self, client: Option<IpAddr>, token: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        for key in keys(client, token) {
            if map.len() >= MAX_TRACKED {
                map.retain(|_, (_, since)| since.elapsed() < WINDOW);
                if map.len() >= MAX_TRACKED {
                    if let Some(oldest) = map
                        .iter()
                        .min_by_key(|(_, (_, s))| *s)
                        .map(|(k, _)| k.clone())
                    {
                        map.remove(&oldest);
                    }
                }
            }
            let entry = map.entry(key).or_insert((0, Instant::now()));
            if entry.1.elapsed() >= WINDOW {
                *entry = (0, Instant::now());
            }
            entry.0 += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        let proxies: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let l = Limiter::default();
        let direct = TestRequest::default()
            .peer_addr("192.0.2.7:1000".parse().unwrap())
            .insert_header(("x-forwarded-for", "198.51.100.1"))
            .to_http_request();
        assert_eq!(
            l.client(&direct, &proxies),
            Some("192.0.2.7".parse().unwrap()),
            "a stranger cannot claim an address"
        );
        let proxied = TestRequest::default()
            .peer_addr("10.1.2.3:1000".parse().unwrap())
            .insert_header(("x-forwarded-for", "203.0.113.9, 198.51.100.1, 10.9.9.9"))
            .to_http_request();
        assert_eq!(
            l.client(&proxied, &proxies),
            Some("198.51.100.1".parse().unwrap())
        );
    }

    #[test]
    fn too_many_failures_are_refused_until_the_window_passes() {
        let l = Limiter::default();
        let ip = Some("192.0.2.1".parse().unwrap());
        for n in 0..MAX_FAILURES {
            let guess = format!("guess-{n:08}");
            assert!(l.check(ip, &guess).is_ok());
            l.failed(ip, &guess);
        }
        assert!(matches!(
            l.check(ip, "another-guess"),
            Err(ApiError::TooManyRequests { .. })
        ));
        assert!(
            l.check(Some("192.0.2.2".parse().unwrap()), "another-guess")
                .is_ok(),
            "other clients are unaffected"
        );
    }

    /// Guesses at one token share a budget across addresses.
    #[test]
    fn failures_at_one_token_prefix_are_throttled_from_any_address() {
        let l = Limiter::default();
        for n in 0..MAX_FAILURES {
            let ip = Some(IpAddr::from([198, 51, 100, n as u8]));
            l.failed(ip, "sbx_0123456789-guess");
        }
        assert!(l
            .check(Some("203.0.113.1".parse().unwrap()), "sbx_01234567-other")
            .is_err());
        assert!(l
            .check(Some("203.0.113.1".parse().unwrap()), "sbx_ffffffff")
            .is_ok());
    }
}
