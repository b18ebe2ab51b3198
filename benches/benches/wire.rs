//! keystamp-wire: encode and decode speed of frames (the device does both for every message).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use keystamp_wire::{
    DeviceEvent, DeviceSession, Event, LineDecoder, MAX_LINE, Request, Response, crc::crc32,
};

fn chunk(n: usize) -> heapless::Vec<u8, 512> {
    (0..n).map(|i| (i * 37 + 11) as u8).collect()
}

fn blob_chunk() -> Request {
    Request::StoreDefBlob {
        total_len: 1024,
        digest: [0xA5; 32],
        signature: keystamp_wire::Signature {
            r: [0x5A; 32],
            s: [0x3C; 32],
        },
        offset: 256,
        data: chunk(256),
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("wire");
    let samples = [
        ("hello", Request::Hello),
        (
            "write_slot_72",
            Request::WriteSlot {
                slot: 10,
                offset: 0,
                data: chunk(72),
            },
        ),
        ("blob_chunk_256", blob_chunk()),
        (
            "blob_chunk_512",
            Request::StoreDefBlob {
                total_len: 1024,
                digest: [0xA5; 32],
                signature: keystamp_wire::Signature {
                    r: [0x5A; 32],
                    s: [0x3C; 32],
                },
                offset: 512,
                data: chunk(512),
            },
        ),
    ];
    for (name, req) in &samples {
        let mut buf = [0u8; MAX_LINE + 1];
        let n = req.encode(7, &mut buf).unwrap();
        let line = buf[..n].to_vec();
        g.throughput(Throughput::Bytes(n as u64));
        g.bench_function(format!("encode_request/{name}"), |b| {
            b.iter(|| black_box(req).encode(7, black_box(&mut buf)).unwrap())
        });
        let mut dec = LineDecoder::new();
        g.bench_function(format!("decode_request/{name}"), |b| {
            b.iter(|| {
                let (_, ev) = dec.feed(black_box(&line));
                match ev {
                    Some(Event::Frame(f)) => Request::decode(f.payload).unwrap(),
                    _ => unreachable!(),
                }
            })
        });
    }
    // The device's whole per-request path: decode, dedup check, encode and cache the answer.
    let mut buf = [0u8; MAX_LINE + 1];
    let n = blob_chunk().encode(1, &mut buf).unwrap();
    let line = buf[..n].to_vec();
    let mut dev = DeviceSession::new();
    g.throughput(Throughput::Bytes(n as u64));
    g.bench_function("device_session/blob_chunk_256", |b| {
        b.iter(|| {
            dev.reset();
            match dev.feed(black_box(&line)).1 {
                Some(DeviceEvent::Request { seq, .. }) => dev.respond(seq, &Response::Ok).len(),
                _ => unreachable!(),
            }
        })
    });
    let kib = vec![0x5Au8; 1024];
    g.throughput(Throughput::Bytes(1024));
    g.bench_function("crc32/1KiB", |b| b.iter(|| crc32(black_box(&kib))));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
