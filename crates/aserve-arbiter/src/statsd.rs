//! statsd in the process layer: the collector's address resolved once at
//! start, and the error log's counters (`gunicorn.log.*`). The request
//! metrics are the front end's (`aserve_http::statsd`, an observer of each
//! request); the worker gauge is the master's.
//!
//! The address is resolved here, once, before logging starts: a name that
//! does not resolve is a configuration error (one line, exit status 2),
//! and no request ever waits on DNS. A collector that moves needs a
//! restart; SIGHUP keeps the address.

use std::net::ToSocketAddrs;

use aserve_config::{Config, StatsdHost};
use aserve_http::statsd::{
    LOG_ERROR, LOG_EXCEPTION, LOG_WARNING, Statsd, StatsdOptions, StatsdTarget,
};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// The statsd settings with the collector's address resolved; `None` when
/// statsd is off.
pub(crate) fn options(config: &Config) -> Result<Option<StatsdOptions>, String> {
    let Some(host) = &config.statsd_host else {
        return Ok(None);
    };
    let target = match host {
        StatsdHost::Unix(path) => StatsdTarget::Unix(path.clone()),
        StatsdHost::Udp { host: name, port } => {
            let bad = |why: String| format!("invalid value for 'statsd_host' ({host}): {why}");
            let addrs: Vec<_> = (name.as_str(), *port)
                .to_socket_addrs()
                .map_err(|e| bad(format!("cannot resolve {name:?}: {e}")))?
                .collect();
            // IPv4 first: gunicorn's statsd socket is IPv4 only, and
            // `localhost` often resolves to ::1 first.
            let addr = addrs
                .iter()
                .find(|a| a.is_ipv4())
                .or(addrs.first())
                .copied()
                .ok_or_else(|| bad(format!("{name:?} has no address")))?;
            StatsdTarget::Udp(addr)
        }
    };
    Ok(Some(StatsdOptions {
        target,
        prefix: config.statsd_prefix.clone(),
        tags: config.dogstatsd_tags.clone(),
    }))
}

/// Counts error-log events as gunicorn's `Statsd` logger does: a warning,
/// an error, an exception the app raised. What the app writes to
/// `wsgi.errors` is not counted (gunicorn writes it past its logger).
/// Only events the log level lets through are seen.
pub(crate) struct LogCounts(pub(crate) Statsd);

impl<S: Subscriber> Layer<S> for LogCounts {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let metadata = event.metadata();
        let key = match (*metadata.level(), metadata.target()) {
            (Level::WARN, _) => LOG_WARNING,
            (Level::ERROR, aserve_wsgi::EXCEPTION_TARGET) => LOG_EXCEPTION,
            (Level::ERROR, aserve_wsgi::WSGI_ERRORS_TARGET) => return,
            (Level::ERROR, _) => LOG_ERROR,
            _ => return,
        };
        self.0.increment(key);
    }
}
