//! Clustering benchmarks (`cargo bench --bench clustering`):
//! * pure identity kernel at 10,000 and 100,000 observations (target: 100,000 under 1 s);
//! * identity kernel + reconciliation plan at 100,000;
//! * pure campaign kernel at 10,000 and 100,000 identities;
//! * whole ticks on SQLite (read, plan, one-transaction apply, maintenance) at 1,000 and
//!   10,000 observations: the first tick (everything formed) and an idle tick (nothing new).

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use decnetd::actors::campaign_clusterer::run_campaign_tick;
use decnetd::actors::clusterer::run_identity_tick;
use decnetd::domain::clustering::{campaign, kernel, reconcile, synth};

mod common;
use common::clustering::seeded_db;

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
    for n in [10_000usize, 100_000] {
        let features = synth::identity_features(n, 42);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &features, |b, fs| {
            b.iter(|| campaign::cluster_identities(fs))
        });
    }
    group.finish();
}

fn whole_tick_sqlite(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut group = c.benchmark_group("whole_tick_sqlite");
    group.sample_size(10);
    for n in [1_000usize, 10_000] {
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(
            BenchmarkId::new("first_identity_and_campaign_tick", n),
            |b| {
                b.to_async(&rt).iter_custom(|iters| async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let (_dir, db) = seeded_db(n).await;
                        let started = Instant::now();
                        run_identity_tick(&db).await.expect("identity tick");
                        run_campaign_tick(&db).await.expect("campaign tick");
                        total += started.elapsed();
                    }
                    total
                })
            },
        );
        let (_dir, db) = rt.block_on(async {
            let (dir, db) = seeded_db(n).await;
            run_identity_tick(&db).await.expect("identity tick");
            run_campaign_tick(&db).await.expect("campaign tick");
            (dir, db)
        });
        group.bench_function(
            BenchmarkId::new("idle_identity_and_campaign_tick", n),
            |b| {
                b.to_async(&rt).iter(|| async {
                    let i = run_identity_tick(&db).await.expect("identity tick");
                    let c = run_campaign_tick(&db).await.expect("campaign tick");
                    assert!(i.events().is_empty() && c.events().is_empty());
                })
            },
        );
    }
    group.finish();
}

criterion_group!(
    benches,
    identity_kernel,
    identity_plan,
    campaign_kernel,
    whole_tick_sqlite
);
criterion_main!(benches);
