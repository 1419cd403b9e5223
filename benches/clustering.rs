//! Pure clustering benchmarks: the identity kernel at 10,000 and 100,000 observations (target:
//! 100,000 under one second), the identity kernel plus reconciliation plan, and the campaign
//! kernel. Run with `cargo bench --bench clustering`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use decnetd::domain::clustering::{campaign, kernel, reconcile, synth};

fn identity_kernel(c: &mut Criterion) {
    let mut group = c.benchmark_group("identity_kernel");
    group.sample_size(10);
    for n in [10_000usize, 100_000] {
        let observations = synth::observations(n, 42);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &observations, |b, obs| {
            b.iter(|| kernel::cluster(obs))
        });
    }
    group.finish();
}

fn identity_plan(c: &mut Criterion) {
    let mut group = c.benchmark_group("identity_kernel_and_plan");
    group.sample_size(10);
    let n = 100_000usize;
    let observations = synth::observations(n, 42);
    let members: Vec<reconcile::MemberState> = observations
        .iter()
        .map(|o| reconcile::MemberState {
            id: o.observation_id.clone(),
            literal: None,
        })
        .collect();
    group.throughput(Throughput::Elements(n as u64));
    group.bench_function(BenchmarkId::from_parameter(n), |b| {
        b.iter(|| {
            let clustering = kernel::cluster(&observations);
            let mut next = 0u64;
            let mut mint = || {
                next += 1;
                format!("{next:032x}")
            };
            reconcile::plan(&members, &clustering.components, &[], &mut mint)
        })
    });
    group.finish();
}

fn campaign_kernel(c: &mut Criterion) {
    let mut group = c.benchmark_group("campaign_kernel");
    group.sample_size(10);
    for n in [10_000usize] {
        let features = synth::identity_features(n, 42);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &features, |b, fs| {
            b.iter(|| campaign::cluster_identities(fs))
        });
    }
    group.finish();
}

criterion_group!(benches, identity_kernel, identity_plan, campaign_kernel);
criterion_main!(benches);
