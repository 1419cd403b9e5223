//! Registry benchmarks: publish → delivery fan-out and the wildcard matcher.
//!
//! `cargo bench --bench registry`

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use decnetd::actors::registry::{RegistryConfig, RegistryHandle, Subscription};
use decnetd::actors::topics::{AttackerObserved, Event, Pattern};
use futures::executor::block_on;
use futures::StreamExt;

fn event() -> Event {
    Event::AttackerObserved(AttackerObserved {
        attacker_ip: "203.0.113.7".into(),
        decky: "decky-01".into(),
        service: "ssh".into(),
        event_type: "login_attempt".into(),
        first_seen: "2026-01-01T00:00:00+00:00".into(),
        attacker_uuid: None,
    })
}

fn setup(n: usize, pattern: &str) -> (actix_rt::SystemRunner, RegistryHandle, Vec<Subscription>) {
    let sys = actix_rt::System::new();
    let (reg, subs) = sys.block_on(async {
        let reg = RegistryHandle::start(RegistryConfig {
            bus_health_interval: Duration::ZERO,
            ..RegistryConfig::default()
        });
        let mut subs = Vec::with_capacity(n);
        for _ in 0..n {
            match reg.subscribe(pattern).await {
                Ok(s) => subs.push(s),
                Err(e) => panic!("subscribe: {e}"),
            }
        }
        (reg, subs)
    });
    (sys, reg, subs)
}

/// One publish, measured until every subscriber has received its copy.
fn publish_to_delivery(c: &mut Criterion) {
    let mut group = c.benchmark_group("registry/publish_to_delivery");
    for n in [1usize, 100, 1000] {
        let (sys, reg, mut subs) = setup(n, "attacker.>");
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                reg.publish(event());
                for sub in subs.iter_mut() {
                    black_box(block_on(sub.next()));
                }
            });
        });
        sys.block_on(reg.shutdown());
    }
    group.finish();
}

/// Publisher-side cost alone, with one subscriber that is never polled (its buffer stays full).
fn publish_with_stuck_subscriber(c: &mut Criterion) {
    let (sys, reg, subs) = setup(1, ">");
    c.bench_function("registry/publish_stuck_subscriber", |b| {
        b.iter(|| reg.publish(black_box(event())));
    });
    drop(subs);
    sys.block_on(reg.shutdown());
}

fn matcher(c: &mut Criterion) {
    let mut group = c.benchmark_group("registry/match");
    let topic = "topology.abc123.mutation.applied";
    let cases = [
        ("exact", "topology.abc123.mutation.applied"),
        ("exact_miss", "topology.abc123.mutation.failed"),
        ("star", "topology.*.mutation.*"),
        ("tail", "topology.>"),
        ("tail_root", ">"),
        ("short_miss", "decky.*.state"),
    ];
    for (name, p) in cases {
        let pattern = match Pattern::parse(p) {
            Ok(p) => p,
            Err(e) => panic!("{p}: {e}"),
        };
        group.bench_function(name, |b| {
            b.iter(|| black_box(&pattern).matches(black_box(topic)));
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    publish_to_delivery,
    publish_with_stuck_subscriber,
    matcher
);
criterion_main!(benches);
