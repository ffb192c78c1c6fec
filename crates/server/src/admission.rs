//! Admission of client connections: how many come from each address
//! (`maxClientCnxns`) and in all (`maxCnxns`), and the `ip:<address>`
//! identity the connections from one address share.

use paddock_proto::Id;
use paddock_tree::acl;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

/// What the connections from one address share: their count (for
/// maxClientCnxns) and the identity they start with, `ip:<address>`
/// (one copy for all of them; a connection that adds an identity gets
/// its own).
pub(crate) struct PerIp {
    connections: usize,
    ids: Arc<Vec<Id>>,
}

/// The open client connections: by address, and in all.
#[derive(Default)]
pub(crate) struct Connections {
    by_ip: HashMap<IpAddr, PerIp>,
    total: usize,
}

pub(crate) type PerIpMap = Arc<Mutex<Connections>>;

/// Why a connection was not taken.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Full {
    /// `maxClientCnxns` from this address.
    ThisAddress,
    /// `maxCnxns` in all.
    Server,
}

/// One connection's place in the counts, given back on drop.
pub(crate) struct IpSlot {
    counts: PerIpMap,
    ip: IpAddr,
}

impl IpSlot {
    /// A place for a connection from `ip`, if neither `per_ip` from one
    /// address nor `total` in all (0: no limit) is reached.
    pub(crate) fn take(
        counts: &PerIpMap,
        ip: IpAddr,
        per_ip: usize,
        total: usize,
    ) -> Result<IpSlot, Full> {
        let mut c = counts.lock();
        if total != 0 && c.total >= total {
            return Err(Full::Server);
        }
        let here = c.by_ip.entry(ip).or_insert_with(|| PerIp {
            connections: 0,
            ids: ip_identity(ip),
        });
        if per_ip != 0 && here.connections >= per_ip {
            return Err(Full::ThisAddress);
        }
        here.connections += 1;
        c.total += 1;
        Ok(IpSlot {
            counts: counts.clone(),
            ip,
        })
    }

    /// The identities a connection from this address starts with.
    pub(crate) fn ids(&self) -> Arc<Vec<Id>> {
        match self.counts.lock().by_ip.get(&self.ip) {
            Some(per_ip) => per_ip.ids.clone(),
            None => ip_identity(self.ip),
        }
    }
}

/// `ip:<address>`, the identity every connection starts with.
fn ip_identity(ip: IpAddr) -> Arc<Vec<Id>> {
    Arc::new(vec![acl::id(acl::IP, &ip.to_string())])
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut c = self.counts.lock();
        c.total -= 1;
        if let Some(per_ip) = c.by_ip.get_mut(&self.ip) {
            per_ip.connections -= 1;
            if per_ip.connections == 0 {
                c.by_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_from_one_address_share_its_identity_and_count_against_the_limits() {
        let counts = PerIpMap::default();
        let ip: IpAddr = "10.0.0.7".parse().unwrap();
        let first = IpSlot::take(&counts, ip, 2, 3).unwrap();
        let second = IpSlot::take(&counts, ip, 2, 3).unwrap();
        assert_eq!(
            IpSlot::take(&counts, ip, 2, 3).err(),
            Some(Full::ThisAddress)
        );
        assert!(Arc::ptr_eq(&first.ids(), &second.ids()));
        assert_eq!(*first.ids(), [acl::id(acl::IP, "10.0.0.7")]);
        let eight: IpAddr = "10.0.0.8".parse().unwrap();
        let other = IpSlot::take(&counts, eight, 2, 3).unwrap();
        assert_eq!(*other.ids(), [acl::id(acl::IP, "10.0.0.8")]);
        assert_eq!(IpSlot::take(&counts, eight, 2, 3).err(), Some(Full::Server));
        drop(first);
        let third = IpSlot::take(&counts, ip, 2, 3).unwrap();
        drop((second, third));
        assert!(
            !counts.lock().by_ip.contains_key(&ip),
            "the last one forgets it"
        );
        assert_eq!(counts.lock().by_ip.len(), 1);
        assert_eq!(counts.lock().total, 1);
    }
}
