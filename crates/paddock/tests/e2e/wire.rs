//! Byte-level protocol behaviour: handshake variants, pipelining, reply
//! headers, malformed input. Each pins what ZooKeeper 3.8 does on the wire.

use crate::common::*;
use bytes::{BufMut, Bytes, BytesMut};
use paddock_proto::*;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

fn create(path: &str, flags: i32) -> Request {
    create_request(path, flags, b"v")
}

fn get_data(path: &str) -> Request {
    Request::GetData(PathWatchRequest {
        path: path.into(),
        watch: false,
    })
}

#[tokio::test]
async fn the_connect_response_has_the_read_only_byte_only_if_the_request_had_it() {
    let s = TestServer::start().await;
    for (read_only, len) in [(None, 36), (Some(false), 37)] {
        let mut raw = Raw::open(s.addr).await;
        let req = ConnectRequest {
            timeout_ms: 10_000,
            passwd: Some(Bytes::from_static(&[0; 16])),
            read_only,
            ..Default::default()
        };
        raw.send_frame(&req.to_bytes()).await;
        let body = raw.read_frame().await.expect("response");
        assert_eq!(body.len(), len);
        let resp = ConnectResponse::from_bytes(body).expect("decodes");
        assert_eq!(resp.passwd.len(), 16);
        assert_eq!(resp.session_id >> 56, 1, "standalone server id is 1");
        assert_eq!(resp.timeout_ms, 10_000);
    }
}

#[tokio::test]
async fn session_timeouts_are_clamped_to_the_configured_bounds() {
    let s = TestServer::start_with(|c| {
        c.min_session_timeout_ms = 4000;
        c.max_session_timeout_ms = 40000;
    })
    .await;
    for (asked, got) in [(1, 4000), (100_000, 40000), (5000, 5000)] {
        let (_raw, resp) = Raw::session(s.addr, asked).await;
        assert_eq!(resp.timeout_ms, got);
    }
}

#[tokio::test]
async fn requests_pipelined_behind_the_connect_request_are_answered_in_order() {
    let s = TestServer::start().await;
    let mut raw = Raw::open(s.addr).await;
    let mut all = BytesMut::new();
    for frame in [
        ConnectRequest {
            timeout_ms: 10_000,
            passwd: Some(Bytes::from_static(&[0; 16])),
            ..Default::default()
        }
        .to_bytes(),
        create("/p", 0).encode_with_header(1),
        get_data("/p").encode_with_header(2),
        get_data("/missing").encode_with_header(3),
    ] {
        all.put_u32(frame.len() as u32);
        all.put_slice(&frame);
    }
    raw.stream.write_all(&all).await.unwrap();
    let connect = ConnectResponse::from_bytes(raw.read_frame().await.unwrap()).unwrap();
    assert!(connect.timeout_ms > 0);
    let (h1, r1) = decode_reply(op::CREATE, raw.read_frame().await.unwrap());
    let (h2, r2) = decode_reply(op::GET_DATA, raw.read_frame().await.unwrap());
    let (h3, _) = decode_reply(op::GET_DATA, raw.read_frame().await.unwrap());
    assert_eq!((h1.xid, h1.err), (1, 0));
    assert_eq!(r1, Some(Response::Create { path: "/p".into() }));
    assert_eq!((h2.xid, h2.err), (2, 0));
    assert!(
        matches!(r2, Some(Response::GetData { data: Some(d), stat }) if d.as_ref() == b"v" && stat.czxid == h1.zxid)
    );
    assert_eq!((h3.xid, h3.err, h3.zxid), (3, -101, h1.zxid));
}

#[tokio::test]
async fn a_long_pipeline_of_writes_and_reads_in_one_send_is_answered_in_order() {
    let s = TestServer::start().await;
    let (mut raw, _) = Raw::session(s.addr, 10_000).await;
    raw.call(&create("/pipe", 0)).await;
    let mut all = BytesMut::new();
    for i in 0..200 {
        let set = Request::SetData(SetDataRequest {
            path: "/pipe".into(),
            data: Some(Bytes::from(i.to_string())),
            version: -1,
        });
        for (xid, req) in [(2 * i + 10, set), (2 * i + 11, get_data("/pipe"))] {
            let frame = req.encode_with_header(xid);
            all.put_u32(frame.len() as u32);
            all.put_slice(&frame);
        }
    }
    raw.stream.write_all(&all).await.unwrap();
    for i in 0..200 {
        let (set, _) = decode_reply(op::SET_DATA, raw.read_frame().await.unwrap());
        let (get, r) = decode_reply(op::GET_DATA, raw.read_frame().await.unwrap());
        assert_eq!((set.xid, set.err, get.xid), (2 * i + 10, 0, 2 * i + 11));
        match r {
            Some(Response::GetData {
                data: Some(d),
                stat,
            }) => {
                assert_eq!(
                    d,
                    Bytes::from(i.to_string()),
                    "the read sees the write before it"
                );
                assert_eq!((stat.version, stat.mzxid), (i + 1, set.zxid));
            }
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn write_replies_carry_their_zxid_and_failed_writes_consume_one() {
    let s = TestServer::start().await;
    let (mut raw, _) = Raw::session(s.addr, 10_000).await;
    let (a, _) = raw.call(&create("/z", 0)).await;
    let (b, _) = raw.call(&create("/z", 0)).await;
    assert_eq!(b.err, ErrorCode::NodeExists.code());
    assert_eq!(b.zxid, a.zxid + 1);
    let (c, _) = raw.call(&get_data("/z")).await;
    assert_eq!(c.zxid, b.zxid, "reads carry the last zxid");
    let ping = raw.call(&Request::Ping).await.0;
    assert_eq!((ping.xid, ping.zxid, ping.err), (-2, b.zxid, 0));
}

#[tokio::test]
async fn reconnecting_with_the_right_password_keeps_the_session_and_its_ephemerals() {
    let s = TestServer::start().await;
    let (mut first, resp) = Raw::session(s.addr, 10_000).await;
    first.call(&create("/eph", 1)).await;
    let mut second = Raw::open(s.addr).await;
    let again = second
        .connect(&ConnectRequest {
            timeout_ms: 12_000,
            session_id: resp.session_id,
            passwd: Some(resp.passwd.clone()),
            last_zxid_seen: 0,
            ..Default::default()
        })
        .await
        .expect("reattached");
    assert_eq!(
        (again.session_id, again.timeout_ms),
        (resp.session_id, 12_000)
    );
    assert!(
        first.closed().await,
        "the old connection of the session is closed"
    );
    let (h, r) = second
        .call(&Request::Exists(PathWatchRequest {
            path: "/eph".into(),
            watch: false,
        }))
        .await;
    assert_eq!(h.err, 0);
    assert!(matches!(r, Some(Response::Stat(st)) if st.ephemeral_owner == resp.session_id));
}

#[tokio::test]
async fn a_wrong_password_or_unknown_session_gets_the_expired_answer_then_close() {
    let s = TestServer::start().await;
    let (_first, resp) = Raw::session(s.addr, 10_000).await;
    for (session_id, passwd) in [
        (resp.session_id, [7u8; 16]),
        (0x0100_0000_dead_beef, [0; 16]),
    ] {
        let mut raw = Raw::open(s.addr).await;
        let req = ConnectRequest {
            timeout_ms: 10_000,
            session_id,
            passwd: Some(Bytes::copy_from_slice(&passwd)),
            read_only: Some(false),
            ..Default::default()
        };
        raw.send_frame(&req.to_bytes()).await;
        let body = raw.read_frame().await.expect("an answer");
        let mut want = vec![0u8; 16];
        want.extend_from_slice(&[0, 0, 0, 16]);
        want.extend_from_slice(&[0; 16]);
        want.push(0);
        assert_eq!(body.as_ref(), want.as_slice(), "byte for byte as ZooKeeper");
        assert!(raw.closed().await);
    }
}

#[tokio::test]
async fn a_client_that_has_seen_a_newer_zxid_is_refused_without_an_answer() {
    let s = TestServer::start().await;
    let mut raw = Raw::open(s.addr).await;
    let req = ConnectRequest {
        timeout_ms: 10_000,
        last_zxid_seen: 1 << 40,
        passwd: Some(Bytes::from_static(&[0; 16])),
        ..Default::default()
    };
    assert_eq!(raw.connect(&req).await, None);
}

#[tokio::test]
async fn close_session_replies_then_closes_and_removes_ephemerals() {
    let s = TestServer::start().await;
    let (mut owner, _) = Raw::session(s.addr, 10_000).await;
    owner.call(&create("/gone", 1)).await;
    let (h, _) = owner.call(&Request::CloseSession).await;
    assert_eq!(h.err, 0);
    assert!(owner.closed().await);
    let (mut other, _) = Raw::session(s.addr, 10_000).await;
    assert_eq!(
        other.call(&get_data("/gone")).await.0.err,
        ErrorCode::NoNode.code()
    );
}

#[tokio::test]
async fn an_idle_session_expires_and_its_ephemerals_go() {
    let s = TestServer::start_with(|c| {
        c.tick_time_ms = 100;
        c.min_session_timeout_ms = 200;
    })
    .await;
    let (mut owner, resp) = Raw::session(s.addr, 300).await;
    assert_eq!(resp.timeout_ms, 300);
    owner.call(&create("/short", 1)).await;
    let (mut watcher, _) = Raw::session(s.addr, 10_000).await;
    let started = std::time::Instant::now();
    let mut gone = false;
    while started.elapsed() < Duration::from_secs(3) {
        watcher.call(&Request::Ping).await;
        if watcher.call(&get_data("/short")).await.0.err == ErrorCode::NoNode.code() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(gone, "the ephemeral outlived its session");
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "expired before the timeout"
    );
    assert!(
        owner.closed().await,
        "the expired session's connection is closed"
    );
}

#[tokio::test]
async fn an_unknown_opcode_gets_unimplemented_then_close() {
    let s = TestServer::start().await;
    let (mut raw, _) = Raw::session(s.addr, 10_000).await;
    let mut frame = BytesMut::new();
    frame.put_i32(5);
    frame.put_i32(999);
    raw.send_frame(&frame).await;
    let body = raw.read_frame().await.expect("reply");
    let h = ReplyHeader::from_bytes(body).unwrap();
    assert_eq!((h.xid, h.err), (5, ErrorCode::Unimplemented.code()));
    assert!(raw.closed().await);
}

#[tokio::test]
async fn malformed_frames_close_only_their_connection() {
    let s = TestServer::start_with(|c| c.max_frame_bytes = 1024).await;
    let (mut healthy, _) = Raw::session(s.addr, 10_000).await;

    let (mut oversized, _) = Raw::session(s.addr, 10_000).await;
    oversized.stream.write_all(&[0, 0, 0x10, 0]).await.unwrap();
    assert!(
        oversized.closed().await,
        "4096 > jute.maxbuffer closes the connection"
    );

    let (mut negative, _) = Raw::session(s.addr, 10_000).await;
    negative
        .stream
        .write_all(&[0xff, 0xff, 0xff, 0xfe])
        .await
        .unwrap();
    assert!(negative.closed().await);

    let (mut garbage, _) = Raw::session(s.addr, 10_000).await;
    let mut frame = BytesMut::new();
    frame.put_i32(1);
    frame.put_i32(op::CREATE);
    frame.put_i32(0x7fff_0000); // a path length far beyond the frame
    garbage.send_frame(&frame).await;
    assert!(garbage.closed().await);

    let mut truncated = Raw::open(s.addr).await;
    truncated
        .stream
        .write_all(&[0, 0, 0, 40, 0, 0])
        .await
        .unwrap();
    drop(truncated);

    let mut bad_connect = Raw::open(s.addr).await;
    bad_connect.send_frame(&[1, 2, 3]).await;
    assert!(bad_connect.closed().await);

    let (h, _) = healthy.call(&create("/still-fine", 0)).await;
    assert_eq!(h.err, 0);
}

#[tokio::test]
async fn a_request_at_the_frame_limit_passes_and_one_over_closes() {
    let s = TestServer::start_with(|c| c.max_frame_bytes = 4096).await;
    let (mut raw, _) = Raw::session(s.addr, 10_000).await;
    let mut req = create("/big", 0);
    let fixed = req.encode_with_header(1).len() - 1;
    if let Request::Create { req, .. } = &mut req {
        req.data = Some(Bytes::from(vec![7u8; 4096 - fixed]));
    }
    let (h, _) = raw.call(&req).await;
    assert_eq!(h.err, 0);
    if let Request::Create { req, .. } = &mut req {
        req.path = "/big2".into();
        req.data = Some(Bytes::from(vec![7u8; 4097 - fixed]));
    }
    raw.send_frame(&req.encode_with_header(9)).await;
    assert!(raw.closed().await);
}

#[tokio::test]
async fn connections_that_never_handshake_are_dropped_after_the_deadline() {
    let s = TestServer::start_with(|c| c.handshake_timeout_ms = 200).await;
    let mut idle = Raw::open(s.addr).await;
    let started = std::time::Instant::now();
    assert!(idle.closed().await);
    assert!(started.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn connections_beyond_the_per_ip_limit_are_refused() {
    let s = TestServer::start_with(|c| c.max_client_cnxns = 2).await;
    let (_a, _) = Raw::session(s.addr, 10_000).await;
    let (_b, _) = Raw::session(s.addr, 10_000).await;
    let mut c = Raw::open(s.addr).await;
    assert!(c.closed().await);
    drop(_a);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (_d, _) = Raw::session(s.addr, 10_000).await;
}

#[tokio::test]
async fn four_letter_words_answer_on_a_fresh_connection() {
    let s = TestServer::start().await;
    assert_eq!(four_letter(s.addr, "ruok").await, "imok");
    let srvr = four_letter(s.addr, "srvr").await;
    assert!(srvr.starts_with("Zookeeper version: 3.8.0"), "{srvr}");
    assert!(srvr.contains("\nMode: standalone\n"), "{srvr}");
    assert!(srvr.contains("\nNode count: 5\n"), "{srvr}");
    assert_eq!(four_letter(s.addr, "isro").await, "rw");
    let envi = four_letter(s.addr, "envi").await;
    assert!(
        envi.starts_with("Environment:\nzookeeper.version=3.8.0-paddock"),
        "{envi}"
    );
    let conf = four_letter(s.addr, "conf").await;
    assert!(
        conf.contains(&format!("clientPort={}\n", s.addr.port())),
        "{conf}"
    );
    assert!(
        conf.contains("maxClientCnxns=60\n") && conf.contains("tickTime=3000\n"),
        "{conf}"
    );
    let mntr = four_letter(s.addr, "mntr").await;
    let lines: Vec<&str> = mntr.lines().collect();
    assert!(lines[0].starts_with("zk_version\t3.8.0-paddock"), "{mntr}");
    assert_eq!(lines[1], "zk_server_state\tstandalone");
    assert!(lines.contains(&"zk_znode_count\t5"), "{mntr}");
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with("zk_") && l.contains('\t')),
        "{mntr}"
    );
    for word in ["stat", "dump", "cons", "wchc", "crst"] {
        assert_eq!(
            four_letter(s.addr, word).await,
            format!("{word} is not executed because it is not in the whitelist.\n"),
            "the default whitelist is srvr, ruok, mntr, isro, envi, conf"
        );
    }
}

#[tokio::test]
async fn whitelisted_words_report_connections_watches_and_resets() {
    let s = TestServer::start_with(|c| c.four_letter_whitelist = vec!["*".into()]).await;
    let (mut raw, session) = Raw::session(s.addr, 10_000).await;
    raw.call(&create("/w4", 0)).await;
    raw.call(&Request::GetData(PathWatchRequest {
        path: "/w4".into(),
        watch: true,
    }))
    .await;
    let stat = four_letter(s.addr, "stat").await;
    assert!(stat.contains("Clients:\n /127.0.0.1:"), "{stat}");
    let cons = four_letter(s.addr, "cons").await;
    assert!(
        cons.contains(&format!("sid=0x{:x})", session.session_id)),
        "{cons}"
    );
    let sid = format!("0x{:x}", session.session_id);
    assert_eq!(
        four_letter(s.addr, "wchc").await,
        format!("{sid}\n\t/w4\n\n")
    );
    assert_eq!(
        four_letter(s.addr, "wchp").await,
        format!("/w4\n\t{sid}\n\n")
    );
    assert!(four_letter(s.addr, "dirs")
        .await
        .starts_with("datadir_size: "));
    assert_eq!(four_letter(s.addr, "srst").await, "Server stats reset.\n");
    assert!(four_letter(s.addr, "srvr")
        .await
        .contains("\nReceived: 0\n"));
    assert_eq!(
        four_letter(s.addr, "crst").await,
        "Connection stats reset.\n"
    );
}

#[tokio::test]
async fn auth_with_an_unknown_scheme_fails_and_closes() {
    let s = TestServer::start().await;
    let (mut raw, _) = Raw::session(s.addr, 10_000).await;
    let (h, _) = raw
        .call(&Request::Auth(AuthPacket {
            auth_type: 0,
            scheme: "kerberos".into(),
            auth: Some(Bytes::from_static(b"x")),
        }))
        .await;
    assert_eq!(
        (h.xid, h.zxid, h.err),
        (-4, 0, ErrorCode::AuthFailed.code())
    );
    assert!(raw.closed().await);
}

#[tokio::test]
async fn who_am_i_lists_the_ip_then_digest_users_of_that_connection_only() {
    let s = TestServer::start().await;
    let (mut raw, _) = Raw::session(s.addr, 10_000).await;
    // Connections from one address start with one shared identity list:
    // an identity added by one of them is its own.
    let (mut before, _) = Raw::session(s.addr, 10_000).await;
    let (h, _) = raw
        .call(&Request::Auth(AuthPacket {
            auth_type: 0,
            scheme: "digest".into(),
            auth: Some(Bytes::from_static(b"user:pw")),
        }))
        .await;
    assert_eq!((h.xid, h.err), (-4, 0));
    let (_, r) = raw.call(&Request::WhoAmI).await;
    let info = |s: &str, u: &str| ClientInfo {
        auth_scheme: s.into(),
        user: u.into(),
    };
    assert_eq!(
        r,
        Some(Response::WhoAmI(vec![
            info("ip", "127.0.0.1"),
            info("digest", "user")
        ]))
    );
    let (mut after, _) = Raw::session(s.addr, 10_000).await;
    for other in [&mut before, &mut after] {
        let (_, r) = other.call(&Request::WhoAmI).await;
        assert_eq!(r, Some(Response::WhoAmI(vec![info("ip", "127.0.0.1")])));
    }
}

#[tokio::test]
async fn check_alone_is_rejected_and_multi_returns_per_op_results() {
    let s = TestServer::start().await;
    let (mut raw, _) = Raw::session(s.addr, 10_000).await;
    let (h, r) = raw.call(&Request::Multi(vec![])).await;
    assert_eq!((h.err, r), (0, Some(Response::Multi(vec![]))));
    let (h, r) = raw
        .call(&Request::Multi(vec![
            create("/m", 0),
            Request::Check(CheckVersionRequest {
                path: "/m".into(),
                version: 3,
            }),
        ]))
        .await;
    assert_eq!(h.err, 0, "a failed multi still has err 0 in the header");
    assert_eq!(
        r,
        Some(Response::Multi(vec![
            MultiResult::Error { err: 0 },
            MultiResult::Error {
                err: ErrorCode::BadVersion.code()
            },
        ]))
    );
    let (h, _) = raw
        .call(&Request::Check(CheckVersionRequest {
            path: "/m".into(),
            version: -1,
        }))
        .await;
    assert_eq!(h.err, ErrorCode::Unimplemented.code());
    assert!(raw.closed().await);
}

#[tokio::test]
async fn sync_echoes_the_path_and_reconfig_is_disabled() {
    let s = TestServer::start().await;
    let (mut raw, _) = Raw::session(s.addr, 10_000).await;
    let (_, r) = raw
        .call(&Request::Sync(PathRequest {
            path: "/whatever".into(),
        }))
        .await;
    assert_eq!(
        r,
        Some(Response::Sync {
            path: "/whatever".into()
        })
    );
    let (h, _) = raw
        .call(&Request::Reconfig(ReconfigRequest {
            cur_config_id: -1,
            ..Default::default()
        }))
        .await;
    assert_eq!(h.err, ErrorCode::ReconfigDisabled.code());
}

#[tokio::test]
async fn reconfig_on_a_standalone_server_is_unimplemented_as_in_zookeeper() {
    let s = TestServer::start_with(|c| c.reconfig_enabled = true).await;
    let (mut raw, _) = Raw::session(s.addr, 10_000).await;
    let (h, _) = raw
        .call(&Request::Reconfig(ReconfigRequest {
            leaving_servers: "2".into(),
            cur_config_id: -1,
            ..Default::default()
        }))
        .await;
    assert_eq!(h.err, ErrorCode::Unimplemented.code());
    assert!(
        raw.call(&Request::Ping).await.0.err == 0,
        "the connection stays up"
    );
}

#[tokio::test]
async fn random_garbage_frames_never_take_the_server_down() {
    let s = TestServer::start_with(|c| c.max_frame_bytes = 4096).await;
    let (mut healthy, _) = Raw::session(s.addr, 10_000).await;
    // A small xorshift generator keeps the run reproducible.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..200 {
        let (mut raw, _) = Raw::session(s.addr, 10_000).await;
        for _ in 0..10 {
            let len = (next() % 64) as usize;
            let mut frame: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if frame.len() >= 8 && round % 2 == 0 {
                // A valid header with a known opcode and a random body.
                let opcode = [1i32, 2, 3, 4, 5, 7, 8, 12, 14, 15, 19, 21, 22, 103, 104]
                    [(next() % 15) as usize];
                frame[..4].copy_from_slice(&1i32.to_be_bytes());
                frame[4..8].copy_from_slice(&opcode.to_be_bytes());
            }
            raw.send_frame(&frame).await;
        }
    }
    let (h, _) = healthy.call(&create("/after-garbage", 0)).await;
    assert_eq!(h.err, 0);
    assert_eq!(four_letter(s.addr, "ruok").await, "imok");
}

/// A connection that has sent nothing yet does not hold a stopping server
/// for its handshake timeout (10 s).
#[tokio::test]
async fn a_silent_connection_does_not_delay_a_stop() {
    let s = TestServer::start().await;
    let silent = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    // The server has taken the connection once a four-letter word answers
    // on another one behind it.
    assert_eq!(four_letter(s.addr, "ruok").await, "imok");
    let started = std::time::Instant::now();
    s.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "stopping took {:?}",
        started.elapsed()
    );
    drop(silent);
}

/// `globalOutstandingLimit`: past it no connection reads more until
/// replies bring the total back under it. With a limit of one, three
/// connections pipelining writes and reads wait on each other at almost
/// every request; a wake-up lost on the way would leave one hanging.
/// `maxCnxns` closes a connection past the total at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_global_limits_hold_requests_back_and_refuse_connections_past_them() {
    let s = TestServer::start_with(|c| {
        c.global_outstanding_limit = 1;
        c.max_cnxns = 3;
    })
    .await;
    let mut clients = Vec::new();
    for k in 0..3 {
        let (mut raw, _) = Raw::session(s.addr, 10_000).await;
        clients.push(tokio::spawn(async move {
            let mut all = BytesMut::new();
            for i in 0..150 {
                let req = match i % 2 {
                    0 => create(&format!("/g{k}-{i}"), 0),
                    _ => get_data(&format!("/g{k}-{}", i - 1)),
                };
                let frame = req.encode_with_header(i + 1);
                all.put_u32(frame.len() as u32);
                all.put_slice(&frame);
            }
            raw.stream.write_all(&all).await.unwrap();
            for i in 0..150 {
                let opcode = if i % 2 == 0 { op::CREATE } else { op::GET_DATA };
                let frame = raw.read_frame().await.expect("every request answered");
                let (h, _) = decode_reply(opcode, frame);
                assert_eq!((h.xid, h.err), (i + 1, 0));
            }
            raw
        }));
    }
    let mut open = Vec::new();
    for c in clients {
        open.push(c.await.unwrap());
    }
    let mut fourth = Raw::open(s.addr).await;
    assert!(fourth.closed().await, "maxCnxns=3 and three are open");
    drop(open);
}
