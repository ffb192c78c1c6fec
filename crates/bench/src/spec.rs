//! What to run: a workload spec, from a built-in name or a TOML file.

use serde::{Deserialize, Serialize};

/// The kind of load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Requests drawn from `mix` over `keys` preloaded znodes.
    Mix,
    /// Creates `total` new znodes as fast as possible, then stops.
    TreeLoad,
    /// Opens a session and closes it, over and over (one op = both).
    SessionStorm,
    /// `connections` sessions hold a persistent watch on one znode that
    /// one more session changes (`inflight` setData outstanding); an op is
    /// a notification delivered, timed from the setData's send.
    WatchFanout,
    /// As `WatchFanout`, but one setData at a time, each waited for until
    /// every watcher has heard of it; an op is such a round, timed from the
    /// setData's send to the last notification.
    WatchRound,
    /// `connections` sessions take and release one lock the way the lock
    /// recipe does (ephemeral sequential znodes, each watching the one
    /// ahead); an op is one acquire and release.
    LockChurn,
}

/// Relative weights of the operations in a `mix` workload.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Mix {
    pub get: u32,
    pub set: u32,
    pub exists: u32,
    pub children: u32,
    /// Creates a new znode (under the connection's own directory).
    pub create: u32,
    /// Deletes a znode this connection created (a create when it has none).
    pub delete: u32,
    /// A multi of two setData on two keys.
    pub multi: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Distribution {
    Uniform,
    Zipfian,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Spec {
    pub name: String,
    pub kind: Kind,
    pub mix: Mix,
    pub connections: usize,
    /// Requests in flight per connection (closed loop: a new one is sent as
    /// each reply arrives).
    pub inflight: usize,
    /// Total ops/s across connections for an open loop; 0 = closed loop.
    pub rate: u64,
    pub duration_s: f64,
    /// Results from the first seconds are left out.
    pub warmup_s: f64,
    pub payload_bytes: usize,
    /// Znodes preloaded for get/set/exists/children/multi.
    pub keys: usize,
    pub distribution: Distribution,
    /// The zipfian exponent.
    pub zipf_s: f64,
    /// For tree-load: znodes to create.
    pub total: u64,
    pub session_timeout_ms: i32,
}

impl Default for Spec {
    fn default() -> Spec {
        Spec {
            name: "custom".into(),
            kind: Kind::Mix,
            mix: Mix {
                get: 1,
                ..Mix::default()
            },
            connections: 32,
            inflight: 32,
            rate: 0,
            duration_s: 10.0,
            warmup_s: 1.0,
            payload_bytes: 100,
            keys: 1000,
            distribution: Distribution::Uniform,
            zipf_s: 0.99,
            total: 100_000,
            session_timeout_ms: 30_000,
        }
    }
}

/// The built-in workloads, by name.
pub const NAMES: &[&str] = &[
    "get",
    "set",
    "exists",
    "children",
    "create",
    "multi",
    "read-90",
    "read-50",
    "zipf-read-90",
    "tree-load",
    "session-storm",
    "watch-fanout",
    "watch-round",
    "lock-churn",
];

pub fn named(name: &str) -> Option<Spec> {
    let mix = |m: Mix| Spec {
        name: name.into(),
        mix: m,
        ..Spec::default()
    };
    let reads = |get, set| Mix {
        get,
        set,
        ..Mix::default()
    };
    Some(match name {
        "get" => mix(reads(1, 0)),
        "set" => mix(reads(0, 1)),
        "exists" => mix(Mix {
            exists: 1,
            ..Mix::default()
        }),
        "children" => mix(Mix {
            children: 1,
            ..Mix::default()
        }),
        "create" => mix(Mix {
            create: 1,
            delete: 1,
            ..Mix::default()
        }),
        "multi" => mix(Mix {
            multi: 1,
            ..Mix::default()
        }),
        "read-90" => mix(reads(9, 1)),
        "read-50" => mix(reads(1, 1)),
        "zipf-read-90" => Spec {
            distribution: Distribution::Zipfian,
            ..mix(reads(9, 1))
        },
        "tree-load" => Spec {
            name: name.into(),
            kind: Kind::TreeLoad,
            ..Spec::default()
        },
        "session-storm" => Spec {
            name: name.into(),
            kind: Kind::SessionStorm,
            connections: 16,
            inflight: 1,
            ..Spec::default()
        },
        "watch-fanout" => Spec {
            name: name.into(),
            kind: Kind::WatchFanout,
            connections: 100,
            inflight: 1,
            ..Spec::default()
        },
        "watch-round" => Spec {
            name: name.into(),
            kind: Kind::WatchRound,
            connections: 100,
            inflight: 1,
            ..Spec::default()
        },
        "lock-churn" => Spec {
            name: name.into(),
            kind: Kind::LockChurn,
            connections: 16,
            inflight: 1,
            ..Spec::default()
        },
        _ => return None,
    })
}

impl Spec {
    pub fn from_toml(text: &str) -> Result<Spec, String> {
        let spec: Spec = toml::from_str(text).map_err(|e| e.to_string())?;
        spec.check()?;
        Ok(spec)
    }

    /// A readable complaint about anything that cannot run.
    pub fn check(&self) -> Result<(), String> {
        let m = &self.mix;
        let weights = [
            m.get, m.set, m.exists, m.children, m.create, m.delete, m.multi,
        ];
        if self.kind == Kind::Mix && weights.iter().all(|w| *w == 0) {
            return Err("mix: every weight is 0".into());
        }
        if self.connections == 0 || self.inflight == 0 {
            return Err("connections and inflight must be at least 1".into());
        }
        let positive = |x: f64| x.is_finite() && x > 0.0;
        if !positive(self.duration_s) || self.warmup_s < 0.0 || self.warmup_s >= self.duration_s {
            return Err("duration_s must be > 0 and warmup_s in [0, duration_s)".into());
        }
        if self.keys == 0 {
            return Err("keys must be at least 1".into());
        }
        if self.payload_bytes > 1 << 20 {
            return Err("payload_bytes must be at most 1 MiB (jute.maxbuffer)".into());
        }
        if self.distribution == Distribution::Zipfian && !positive(self.zipf_s) {
            return Err("zipf_s must be > 0".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_workload_is_valid() {
        for name in NAMES {
            let spec = named(name).unwrap_or_else(|| panic!("{name} missing"));
            assert_eq!(spec.check(), Ok(()), "{name}");
            assert_eq!(&spec.name, name);
        }
        assert!(named("nope").is_none());
    }

    #[test]
    fn a_toml_spec_overrides_defaults_and_bad_ones_say_why() {
        let spec = Spec::from_toml(
            "name = \"mine\"\nconnections = 4\ndistribution = \"zipfian\"\n[mix]\nget = 3\nset = 1\n",
        )
        .unwrap();
        assert_eq!(spec.connections, 4);
        assert_eq!(spec.mix.get, 3);
        assert_eq!(spec.distribution, Distribution::Zipfian);
        assert_eq!(spec.inflight, 32, "unset fields keep their defaults");
        let err = Spec::from_toml("[mix]\n").unwrap_err();
        assert!(err.contains("every weight is 0"), "{err}");
        let err = Spec::from_toml("conections = 3").unwrap_err();
        assert!(err.contains("conections"), "{err}");
    }
}
