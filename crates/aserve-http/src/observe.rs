//! The per-request hook: the one place where the front end reports a
//! request, to every observer of it.
//!
//! An [`Exchange`] begins when hyper hands a request head to the service
//! (before any refusal, so refused requests are seen too) and is reported
//! when hyper drops the response body: then the status, the body bytes
//! sent and the duration are final, and each observer gets the same
//! [`Finished`] event. The observers are a small fixed set ([`Observers`]),
//! not trait objects: each is optional, the common cases cost a branch,
//! and a new observer is one more field here, never a change to the
//! response body or the connection. Today: the access log, the Prometheus
//! counters and statsd.
//!
//! An observer that needs more of the request than the event carries (the
//! access log's target and headers) captures it in [`Exchange::begin`],
//! only when it is on.
//!
//! Every request pays for this hook whenever one observer is on, so it is
//! kept to one clock read and one small allocation (plus the access log's
//! entry when that is on): the exchange's start is the instant the
//! connection already noted when the head's first byte arrived, the
//! method's label is resolved once, at the start, and the observers are
//! shared, not copied per request. The exchange is boxed because the
//! response body carries it and is moved by value several times on its
//! way to hyper: inline, its 40 bytes cost every response more in copies
//! than the allocation costs the observed ones (measured with callgrind,
//! `docs/benchmarks.md`).
//!
//! Invariant: a request counted in flight by [`Exchange::begin`] is
//! counted out exactly once, when the exchange is dropped, reported or not
//! (a client that leaves before its response is never reported).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::StatusCode;

use crate::AccessLog;
use crate::access_log::Pending;
use crate::metrics::{self, WorkerCounters};
use crate::statsd::Statsd;

/// Who watches requests. Part of the front end's configuration.
#[derive(Clone, Default)]
pub(crate) struct Observers {
    pub(crate) access_log: Option<Arc<AccessLog>>,
    pub(crate) metrics: Option<WorkerCounters>,
    pub(crate) statsd: Option<Statsd>,
}

impl Observers {
    fn any(&self) -> bool {
        self.access_log.is_some() || self.metrics.is_some() || self.statsd.is_some()
    }
}

/// A finished request, as every observer sees it.
pub(crate) struct Finished {
    pub(crate) status: StatusCode,
    /// Response body bytes handed to hyper.
    pub(crate) bytes: u64,
    /// From the request head's first byte (or, for a head that arrived
    /// with an earlier request, its hand-over to the service) to the
    /// response body being dropped.
    pub(crate) duration: Duration,
}

/// One request on its way through the front end.
pub(crate) struct Exchange {
    began: Instant,
    observers: Arc<Observers>,
    /// Boxed: the access log's entry is large and rare; without it the
    /// exchange is a small allocation.
    access: Option<Box<Pending>>,
    status: StatusCode,
    /// The method's label index for the metrics (`metrics::method_class`).
    method: u8,
}

impl Exchange {
    /// Starts watching a request; `None` when nobody watches. `peer` is
    /// the client address as the access log shows it; `head_began` when
    /// the head's first byte arrived, if the connection noted it (else
    /// the clock is read now).
    pub(crate) fn begin<B>(
        observers: &Arc<Observers>,
        request: &http::Request<B>,
        peer: Option<SocketAddr>,
        head_began: impl FnOnce() -> Option<Instant>,
    ) -> Option<Box<Self>> {
        if !observers.any() {
            return None;
        }
        let mut method = 0;
        if let Some(counters) = &observers.metrics {
            counters.gauge(metrics::IN_FLIGHT, 1);
            method = metrics::method_class(request.method());
        }
        Some(Box::new(Self {
            began: head_began().unwrap_or_else(Instant::now),
            observers: Arc::clone(observers),
            access: observers
                .access_log
                .as_ref()
                .map(|log| Box::new(Pending::start(log, request, peer))),
            status: StatusCode::OK,
            method,
        }))
    }

    /// The response head is known.
    pub(crate) fn respond<B>(&mut self, response: &http::Response<B>) {
        self.status = response.status();
        if let Some(access) = self.access.as_mut() {
            access.respond(response);
        }
    }

    /// The response has ended (hyper dropped its body): reports it.
    pub(crate) fn finish(mut self, bytes: u64) {
        let event = Finished {
            status: self.status,
            bytes,
            duration: self.began.elapsed(),
        };
        let observers = &*self.observers;
        if let Some(counters) = &observers.metrics {
            counters.request(
                usize::from(self.method),
                event.status.as_u16(),
                event.duration,
            );
        }
        if let Some(statsd) = &observers.statsd {
            statsd.request(event.status, event.duration);
        }
        if let Some(access) = self.access.take() {
            access.finish(&event);
        }
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        if let Some(counters) = &self.observers.metrics {
            counters.gauge(metrics::IN_FLIGHT, -1);
        }
    }
}
