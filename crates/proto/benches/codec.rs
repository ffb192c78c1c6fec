//! The codec on the hot path: decoding a client's request frame and
//! encoding the reply, for the requests a read- or write-heavy load sends.
//! `cargo bench -p paddock-proto`.

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use paddock_proto::{
    encode_reply, Jute, PathWatchRequest, Reader, Request, RequestHeader, Response, SetDataRequest,
    Stat,
};
use std::hint::black_box;

fn frame(xid: i32, req: &Request) -> Bytes {
    let mut out = BytesMut::new();
    RequestHeader {
        xid,
        opcode: req.opcode(),
    }
    .write(&mut out);
    req.write(&mut out);
    out.freeze()
}

fn decode(frame: &Bytes) -> Request {
    let mut r = Reader::new(frame.clone());
    let h = RequestHeader::read(&mut r).expect("a valid header");
    Request::read(h.opcode, &mut r).expect("a valid request")
}

fn stat() -> Stat {
    Stat {
        czxid: 0x1_0000_0010,
        mzxid: 0x1_0000_0200,
        ctime: 1_700_000_000_000,
        mtime: 1_700_000_050_000,
        version: 42,
        data_length: 100,
        pzxid: 0x1_0000_0010,
        ..Stat::default()
    }
}

fn codec(c: &mut Criterion) {
    let get = frame(
        7,
        &Request::GetData(PathWatchRequest {
            path: "/paddock-bench/k/123".into(),
            watch: false,
        }),
    );
    let set = |len: usize| {
        frame(
            8,
            &Request::SetData(SetDataRequest {
                path: "/paddock-bench/k/123".into(),
                data: Some(Bytes::from(vec![b'x'; len])),
                version: -1,
            }),
        )
    };
    let data = Response::GetData {
        data: Some(Bytes::from(vec![b'x'; 100])),
        stat: stat(),
    };
    let multi = frame(
        9,
        &Request::Multi(vec![
            Request::SetData(SetDataRequest {
                path: "/a/b".into(),
                data: Some(Bytes::from_static(b"one")),
                version: 3,
            }),
            Request::Delete(paddock_proto::DeleteRequest {
                path: "/a/c".into(),
                version: -1,
            }),
        ]),
    );

    let mut g = c.benchmark_group("decode request");
    g.throughput(Throughput::Elements(1));
    g.bench_function("getData", |b| b.iter(|| decode(black_box(&get))));
    for len in [100, 1024] {
        let f = set(len);
        g.bench_function(format!("setData {len} B"), |b| {
            b.iter(|| decode(black_box(&f)))
        });
    }
    g.bench_function("multi of 2", |b| b.iter(|| decode(black_box(&multi))));
    g.finish();

    let mut g = c.benchmark_group("encode reply");
    g.throughput(Throughput::Elements(1));
    g.bench_function("getData 100 B", |b| {
        b.iter(|| encode_reply(7, 0x1_0000_0200, Ok(black_box(&data))))
    });
    g.bench_function("setData stat", |b| {
        let r = Response::Stat(stat());
        b.iter(|| encode_reply(8, 0x1_0000_0201, Ok(black_box(&r))))
    });
    g.bench_function("error", |b| {
        b.iter(|| encode_reply(9, 0x1_0000_0201, Err(black_box(-101))))
    });
    g.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
