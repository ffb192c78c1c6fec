//! Watches through the `zookeeper-client` crate and at the byte level:
//! one-shot, persistent, recursive, removal, re-arming on reconnect,
//! ordering against replies, READ filtering.

use crate::common::{client, create_request, create_with_acl, persistent, Raw, TestServer};
use paddock_proto::consts::event;
use paddock_proto::*;
use std::time::Duration;
use zookeeper_client as zk;
use zookeeper_client::{Acl, AddWatchMode, AuthId, EventType, Permission};

/// The next `n` events of a persistent watcher, as (type, path).
async fn next_events(w: &mut zk::PersistentWatcher, n: usize) -> Vec<(EventType, String)> {
    let mut got = Vec::new();
    for _ in 0..n {
        let e = within(w.changed()).await;
        got.push((e.event_type, e.path));
    }
    got
}

async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(5), f)
        .await
        .expect("event within 5 s")
}

#[tokio::test]
async fn one_shot_watches_fire_once_with_the_right_type() {
    let s = TestServer::start().await;
    let (watcher, writer) = (client(&s).await, client(&s).await);
    let (_, exists) = watcher.check_and_watch_stat("/w").await.unwrap();
    writer.create("/w", b"", &persistent()).await.unwrap();
    let e = within(exists.changed()).await;
    assert_eq!(
        (e.event_type, e.path.as_str()),
        (EventType::NodeCreated, "/w")
    );

    let (_, _, data) = watcher.get_and_watch_data("/w").await.unwrap();
    let (_, children) = watcher.list_and_watch_children("/w").await.unwrap();
    writer.set_data("/w", b"1", None).await.unwrap();
    assert_eq!(
        within(data.changed()).await.event_type,
        EventType::NodeDataChanged
    );
    writer.create("/w/c", b"", &persistent()).await.unwrap();
    let e = within(children.changed()).await;
    assert_eq!(
        (e.event_type, e.path.as_str()),
        (EventType::NodeChildrenChanged, "/w")
    );

    let (_, _, gone) = watcher.get_and_watch_data("/w/c").await.unwrap();
    writer.delete("/w/c", None).await.unwrap();
    assert_eq!(
        within(gone.changed()).await.event_type,
        EventType::NodeDeleted
    );
}

#[tokio::test]
async fn persistent_and_recursive_watches_keep_firing() {
    let s = TestServer::start().await;
    let (watcher, writer) = (client(&s).await, client(&s).await);
    let mut p = watcher
        .watch("/pw", AddWatchMode::Persistent)
        .await
        .unwrap();
    let mut r = watcher
        .watch("/rw", AddWatchMode::PersistentRecursive)
        .await
        .unwrap();
    writer.create("/pw", b"", &persistent()).await.unwrap();
    writer.create("/pw/c", b"", &persistent()).await.unwrap();
    writer.set_data("/pw", b"x", None).await.unwrap();
    writer.delete("/pw/c", None).await.unwrap();
    writer.delete("/pw", None).await.unwrap();
    writer.create("/pw", b"", &persistent()).await.unwrap();
    assert_eq!(
        next_events(&mut p, 6).await,
        vec![
            (EventType::NodeCreated, "/pw".to_string()),
            (EventType::NodeChildrenChanged, "/pw".to_string()),
            (EventType::NodeDataChanged, "/pw".to_string()),
            (EventType::NodeChildrenChanged, "/pw".to_string()),
            (EventType::NodeDeleted, "/pw".to_string()),
            (EventType::NodeCreated, "/pw".to_string()),
        ]
    );

    writer.create("/rw", b"", &persistent()).await.unwrap();
    writer.create("/rw/c", b"", &persistent()).await.unwrap();
    writer.create("/rw/c/d", b"", &persistent()).await.unwrap();
    writer.set_data("/rw/c/d", b"x", None).await.unwrap();
    writer.delete("/rw/c/d", None).await.unwrap();
    assert_eq!(
        next_events(&mut r, 5).await,
        vec![
            (EventType::NodeCreated, "/rw".to_string()),
            (EventType::NodeCreated, "/rw/c".to_string()),
            (EventType::NodeCreated, "/rw/c/d".to_string()),
            (EventType::NodeDataChanged, "/rw/c/d".to_string()),
            (EventType::NodeDeleted, "/rw/c/d".to_string()),
        ],
        "recursive watches never see NodeChildrenChanged"
    );
}

/// Reads the next notification on a raw connection.
async fn next_event(raw: &mut Raw) -> WatcherEvent {
    let body = raw.read_frame().await.expect("a frame");
    let mut r = Reader::new(body);
    let h = ReplyHeader::read(&mut r).unwrap();
    assert_eq!((h.xid, h.zxid), (-1, -1), "a notification");
    WatcherEvent::read(&mut r).unwrap()
}

fn watch_data(path: &str) -> Request {
    Request::GetData(PathWatchRequest {
        path: path.into(),
        watch: true,
    })
}

#[tokio::test]
async fn the_writer_sees_its_own_notification_before_the_reply() {
    let s = TestServer::start().await;
    let (mut raw, _) = Raw::session(s.addr, 10_000).await;
    raw.call(&create_request("/order", 0, b"")).await;
    raw.call(&watch_data("/order")).await;
    raw.send_frame(
        &Request::SetData(SetDataRequest {
            path: "/order".into(),
            data: None,
            version: -1,
        })
        .encode_with_header(77),
    )
    .await;
    let ev = next_event(&mut raw).await;
    assert_eq!(
        (ev.event_type, ev.state, ev.path.as_str()),
        (event::NODE_DATA_CHANGED, 3, "/order")
    );
    let reply = ReplyHeader::from_bytes(raw.read_frame().await.unwrap().slice(..16)).unwrap();
    assert_eq!(reply.xid, 77);
}

/// Replies written by a connection's task and notifications written
/// straight to its socket by the applying thread must not overtake each
/// other: while this connection pipelines setData on a znode it watches
/// and another session sets it too, every reply with version v comes
/// after at least v notifications.
#[tokio::test]
async fn notifications_stay_ahead_of_the_replies_they_explain_under_concurrent_writes() {
    const MINE: i32 = 300;
    const THEIRS: i32 = 300;
    let s = TestServer::start().await;
    let (mut raw, _) = Raw::session(s.addr, 10_000).await;
    raw.call(&create_request("/race", 0, b"")).await;
    let (h, _) = raw
        .call(&Request::AddWatch(AddWatchRequest {
            path: "/race".into(),
            mode: 0,
        }))
        .await;
    assert_eq!(h.err, 0);
    let set = || {
        Request::SetData(SetDataRequest {
            path: "/race".into(),
            data: Some(bytes::Bytes::from_static(b"v")),
            version: -1,
        })
    };
    let (mut other, _) = Raw::session(s.addr, 10_000).await;
    let theirs = tokio::spawn(async move {
        for _ in 0..THEIRS {
            let (h, _) = other.call(&set()).await;
            assert_eq!(h.err, 0);
        }
    });
    let first_xid = raw.xid();
    for i in 0..MINE {
        raw.send_frame(&set().encode_with_header(first_xid + 1 + i))
            .await;
        if i % 10 == 0 {
            tokio::task::yield_now().await;
        }
    }
    let (mut notifications, mut replies) = (0, 0);
    while replies < MINE || notifications < MINE + THEIRS {
        let body = within(raw.read_frame()).await.expect("a frame");
        let (h, resp) = crate::common::decode_reply(op::SET_DATA, body);
        if h.xid == -1 {
            notifications += 1;
            continue;
        }
        replies += 1;
        assert_eq!(h.xid, first_xid + replies, "replies in request order");
        let Some(Response::Stat(stat)) = resp else {
            panic!("setData failed: {h:?}");
        };
        assert!(
            notifications >= stat.version,
            "the reply for version {} came after only {notifications} notifications",
            stat.version
        );
    }
    theirs.await.unwrap();
    assert_eq!(notifications, MINE + THEIRS);
}

#[tokio::test]
async fn check_and_remove_watches_by_type() {
    let s = TestServer::start().await;
    let (mut raw, _) = Raw::session(s.addr, 10_000).await;
    raw.call(&create_request("/cw", 0, b"")).await;
    raw.call(&watch_data("/cw")).await;
    let req = |remove: bool, t: i32| {
        let w = WatchesRequest {
            path: "/cw".into(),
            watcher_type: t,
        };
        if remove {
            Request::RemoveWatches(w)
        } else {
            Request::CheckWatches(w)
        }
    };
    assert_eq!(
        raw.call(&req(false, 1)).await.0.err,
        ErrorCode::NoWatcher.code(),
        "no child watch"
    );
    assert_eq!(
        raw.call(&req(false, 2)).await.0.err,
        0,
        "data watch present"
    );
    assert_eq!(raw.call(&req(true, 3)).await.0.err, 0, "Any removes it");
    assert_eq!(
        raw.call(&req(true, 3)).await.0.err,
        ErrorCode::NoWatcher.code()
    );
    let (h, r) = raw
        .call(&Request::AddWatch(AddWatchRequest {
            path: "/cw".into(),
            mode: 0,
        }))
        .await;
    assert_eq!((h.err, r), (0, Some(Response::ErrorBody { err: 0 })));
    assert_eq!(raw.call(&req(true, 4)).await.0.err, 0, "Persistent removed");
}

#[tokio::test]
async fn set_watches_reports_missed_changes_and_rearms_the_rest() {
    let s = TestServer::start().await;
    let (mut writer, _) = Raw::session(s.addr, 10_000).await;
    for p in ["/sw", "/sw/same", "/sw/changed", "/sw/gone", "/sw/kids"] {
        writer.call(&create_request(p, 0, b"")).await;
    }
    let (seen, _) = writer
        .call(&Request::Exists(PathWatchRequest {
            path: "/sw".into(),
            watch: false,
        }))
        .await;
    let relative_zxid = seen.zxid;
    writer
        .call(&Request::SetData(SetDataRequest {
            path: "/sw/changed".into(),
            data: None,
            version: -1,
        }))
        .await;
    writer
        .call(&Request::Delete(DeleteRequest {
            path: "/sw/gone".into(),
            version: -1,
        }))
        .await;
    writer.call(&create_request("/sw/kids/new", 0, b"")).await;
    writer.call(&create_request("/sw/born", 0, b"")).await;

    let (mut raw, _) = Raw::session(s.addr, 10_000).await;
    let req = Request::SetWatches {
        v2: false,
        req: SetWatches2 {
            relative_zxid,
            data_watches: vec!["/sw/same".into(), "/sw/changed".into(), "/sw/gone".into()],
            exist_watches: vec!["/sw/born".into(), "/sw/unborn".into()],
            child_watches: vec!["/sw/kids".into()],
            ..Default::default()
        },
    };
    raw.send_frame(&req.encode_with_header(-8)).await;
    let mut immediate = Vec::new();
    loop {
        let body = raw.read_frame().await.unwrap();
        let h = ReplyHeader::from_bytes(body.slice(..16)).unwrap();
        if h.xid == -8 {
            assert_eq!(h.err, 0);
            break;
        }
        let ev = WatcherEvent::from_bytes(body.slice(16..)).unwrap();
        immediate.push((ev.event_type, ev.path));
    }
    assert_eq!(
        immediate,
        vec![
            (event::NODE_DATA_CHANGED, "/sw/changed".to_string()),
            (event::NODE_DELETED, "/sw/gone".to_string()),
            (event::NODE_CREATED, "/sw/born".to_string()),
            (event::NODE_CHILDREN_CHANGED, "/sw/kids".to_string()),
        ]
    );
    writer
        .call(&Request::SetData(SetDataRequest {
            path: "/sw/same".into(),
            data: None,
            version: -1,
        }))
        .await;
    let ev = next_event(&mut raw).await;
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (event::NODE_DATA_CHANGED, "/sw/same")
    );
    writer.call(&create_request("/sw/unborn", 0, b"")).await;
    let ev = next_event(&mut raw).await;
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (event::NODE_CREATED, "/sw/unborn")
    );
}

#[tokio::test]
async fn notifications_are_not_sent_to_watchers_who_cannot_read_the_node() {
    let s = TestServer::start().await;
    let owner = zk::Client::connector()
        .with_auth("digest", b"o:pw")
        .connect(&s.hosts())
        .await
        .unwrap();
    let private = [Acl::new(Permission::ALL, AuthId::authed())];
    create_with_acl(&owner, "/secret", b"", &private).await;
    let outsider = client(&s).await;
    let mut spy = outsider
        .watch("/secret", AddWatchMode::Persistent)
        .await
        .unwrap();
    let mut mine = owner
        .watch("/secret", AddWatchMode::Persistent)
        .await
        .unwrap();
    owner.set_data("/secret", b"x", None).await.unwrap();
    assert_eq!(
        within(mine.changed()).await.event_type,
        EventType::NodeDataChanged
    );
    let leaked = tokio::time::timeout(Duration::from_millis(300), spy.changed()).await;
    assert!(leaked.is_err(), "a watcher without READ got {leaked:?}");
}

#[tokio::test]
async fn a_closed_connection_leaves_no_watches_behind() {
    let s = TestServer::start_with(|c| c.four_letter_whitelist = vec!["*".into()]).await;
    let (mut raw, _) = Raw::session(s.addr, 10_000).await;
    raw.call(&create_request("/cl", 0, b"")).await;
    raw.call(&watch_data("/cl")).await;
    raw.call(&Request::AddWatch(AddWatchRequest {
        path: "/cl".into(),
        mode: 1,
    }))
    .await;
    raw.call(&Request::GetChildren(PathWatchRequest {
        path: "/".into(),
        watch: true,
    }))
    .await;
    assert_eq!(
        crate::common::four_letter(s.addr, "wchs").await,
        "1 connections watching 2 paths\nTotal watches:2\n"
    );
    drop(raw);
    let mut remaining = String::new();
    for _ in 0..50 {
        remaining = crate::common::four_letter(s.addr, "wchs").await;
        if remaining.starts_with("0 connections") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        remaining,
        "0 connections watching 0 paths\nTotal watches:0\n"
    );
}
