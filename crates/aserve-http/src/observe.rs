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
//! Invariant: a request counted in flight by [`Exchange::begin`] is
//! counted out exactly once, when the exchange is dropped, reported or not
//! (a client that leaves before its response is never reported).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Method, StatusCode};

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

/// A finished request, as every observer sees it.
pub(crate) struct Finished<'a> {
    pub(crate) method: &'a Method,
    pub(crate) status: StatusCode,
    /// Response body bytes handed to hyper.
    pub(crate) bytes: u64,
    /// From the head being read to the response body being dropped.
    pub(crate) duration: Duration,
}

/// One request on its way through the front end.
pub(crate) struct Exchange {
    started: Instant,
    method: Method,
    status: StatusCode,
    access: Option<Pending>,
    metrics: Option<WorkerCounters>,
    statsd: Option<Statsd>,
}

impl Exchange {
    /// Starts watching a request; `None` when nobody watches. `peer` is
    /// the client address as the access log shows it.
    pub(crate) fn begin<B>(
        observers: &Observers,
        request: &http::Request<B>,
        peer: Option<SocketAddr>,
    ) -> Option<Box<Self>> {
        if observers.access_log.is_none()
            && observers.metrics.is_none()
            && observers.statsd.is_none()
        {
            return None;
        }
        if let Some(metrics) = &observers.metrics {
            metrics.gauge(metrics::IN_FLIGHT, 1);
        }
        Some(Box::new(Self {
            started: Instant::now(),
            method: request.method().clone(),
            status: StatusCode::OK,
            access: observers
                .access_log
                .as_ref()
                .map(|log| Pending::start(log, request, peer)),
            metrics: observers.metrics,
            statsd: observers.statsd.clone(),
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
    pub(crate) fn finish(mut self: Box<Self>, bytes: u64) {
        let event = Finished {
            method: &self.method,
            status: self.status,
            bytes,
            duration: self.started.elapsed(),
        };
        if let Some(metrics) = &self.metrics {
            metrics.request(
                metrics::method_class(event.method),
                event.status.as_u16(),
                event.duration,
            );
        }
        if let Some(statsd) = &self.statsd {
            statsd.request(event.status, event.duration);
        }
        if let Some(access) = self.access.take() {
            access.finish(&event);
        }
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        if let Some(metrics) = &self.metrics {
            metrics.gauge(metrics::IN_FLIGHT, -1);
        }
    }
}
