//! Criterion micro-benchmarks of the BERT kernels at MiniLM-L6 shapes
//! (hidden 384, intermediate 1536, 12 heads) on a packed batch of 16
//! sequences of 190 tokens: `cargo bench -p sift-bert --bench kernels`.
//! GEMM throughput is reported in elements = multiply–adds (GFLOP/s = 2 ×).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sift_bert::kernels::{self, Isa, Matmul, PackedLinear};
use std::hint::black_box;

const SEQS: usize = 16;
const LEN: usize = 190;
const H: usize = 384;
const I: usize = 1536;

fn data(len: usize, seed: f32) -> Vec<f32> {
    (0..len).map(|i| (i as f32 * 0.731 + seed).sin()).collect()
}

fn gemm(c: &mut Criterion) {
    let m = SEQS * LEN;
    let mut group = c.benchmark_group("linear");
    group.sample_size(10);
    for (name, n, k) in [("qkv", 3 * H, H), ("ffn_in", I, H), ("ffn_out", H, I)] {
        let (a, w, b) = (data(m * k, 0.1), data(n * k, 0.2), data(n, 0.3));
        let mut out = vec![0f32; m * n];
        group.throughput(Throughput::Elements((m * n * k) as u64));
        let isa = Isa::detect();
        let without_amx = Isa {
            amx_bf16: false,
            ..isa
        };
        let mut paths = vec![(Matmul::F32, isa), (Matmul::Bf16, without_amx)];
        if isa.amx_bf16 {
            paths.push((Matmul::Bf16, isa));
        }
        let mut benched = Vec::new();
        for (kind, isa) in paths {
            let lin = PackedLinear::for_isa(&w, &b, n, k, kind, isa);
            let label = match (lin.kind(), lin.uses_amx()) {
                (_, true) => "bf16-amx".to_string(),
                (kind, false) => format!("{kind:?}").to_lowercase(),
            };
            // A CPU without a bf16 kernel falls back to f32: bench that path once.
            if benched.contains(&label) {
                continue;
            }
            benched.push(label.clone());
            group.bench_function(BenchmarkId::new(name, label), |bench| {
                bench.iter(|| lin.forward(black_box(&a), m, &mut out))
            });
        }
    }
    group.finish();
}

fn elementwise(c: &mut Criterion) {
    let m = SEQS * LEN;
    let mut group = c.benchmark_group("elementwise");
    let x = data(m * I, 0.4);
    let mut y = x.clone();
    group.throughput(Throughput::Elements((m * I) as u64));
    group.bench_function("gelu_erf", |b| {
        b.iter(|| {
            y.copy_from_slice(&x);
            kernels::gelu_erf(&mut y)
        })
    });
    let (r, g, be) = (data(m * H, 0.5), data(H, 0.6), data(H, 0.7));
    let x = data(m * H, 0.8);
    let mut y = x.clone();
    group.throughput(Throughput::Elements((m * H) as u64));
    group.bench_function("residual_layer_norm", |b| {
        b.iter(|| {
            y.copy_from_slice(&x);
            kernels::residual_layer_norm(&mut y, &r, &g, &be, 1e-12)
        })
    });
    group.finish();
}

fn attention(c: &mut Criterion) {
    let m = SEQS * LEN;
    let qkv = data(m * 3 * H, 0.9);
    let offsets: Vec<usize> = (0..=SEQS).map(|s| s * LEN).collect();
    let mut ctx = vec![0f32; m * H];
    let mut group = c.benchmark_group("attention");
    group.sample_size(10);
    // Multiply–adds of QKᵀ and AV.
    group.throughput(Throughput::Elements((2 * SEQS * LEN * LEN * H) as u64));
    group.bench_function("packed_12_heads", |b| {
        b.iter(|| kernels::attention(black_box(&qkv), &offsets, 12, &mut ctx))
    });
    group.bench_function("packed_12_heads_bf16", |b| {
        b.iter(|| kernels::attention_bf16(black_box(&qkv), &offsets, 12, &mut ctx))
    });
    group.finish();
}

criterion_group!(benches, gemm, elementwise, attention);
criterion_main!(benches);
