//! Who the client is: the TCP peer, or, behind `TRUSTED_PROXIES`, what `X-Forwarded-For` says.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use axum::{
    extract::{ConnectInfo, FromRef, FromRequestParts},
    http::{HeaderMap, request::Parts},
};
use ipnet::IpNet;

use super::{HttpSettings, error::AppError};

/// The client's address: the peer, or what `X-Forwarded-For` says when the peer is a
/// trusted proxy. An IPv4-mapped IPv6 address (a dual-stack listener's view of an IPv4 peer)
/// is the IPv4 address, so `TRUSTED_PROXIES` and the login throttle see one address, not two.
pub struct ClientAddr(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr
where
    std::sync::Arc<HttpSettings>: FromRef<S>,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        let Some(peer) = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()) else {
            return Ok(Self("unknown".to_owned()));
        };
        let settings = std::sync::Arc::<HttpSettings>::from_ref(state);
        Ok(Self(client_address(peer, &parts.headers, &settings.trusted_proxies).to_string()))
    }
}

/// Whether the request reached a trusted proxy over HTTPS (`X-Forwarded-Proto: https` from a
/// peer in `TRUSTED_PROXIES`): the links the service writes to itself then say `https`.
pub fn forwarded_https(parts: &Parts, trusted_proxies: &[IpNet]) -> bool {
    let Some(peer) = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_canonical()) else {
        return false;
    };
    let mapped = match peer {
        IpAddr::V4(v4) => IpAddr::V6(v4.to_ipv6_mapped()),
        IpAddr::V6(_) => peer,
    };
    let trusted = trusted_proxies.iter().any(|net| net.contains(&peer) || net.contains(&mapped));
    let proto = parts.headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok());
    trusted && proto.is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
}

/// Walking `X-Forwarded-For` from the right while the address reached is a trusted proxy: the
/// first address that is not one, else the last address reached. Each proxy appends the
/// address it saw, so everything left of an untrusted address could be forged by the client;
/// and an entry that cannot be read at all ends the walk (nothing left of it is believed), so
/// garbage cannot make the walk skip to the client's own words.
fn client_address(peer: IpAddr, headers: &HeaderMap, trusted_proxies: &[IpNet]) -> IpAddr {
    // Addresses are compared as IPv4 where they are IPv4; a proxy listed in its mapped form matches too.
    let trusted = |ip: &IpAddr| {
        let mapped = match ip {
            IpAddr::V4(v4) => IpAddr::V6(v4.to_ipv6_mapped()),
            IpAddr::V6(_) => *ip,
        };
        trusted_proxies.iter().any(|net| net.contains(ip) || net.contains(&mapped))
    };
    let mut client = peer.to_canonical();
    if !trusted(&client) {
        return client;
    }
    // Split on the bytes, so that a client's non-text entry is one unreadable entry (`None`),
    // not a reason to disbelieve the entries proxies appended after it; empty list elements
    // are ignored (RFC 9110 §5.6.1).
    let entries = headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(|entry| std::str::from_utf8(entry).ok().map(str::trim))
        .filter(|entry| entry != &Some(""))
        .collect::<Vec<_>>();
    for entry in entries.into_iter().rev() {
        let Some(ip) = entry.and_then(forwarded_address) else { break };
        client = ip;
        if !trusted(&client) {
            break;
        }
    }
    client
}

/// One `X-Forwarded-For` entry: an IPv4 or IPv6 address, optionally with a port
/// (`203.0.113.7:51234`, `[2001:db8::1]:443`, `[2001:db8::1]`); IPv4-mapped addresses as IPv4.
fn forwarded_address(entry: &str) -> Option<IpAddr> {
    let is_port =
        |port: &str| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) && port.parse::<u16>().is_ok();
    let ip = if let Some(rest) = entry.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        if !after.is_empty() && !after.strip_prefix(':').is_some_and(is_port) {
            return None;
        }
        IpAddr::V6(inside.parse::<Ipv6Addr>().ok()?)
    } else if let Ok(ip) = entry.parse::<IpAddr>() {
        ip
    } else {
        // Only IPv4 takes a port without brackets: in `2001:db8::1:443` the port cannot be told apart.
        let (host, port) = entry.rsplit_once(':')?;
        if !is_port(port) {
            return None;
        }
        IpAddr::V4(host.parse::<Ipv4Addr>().ok()?)
    };
    Some(ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        headers
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let headers = forwarded(&["198.51.100.9"]);
        assert_eq!(client_address(ip("203.0.113.7"), &headers, &[]), ip("203.0.113.7"));
        let proxies = ["10.0.0.0/8".parse().unwrap()];
        assert_eq!(client_address(ip("203.0.113.7"), &headers, &proxies), ip("203.0.113.7"));
    }

    #[test]
    fn behind_trusted_proxies_the_rightmost_untrusted_address_is_the_client() {
        let proxies: [IpNet; 1] = ["10.0.0.0/8".parse().unwrap()];
        // The client forged the first entry; the second was added by our own proxy chain.
        let headers = forwarded(&["1.2.3.4, 203.0.113.7", "10.0.0.2"]);
        assert_eq!(client_address(ip("10.0.0.1"), &headers, &proxies), ip("203.0.113.7"));
        // Nothing but proxies: the last one reached.
        let headers = forwarded(&["10.0.0.4, 10.0.0.3"]);
        assert_eq!(client_address(ip("10.0.0.1"), &headers, &proxies), ip("10.0.0.4"));
        // No header: the peer.
        assert_eq!(client_address(ip("10.0.0.1"), &HeaderMap::new(), &proxies), ip("10.0.0.1"));
    }

    #[test]
    fn ports_and_brackets_are_stripped_so_the_forged_left_entry_is_not_believed() {
        let proxies: [IpNet; 1] = ["127.0.0.1/32".parse().unwrap()];
        for (real, client) in [
            ("203.0.113.7:51234", "203.0.113.7"),
            ("[2001:db8::1]:443", "2001:db8::1"),
            ("[2001:db8::1]", "2001:db8::1"),
            ("2001:db8::1", "2001:db8::1"),
            ("::ffff:203.0.113.7", "203.0.113.7"),
            ("[::ffff:203.0.113.7]:8080", "203.0.113.7"),
        ] {
            let headers = forwarded(&[&format!("1.2.3.4, {real}")]);
            assert_eq!(client_address(ip("127.0.0.1"), &headers, &proxies), ip(client), "{real}");
        }
    }

    #[test]
    fn an_unreadable_entry_ends_the_walk_at_the_last_address_reached() {
        let proxies: [IpNet; 1] = ["10.0.0.0/8".parse().unwrap()];
        for garbage in
            ["not an address", "unknown", "1.2.3.4:99999", "1.2.3.4:", "[2001:db8::1]x", "2001:db8::1:443x", "_hidden"]
        {
            // Right of the garbage, a proxy: it is the last address reached, and the forged entry is not believed.
            let headers = forwarded(&[&format!("1.2.3.4, {garbage}, 10.0.0.3")]);
            assert_eq!(client_address(ip("10.0.0.1"), &headers, &proxies), ip("10.0.0.3"), "{garbage}");
            // Garbage right-most: the peer.
            let headers = forwarded(&[&format!("1.2.3.4, {garbage}")]);
            assert_eq!(client_address(ip("10.0.0.1"), &headers, &proxies), ip("10.0.0.1"), "{garbage}");
        }
        // Header values are one list, in order; a value that is not text is unreadable.
        let mut headers = forwarded(&["1.2.3.4"]);
        headers.append("x-forwarded-for", HeaderValue::from_bytes(b"\xff").unwrap());
        headers.append("x-forwarded-for", HeaderValue::from_static("10.0.0.3"));
        assert_eq!(client_address(ip("10.0.0.1"), &headers, &proxies), ip("10.0.0.3"));
        // Empty list elements are ignored.
        let headers = forwarded(&["203.0.113.7, , 10.0.0.3,"]);
        assert_eq!(client_address(ip("10.0.0.1"), &headers, &proxies), ip("203.0.113.7"));
    }

    #[test]
    fn a_clients_unreadable_bytes_do_not_hide_what_the_proxy_appended() {
        let proxies: [IpNet; 1] = ["10.0.0.0/8".parse().unwrap()];
        let mut headers = HeaderMap::new();
        let mut value = b"\xff\xfe, ".to_vec();
        value.extend_from_slice(b"203.0.113.7");
        headers.append("x-forwarded-for", HeaderValue::from_bytes(&value).unwrap());
        assert_eq!(client_address(ip("10.0.0.1"), &headers, &proxies), ip("203.0.113.7"));
    }

    #[test]
    fn an_ipv4_mapped_peer_is_its_ipv4_address() {
        let proxies: [IpNet; 1] = ["127.0.0.1/32".parse().unwrap()];
        let headers = forwarded(&["203.0.113.7"]);
        assert_eq!(client_address(ip("::ffff:127.0.0.1"), &headers, &proxies), ip("203.0.113.7"));
        // Untrusted: the peer, keyed as IPv4 so it shares its throttle with plain IPv4 connections.
        assert_eq!(client_address(ip("::ffff:198.51.100.9"), &headers, &proxies), ip("198.51.100.9"));
        // A proxy listed in its mapped form is still trusted.
        let mapped: [IpNet; 1] = ["::ffff:127.0.0.1/128".parse().unwrap()];
        assert_eq!(client_address(ip("::ffff:127.0.0.1"), &headers, &mapped), ip("203.0.113.7"));
    }
}
