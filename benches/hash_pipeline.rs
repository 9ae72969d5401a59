//! Bytes per second through the upload hash pipeline (md5 + the multihash, with the
//! size check), per chunk size, beside each hash alone: the ceiling an upload runs at
//! when hashing sits in the write path.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use futures_util::StreamExt;
use glance_layers::location::digest::{DigestingStream, HashAlgo};
use md5::Digest;

const TOTAL: usize = 32 << 20;

fn chunks(size: usize) -> Vec<Bytes> {
    let chunk = Bytes::from(vec![0x5au8; size]);
    (0..TOTAL / size).map(|_| chunk.clone()).collect()
}

fn pipeline(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("hash_pipeline");
    group.throughput(Throughput::Bytes(TOTAL as u64));
    group.sample_size(10);
    for size in [64usize << 10, 1 << 20, 4 << 20] {
        let data = chunks(size);
        group.bench_with_input(BenchmarkId::new("md5+sha512", size), &data, |b, data| {
            b.iter(|| {
                rt.block_on(async {
                    let src = futures_util::stream::iter(data.clone().into_iter().map(Ok)).boxed();
                    let (mut s, rx) =
                        DigestingStream::new(src, HashAlgo::Sha512, Some(TOTAL as u64));
                    while let Some(chunk) = s.next().await {
                        black_box(chunk.unwrap());
                    }
                    black_box(rx.wait().await.unwrap())
                })
            })
        });
        group.bench_with_input(BenchmarkId::new("md5", size), &data, |b, data| {
            b.iter(|| {
                let mut h = md5::Md5::new();
                data.iter().for_each(|c| h.update(c));
                black_box(h.finalize())
            })
        });
        group.bench_with_input(BenchmarkId::new("sha512", size), &data, |b, data| {
            b.iter(|| {
                let mut h = sha2::Sha512::new();
                data.iter().for_each(|c| h.update(c));
                black_box(h.finalize())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
