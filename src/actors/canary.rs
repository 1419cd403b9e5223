//! The CanaryPlanter actor (canary.md §13, heartbeat `canary`): runs the trigger receivers on
//! the sockets bound at boot ([`CanaryHub`]) and the recorder that stores their hits. Planting
//! and revoking go through [`CanaryCore`] (the API and baseline seeding call it directly so
//! that a create answers with the final state); this actor owns the long-running parts and is
//! restarted by the supervisor like any worker, re-using the same sockets.

use std::sync::Arc;

use actix::prelude::*;
use serde_json::{json, Map, Value};
use tokio::sync::mpsc;

use crate::actors::heartbeat::start_beating;
use crate::actors::{Beat, Beating, Deps, ExitGuard, Shutdown};
use crate::canary::receiver::{self, HttpReceiver};
use crate::canary::{CanaryCore, CanaryHub};

/// Worker / heartbeat name.
pub const NAME: &str = "canary";

/// The actor.
pub struct CanaryPlanter {
    deps: Deps,
    hub: Arc<CanaryHub>,
    beat: Beat,
    _exit: ExitGuard,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    http: Option<actix_web::dev::ServerHandle>,
}

impl CanaryPlanter {
    pub fn new(deps: Deps, exit: ExitGuard) -> Self {
        CanaryPlanter {
            beat: deps.beat(NAME),
            hub: Arc::clone(&deps.canary),
            deps,
            _exit: exit,
            tasks: Vec::new(),
            http: None,
        }
    }

    fn start_receivers(&mut self) -> std::io::Result<()> {
        let core = CanaryCore::new(
            Arc::clone(&self.deps.settings),
            self.deps.db.clone(),
            self.deps.registry.clone(),
            self.deps.docker.clone(),
        );
        let socks = self.hub.sockets()?;
        let (tx, rx) = mpsc::channel(self.deps.settings.canary.hit_queue.max(1));
        let sink = self.hub.sink(tx);
        self.tasks
            .push(actix_rt::spawn(receiver::recorder(core, rx)));
        let zone = self.deps.settings.canary.zone();
        if let Some(l) = socks.http {
            let trusted = Arc::new(receiver::trusted_nets(
                &self.deps.settings.ingest.trusted_proxies,
            ));
            let server = receiver::http_server(
                l,
                HttpReceiver {
                    sink: sink.clone(),
                    trusted,
                },
            )?;
            self.http = Some(server.handle());
            self.tasks.push(actix_rt::spawn(async move {
                if let Err(e) = server.await {
                    tracing::error!(error = %e, "canary HTTP receiver stopped");
                }
            }));
        }
        if let Some(s) = socks.dns_udp {
            let sock = tokio::net::UdpSocket::from_std(s)?;
            self.tasks.push(actix_rt::spawn(receiver::dns_udp(
                sock,
                zone.clone(),
                sink.clone(),
                self.deps.settings.canary.dns_rate_per_source,
            )));
        }
        if let Some(l) = socks.dns_tcp {
            let l = tokio::net::TcpListener::from_std(l)?;
            self.tasks
                .push(actix_rt::spawn(receiver::dns_tcp(l, zone, sink.clone())));
        }
        Ok(())
    }
}

impl Actor for CanaryPlanter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if let Err(e) = self.start_receivers() {
            tracing::error!(error = %e, "canary receivers not started");
        }
        start_beating(ctx, self);
    }

    fn stopping(&mut self, _ctx: &mut Context<Self>) -> Running {
        if let Some(h) = self.http.take() {
            actix_rt::spawn(async move { h.stop(false).await });
        }
        for t in self.tasks.drain(..) {
            t.abort();
        }
        Running::Stop
    }
}

impl Beating for CanaryPlanter {
    fn beat(&self) -> &Beat {
        &self.beat
    }
    fn health_extra(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert(
            "http_receiver".into(),
            json!(self.hub.http_addr().map(|a| a.to_string())),
        );
        m.insert(
            "dns_receiver".into(),
            json!(self.hub.dns_addr().map(|a| a.to_string())),
        );
        let stats = self.hub.hit_stats();
        m.insert(
            "hits_queued".into(),
            json!(stats.queued.load(std::sync::atomic::Ordering::Relaxed)),
        );
        m.insert(
            "hits_waited_for_queue".into(),
            json!(stats.waited.load(std::sync::atomic::Ordering::Relaxed)),
        );
        m
    }
}

impl Handler<Shutdown> for CanaryPlanter {
    type Result = ();
    fn handle(&mut self, _msg: Shutdown, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
