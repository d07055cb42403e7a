//! The client's network address, for throttling and the audit trail.

use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;
use axum::http::HeaderMap;

/// The peer address, or with `trust_forwarded_for` the last `X-Forwarded-For` entry (the
/// one our own proxy appended; earlier entries are client-controlled).
pub fn client_ip(
    trust_forwarded_for: bool,
    peer: Option<&ConnectInfo<SocketAddr>>,
    headers: &HeaderMap,
) -> Option<IpAddr> {
    if trust_forwarded_for {
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|entry| entry.trim().parse::<IpAddr>().ok())
            .next_back();
        if forwarded.is_some() {
            return forwarded;
        }
    }
    peer.map(|ConnectInfo(addr)| addr.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_is_used_only_when_trusted() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "203.0.113.9, 198.51.100.7".parse().unwrap());
        let peer = ConnectInfo(SocketAddr::from(([10, 0, 0, 1], 4000)));
        assert_eq!(
            client_ip(false, Some(&peer), &headers),
            Some(IpAddr::from([10, 0, 0, 1]))
        );
        assert_eq!(
            client_ip(true, Some(&peer), &headers),
            Some(IpAddr::from([198, 51, 100, 7]))
        );
    }
}
