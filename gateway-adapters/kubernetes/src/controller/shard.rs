//! `--shard I/N`: which `CanaryRollout`s one controller process carries out when several
//! share the cluster's rollouts. A resource belongs to shard `FNV-1a("NAMESPACE/NAME") mod N`,
//! a hash fixed here (golden values in the tests) so that every version of canary puts a
//! resource in the same shard; each shard elects its own leader on a Lease of its own.

use std::fmt;
use std::str::FromStr;

/// One shard of `count` (`index < count`); `0/1`, the default, is every resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    index: u32,
    count: u32,
}

impl Shard {
    /// Every resource: one shard of one.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// Shard `index` of `count`, or why not.
    pub fn new(index: u32, count: u32) -> Result<Shard, String> {
        if count == 0 {
            return Err("the number of shards must be at least 1".to_owned());
        }
        if index >= count {
            return Err(format!(
                "shard {index} does not exist among {count} (shards are numbered 0 to {})",
                count - 1
            ));
        }
        Ok(Shard { index, count })
    }

    /// The shard's index.
    pub fn index(self) -> u32 {
        self.index
    }

    /// How many shards there are.
    pub fn count(self) -> u32 {
        self.count
    }

    /// Whether the resource `namespace/name` is this shard's.
    pub fn owns(self, namespace: &str, name: &str) -> bool {
        shard_of(namespace, name, self.count) == self.index
    }

    /// The name of this shard's Lease: `base` for a single shard, else
    /// `base-shard-I-of-N` (the count in the name: processes started with another count
    /// never share a Lease with these).
    pub fn lease_name(self, base: &str) -> String {
        if self.count == 1 {
            base.to_owned()
        } else {
            format!("{base}-shard-{}-of-{}", self.index, self.count)
        }
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(text: &str) -> Result<Shard, String> {
        let (index, count) = text
            .split_once('/')
            .ok_or_else(|| format!("{text:?} is not I/N (e.g. 0/3)"))?;
        let number = |part: &str, what: &str| {
            part.trim()
                .parse::<u32>()
                .map_err(|_| format!("{text:?}: the {what} {part:?} is not a whole number"))
        };
        Shard::new(number(index, "shard")?, number(count, "number of shards")?)
    }
}

/// The shard of `namespace/name` among `count`: FNV-1a (64 bits) of `NAMESPACE/NAME`, modulo
/// `count`. Namespaces and names cannot contain `/`, so the key is unambiguous.
pub fn shard_of(namespace: &str, name: &str, count: u32) -> u32 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in namespace
        .bytes()
        .chain(std::iter::once(b'/'))
        .chain(name.bytes())
    {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    u32::try_from(hash % u64::from(count.max(1))).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_resource_belongs_to_exactly_one_shard() {
        for count in 1..=7 {
            let shards: Vec<Shard> = (0..count).map(|i| Shard::new(i, count).unwrap()).collect();
            let mut sizes = vec![0_u32; count as usize];
            for i in 0..10_000 {
                let (namespace, name) = (format!("team-{}", i % 37), format!("service-{i}"));
                let owners: Vec<&Shard> = shards
                    .iter()
                    .filter(|s| s.owns(&namespace, &name))
                    .collect();
                assert_eq!(
                    owners.len(),
                    1,
                    "{namespace}/{name} among {count}: {owners:?}"
                );
                sizes[owners[0].index() as usize] += 1;
            }
            // Spread evenly enough: every shard within 20 % of its share.
            let share = 10_000 / count;
            for size in &sizes {
                assert!(
                    size.abs_diff(share) * 5 <= share,
                    "{count} shards: {sizes:?}"
                );
            }
        }
    }

    /// The hash is part of the contract: a new version of canary must put each resource in
    /// the shard an older one put it in (replicas of two versions run side by side during an
    /// update). These values are FNV-1a's, computed once.
    #[test]
    fn the_shard_of_a_resource_never_changes_between_versions() {
        assert_eq!(shard_of("shop", "checkout", u32::MAX), 1_197_608_678);
        assert_eq!(shard_of("shop", "checkout", 2), 0);
        assert_eq!(shard_of("shop", "orders", 2), 1);
        assert_eq!(shard_of("payments", "ledger", 3), 2);
    }

    #[test]
    fn shards_are_read_from_i_of_n_and_name_their_lease() {
        assert_eq!("1/3".parse::<Shard>(), Ok(Shard::new(1, 3).unwrap()));
        assert!(
            "3/3"
                .parse::<Shard>()
                .unwrap_err()
                .contains("numbered 0 to 2")
        );
        assert!("0/0".parse::<Shard>().unwrap_err().contains("at least 1"));
        assert!("1".parse::<Shard>().unwrap_err().contains("I/N"));
        assert!("a/2".parse::<Shard>().unwrap_err().contains("whole number"));
        assert_eq!(
            Shard::ALL.lease_name("canary-controller"),
            "canary-controller"
        );
        assert_eq!(
            Shard::new(1, 3).unwrap().lease_name("canary-controller"),
            "canary-controller-shard-1-of-3"
        );
        assert!(Shard::ALL.owns("any", "thing"));
    }
}
