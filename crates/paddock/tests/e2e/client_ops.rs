//! Every client operation and node type through an unmodified third-party
//! client, the `zookeeper-client` crate.

use crate::common::{client, create_with_acl, gone, persistent, TestServer};
use std::time::Duration;
use zookeeper_client as zk;
use zookeeper_client::{Acl, Acls, AuthId, CreateMode, Error, Permission};

#[tokio::test]
async fn create_get_set_delete_and_stat_follow_zookeeper() {
    let s = TestServer::start().await;
    let c = client(&s).await;
    let (stat, seq) = c.create("/app", b"v1", &persistent()).await.unwrap();
    assert_eq!(seq.into_i64(), -1);
    assert_eq!(
        (stat.version, stat.num_children, stat.data_length),
        (0, 0, 2)
    );
    assert_eq!(stat.czxid, stat.mzxid);
    assert_eq!(stat.pzxid, stat.czxid);
    let (data, got) = c.get_data("/app").await.unwrap();
    assert_eq!((data.as_slice(), got), (&b"v1"[..], stat));
    let set = c.set_data("/app", b"v2", Some(0)).await.unwrap();
    assert_eq!(set.version, 1);
    assert!(set.mzxid > stat.mzxid);
    assert_eq!(
        c.set_data("/app", b"v3", Some(0)).await,
        Err(Error::BadVersion)
    );
    assert_eq!(c.check_stat("/app").await.unwrap(), Some(set));
    assert_eq!(c.check_stat("/nope").await.unwrap(), None);
    assert_eq!(
        c.create("/app", b"", &persistent()).await.unwrap_err(),
        Error::NodeExists
    );
    assert_eq!(
        c.create("/no/parent", b"", &persistent())
            .await
            .unwrap_err(),
        Error::NoNode
    );
    c.create("/app/child", b"", &persistent()).await.unwrap();
    assert_eq!(c.delete("/app", None).await, Err(Error::NotEmpty));
    assert_eq!(
        c.delete("/app/child", Some(3)).await,
        Err(Error::BadVersion)
    );
    c.delete("/app/child", Some(0)).await.unwrap();
    let (_, parent) = c.get_data("/app").await.unwrap();
    assert_eq!((parent.cversion, parent.num_children), (2, 0));
    c.delete("/app", None).await.unwrap();
    assert_eq!(c.get_data("/app").await.unwrap_err(), Error::NoNode);
}

#[tokio::test]
async fn sequential_and_ephemeral_nodes() {
    let s = TestServer::start().await;
    let c = client(&s).await;
    c.create("/q", b"", &persistent()).await.unwrap();
    let seq = CreateMode::PersistentSequential.with_acls(Acls::anyone_all());
    let (_, a) = c.create("/q/job-", b"", &seq).await.unwrap();
    let eph_seq = CreateMode::EphemeralSequential.with_acls(Acls::anyone_all());
    let (_, b) = c.create("/q/job-", b"", &eph_seq).await.unwrap();
    assert_eq!((a.into_i64(), b.into_i64()), (0, 1));
    let mut children = c.list_children("/q").await.unwrap();
    children.sort();
    assert_eq!(children, vec!["job-0000000000", "job-0000000001"]);
    let eph = CreateMode::Ephemeral.with_acls(Acls::anyone_all());
    let (stat, _) = c.create("/e", b"", &eph).await.unwrap();
    assert_eq!(stat.ephemeral_owner, c.session_id().0);
    assert_eq!(
        c.create("/e/child", b"", &persistent()).await.unwrap_err(),
        Error::NoChildrenForEphemerals
    );
    let mut mine = c.list_ephemerals("/").await.unwrap();
    mine.sort();
    assert_eq!(mine, vec!["/e", "/q/job-0000000001"]);
    assert_eq!(
        c.list_ephemerals("/q").await.unwrap(),
        vec!["/q/job-0000000001"]
    );
    drop(c);

    let other = client(&s).await;
    assert!(
        gone(&other, "/e").await,
        "closed session's ephemeral is gone"
    );
    assert_eq!(
        other.list_children("/q").await.unwrap(),
        vec!["job-0000000000"]
    );
}

#[tokio::test]
async fn containers_are_reaped_after_their_last_child_goes() {
    let s = TestServer::start_with(|c| c.container_check_interval_ms = 50).await;
    let c = client(&s).await;
    let container = CreateMode::Container.with_acls(Acls::anyone_all());
    let (stat, _) = c.create("/box", b"", &container).await.unwrap();
    assert_eq!(stat.ephemeral_owner, 0);
    c.create("/box/item", b"", &persistent()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        c.check_stat("/box").await.unwrap().is_some(),
        "not empty: kept"
    );
    c.delete("/box/item", None).await.unwrap();
    assert!(gone(&c, "/box").await, "/box was not reaped");
}

#[tokio::test]
async fn ttl_nodes_need_extended_types_and_expire_when_idle() {
    let plain = TestServer::start().await;
    let c = client(&plain).await;
    let ttl = persistent().with_ttl(Duration::from_millis(100));
    assert_eq!(
        c.create("/t", b"", &ttl).await.unwrap_err(),
        Error::Unimplemented
    );

    let s = TestServer::start_with(|c| {
        c.extended_types = true;
        c.container_check_interval_ms = 50;
    })
    .await;
    let c = client(&s).await;
    let (stat, _) = c.create("/t", b"", &ttl).await.unwrap();
    assert_eq!(stat.ephemeral_owner, 0);
    assert!(gone(&c, "/t").await, "/t was not reaped");
}

#[tokio::test]
async fn multi_is_atomic_and_multi_read_is_not() {
    let s = TestServer::start().await;
    let c = client(&s).await;
    c.create("/m", b"0", &persistent()).await.unwrap();
    let mut w = c.new_multi_writer();
    w.add_create("/m/a", b"", &persistent()).unwrap();
    w.add_set_data("/m", b"1", Some(0)).unwrap();
    w.add_check_version("/m", 1).unwrap();
    let results = w.commit().await.unwrap();
    assert_eq!(results.len(), 3);
    let mut w = c.new_multi_writer();
    w.add_create("/m/b", b"", &persistent()).unwrap();
    w.add_delete("/m/missing", None).unwrap();
    match w.commit().await {
        Err(zk::MultiWriteError::OperationFailed { index, source }) => {
            assert_eq!((index, source), (1, Error::NoNode))
        }
        other => panic!("expected a failed op, got {other:?}"),
    }
    assert_eq!(c.check_stat("/m/b").await.unwrap(), None, "rolled back");
    let mut r = c.new_multi_reader();
    r.add_get_data("/m").unwrap();
    r.add_get_children("/nope").unwrap();
    r.add_get_children("/m").unwrap();
    let results = r.commit().await.unwrap();
    assert!(matches!(&results[0], zk::MultiReadResult::Data { data, .. } if data == b"1"));
    assert!(matches!(
        &results[1],
        zk::MultiReadResult::Error { err: Error::NoNode }
    ));
    assert!(
        matches!(&results[2], zk::MultiReadResult::Children { children } if children == &vec!["a".to_string()])
    );
}

#[tokio::test]
async fn digest_acls_auth_and_who_am_i() {
    let s = TestServer::start().await;
    let owner = zk::Client::connector()
        .with_auth("digest", b"alice:secret")
        .connect(&s.hosts())
        .await
        .unwrap();
    let creator = CreateMode::Persistent.with_acls(Acls::creator_all());
    owner.create("/private", b"x", &creator).await.unwrap();
    let (acl, _) = owner.get_acl("/private").await.unwrap();
    assert_eq!(acl.len(), 1);
    assert_eq!(acl[0].scheme(), "digest");
    // user:base64(sha1("alice:secret")), as ZooKeeper's DigestAuthenticationProvider computes it
    assert_eq!(acl[0].id(), "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E=");
    let users = owner.list_auth_users().await.unwrap();
    assert_eq!(
        users
            .iter()
            .map(|u| (u.scheme(), u.user()))
            .collect::<Vec<_>>(),
        vec![("ip", "127.0.0.1"), ("digest", "alice")]
    );

    let stranger = client(&s).await;
    assert_eq!(
        stranger.get_data("/private").await.unwrap_err(),
        Error::NoAuth
    );
    assert_eq!(
        stranger.get_acl("/private").await.unwrap_err(),
        Error::NoAuth
    );
    assert_eq!(
        stranger.set_data("/private", b"y", None).await.unwrap_err(),
        Error::NoAuth
    );
    assert_eq!(
        stranger.create("/mine", b"", &creator).await.unwrap_err(),
        Error::InvalidAcl
    );
    stranger.auth("digest", b"alice:secret").await.unwrap();
    assert_eq!(stranger.get_data("/private").await.unwrap().0, b"x");

    let readable = [
        Acl::new(Permission::READ, AuthId::anyone()),
        Acl::new(Permission::ALL, AuthId::new("ip", "127.0.0.0/8")),
    ];
    create_with_acl(&owner, "/shared", b"", &readable).await;
    let fresh = client(&s).await;
    fresh.set_data("/shared", b"ip ok", None).await.unwrap();
    let stat = owner
        .set_acl("/shared", &Acls::anyone_read(), Some(0))
        .await
        .unwrap();
    assert_eq!(stat.aversion, 1);
    assert_eq!(
        fresh.set_data("/shared", b"no", None).await.unwrap_err(),
        Error::NoAuth
    );
}

#[tokio::test]
async fn counts_sync_and_config_node() {
    let s = TestServer::start().await;
    let c = client(&s).await;
    c.mkdir("/a/b/c", &persistent()).await.unwrap();
    assert_eq!(c.count_descendants_number("/a").await.unwrap(), 2);
    c.sync("/a").await.unwrap();
    let (config, stat) = c.get_config().await.unwrap();
    assert!(config.is_empty());
    assert_eq!(stat.aversion, -1);
    let (children, stat) = c.get_children("/").await.unwrap();
    assert!(children.contains(&"zookeeper".to_string()));
    assert_eq!(stat.num_children as usize, children.len());
}

#[tokio::test]
async fn super_digest_bypasses_every_acl() {
    // superDigest for super:test, as ZooKeeper's docs compute it.
    let s = TestServer::start_with(|c| {
        c.super_digest = Some("super:D/InIHSb7yEEbrWz8b9l71RjZJU=".into())
    })
    .await;
    let owner = client(&s).await;
    let nobody = [Acl::new(Permission::READ, AuthId::new("ip", "10.9.9.9"))];
    create_with_acl(&owner, "/locked", b"x", &nobody).await;
    assert_eq!(owner.get_data("/locked").await.unwrap_err(), Error::NoAuth);
    let admin = zk::Client::connector()
        .with_auth("digest", b"super:test")
        .connect(&s.hosts())
        .await
        .unwrap();
    assert_eq!(admin.get_data("/locked").await.unwrap().0, b"x");
    admin
        .set_data("/zookeeper/config", b"", None)
        .await
        .unwrap();
    admin.delete("/locked", None).await.unwrap();
    let wrong = zk::Client::connector()
        .with_auth("digest", b"super:nope")
        .connect(&s.hosts())
        .await
        .unwrap();
    assert_eq!(
        wrong
            .set_data("/zookeeper/config", b"", None)
            .await
            .unwrap_err(),
        Error::NoAuth
    );
}
